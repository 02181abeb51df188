"""A report as tokens: the ordered prompt's vector, then each statement embedded on its own.

The paper embeds a report as ONE ordered prompt (see :mod:`diffusets_core.text.prompts`). Sentence embeddings
of such prompts are nearly parallel (MiniLM: cosine 0.996 between the RBBB and LBBB prompts), so a network that
reads one vector sees diagnoses that differ in a few words as almost the same condition. A U-Net with
``text_tokens = K > 0`` (``models/film_unet.py``) also receives every statement's own embedding and attends to
them, as latent diffusion does with a caption's token sequence (Rombach et al. 2022, §3.3); the prompt vector
stays token 0, so the order the paper encodes ("most importantly, the 1st diagnosis is ...") is still there.

Layout (float32)::

    tokens[i, 0]      the ordered prompt of report i (exactly the vector a single-token model reads)
    tokens[i, 1 + j]  statement j of report i (its stripped text, embedded by the same embedder and cache)
    tokens[i, 1 + j]  all zeros for j >= the report's number of statements (padding; masked by the U-Net)

Reports with more than K statements keep their first K (the ordered prompt puts the most important first) and
are counted in the returned statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .prompts import split_statements

__all__ = ["report_tokens", "statement_rows"]


def report_tokens(
    reports: Sequence[str],
    prompt_vectors: np.ndarray,
    embed_statements: Callable[[list[str]], np.ndarray],
    max_statements: int,
) -> tuple[np.ndarray, dict]:
    """Token matrix of ``reports`` (``|``-joined statements).

    Parameters
    ----------
    reports: N reports.
    prompt_vectors: (N, D) the ordered-prompt vectors of the same reports, in the same order.
    embed_statements: embeds a list of distinct statement strings -> (n, D) (for example
        ``lambda s: embed_texts(s, embedder, cache)[0]``); called once, with every distinct statement.
    max_statements: K >= 1.

    Returns ``(tokens (N, 1 + K, D) float32, stats)`` with ``stats = {"distinct_statements", "truncated_reports",
    "max_statements_seen"}``. Raises ValueError when shapes disagree, K < 1, a report has no statement, or an
    embedded statement vector is all zeros (it would read as padding).
    """
    if max_statements < 1:
        raise ValueError(f"max_statements must be >= 1, got {max_statements}")
    prompt_vectors = np.asarray(prompt_vectors, dtype=np.float32)
    if prompt_vectors.ndim != 2 or len(prompt_vectors) != len(reports):
        raise ValueError(f"prompt_vectors must be (N={len(reports)}, D), got {prompt_vectors.shape}")
    split = [split_statements(r) for r in reports]
    empty = [i for i, s in enumerate(split) if not s]
    if empty:
        raise ValueError(f"report {empty[0]} ({reports[empty[0]]!r}) has no statement; every report needs one")
    distinct = sorted({s for items in split for s in items[:max_statements]})
    vecs = np.asarray(embed_statements(distinct), dtype=np.float32)
    d = prompt_vectors.shape[1]
    if vecs.shape != (len(distinct), d):
        raise ValueError(f"statement embeddings must be ({len(distinct)}, {d}), got {vecs.shape}")
    zero = np.flatnonzero(np.abs(vecs).max(axis=1) == 0)
    if len(zero):
        raise ValueError(f"statement {distinct[zero[0]]!r} embedded to an all-zero vector (would read as padding)")
    row = {s: i for i, s in enumerate(distinct)}
    tokens = np.zeros((len(reports), 1 + max_statements, d), dtype=np.float32)
    tokens[:, 0] = prompt_vectors
    for i, items in enumerate(split):
        for j, s in enumerate(items[:max_statements]):
            tokens[i, 1 + j] = vecs[row[s]]
    stats = {
        "distinct_statements": len(distinct),
        "truncated_reports": int(sum(len(s) > max_statements for s in split)),
        "max_statements_seen": int(max((len(s) for s in split), default=0)),
    }
    return tokens, stats


def statement_rows(tokens: np.ndarray) -> np.ndarray:
    """The statement vectors (M, D) of a (N, 1 + K, D) token matrix, padding rows excluded (for fitting their
    standardisation, :func:`~diffusets_core.text.standardize.text_standardizer`). Raises ValueError if there is
    none."""
    st = tokens[:, 1:].reshape(-1, tokens.shape[-1])
    st = st[np.abs(st).max(axis=1) > 0]
    if not len(st):
        raise ValueError("no statement tokens to measure")
    return st
