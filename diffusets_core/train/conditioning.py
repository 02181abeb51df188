"""The U-Net's training conditions: text vectors (or statement tokens) and encoded patient values per record,
and the text standardisation fitted on the training split."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.store import SignalStore
from ..text.cache import EmbeddingCache
from ..text.embed import default_cache_dir, embed_texts, load_run_embeddings
from ..text.embedders import embedder_from_identity
from ..text.patient import encode_patient
from ..text.standardize import text_standardizer
from ..text.tokens import report_tokens, statement_rows

log = logging.getLogger(__name__)

__all__ = ["conditioning_arrays", "fit_text_standardisation", "wording_variant_arrays", "variant_seed"]


def conditioning_arrays(
    run_dir: str | os.PathLike, record_ids: list[str], patient_mode: str, text_tokens: int = 0
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Text condition and encoded patient values for ``record_ids`` (in that order): text (N, D) ordered-prompt
    vectors, or with ``text_tokens = K > 0`` the (N, 1 + K, D) token matrix of
    :func:`~diffusets_core.text.tokens.report_tokens` (statements embedded with the run's embedder, through its
    cache); patient (N, 3); and the embedder identity. Raises ValueError when a record has no text embedding."""
    run_dir = Path(run_dir)
    ids, vectors, identity = load_run_embeddings(run_dir)
    pos = {r: i for i, r in enumerate(ids)}
    missing = [r for r in record_ids if r not in pos]
    if missing:
        raise ValueError(
            f"{len(missing)} record(s) have no text embedding (e.g. {missing[0]!r}); run `diffusets embed`"
        )
    text = vectors[[pos[r] for r in record_ids]]
    records = SignalStore(run_dir).records().set_index("record_id").loc[record_ids]
    patient = encode_patient(
        records["sex"].tolist(), records["age"].to_numpy(float), records["hr"].to_numpy(float), mode=patient_mode
    )
    if text_tokens:
        embedder = embedder_from_identity(identity)
        cache = EmbeddingCache(default_cache_dir(run_dir), embedder.identity)
        text, stats = report_tokens(
            records["report"].tolist(),
            text,
            lambda st: embed_texts(st, embedder, cache, progress=False)[0],
            text_tokens,
        )
        if stats["truncated_reports"]:
            log.warning(
                "%d report(s) have more than %d statements (at most %d); the U-Net reads their first %d",
                stats["truncated_reports"],
                text_tokens,
                stats["max_statements_seen"],
                text_tokens,
            )
    return text.astype(np.float32), patient.astype(np.float32), identity


def variant_seed(seed: int, record_id: str) -> list[int]:
    """The seed words of a record's wording variants: ``[seed, crc32(record_id), 29]`` (29: a stream no other draw
    of the package uses), so a record's variants do not depend on which other records are trained on."""
    import zlib

    return [int(seed), zlib.crc32(str(record_id).encode()), 29]


def wording_variant_arrays(
    run_dir: str | os.PathLike, record_ids: list[str], text: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """The record's own text vector and ``k`` more: its findings worded again by the wording bank's **training**
    part (:func:`~diffusets_core.data.cohort.wordings.word_report`; never a held-out wording), embedded with the
    run's embedder through its persistent cache, each as the ordered prompt of the run's prompt mode.

    ``text``: (N, D) the records' own vectors (row i for ``record_ids[i]``). Returns ``(variants (N, 1 + k, D)
    float32, stats)``; column 0 is ``text``. A record without structured findings (a real dataset) keeps its own
    vector in every column. ``stats``: records worded, distinct prompts, newly embedded prompts, seconds.
    Deterministic for ``seed`` (:func:`variant_seed`).

    Raises:
        ValueError: ``k`` < 1.
    """
    import time

    from ..data.cohort.wordings import word_report
    from ..text.embed import embed_reports

    if k < 1:
        raise ValueError(f"wording variants: k must be >= 1, got {k}")
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    _, _, identity = load_run_embeddings(run_dir)
    records = SignalStore(run_dir).records().set_index("record_id").loc[record_ids]
    out = np.repeat(text[:, None, :].astype(np.float32), k + 1, axis=1)
    reports, where = [], []
    for i, (rid, fids) in enumerate(zip(record_ids, records["findings"].fillna("").astype(str))):
        ids = [f for f in fids.split("|") if f]
        if not ids:
            continue
        rng = np.random.default_rng(variant_seed(seed, rid))
        for j in range(k):
            reports.append(word_report(ids, rng, "train"))
            where.append((i, j + 1))
    stats: dict[str, Any] = {"k": k, "records_worded": len({i for i, _ in where}), "variant_reports": len(reports)}
    if reports:
        embedder = embedder_from_identity(identity)
        cache = EmbeddingCache(default_cache_dir(run_dir), embedder.identity)
        vecs, est = embed_reports(reports, embedder, cache, progress=False)
        rows, cols = zip(*where)
        out[list(rows), list(cols)] = vecs
        stats.update(distinct_prompts=est["distinct_prompts"], newly_embedded=est["newly_embedded"])
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    return out, stats


def fit_text_standardisation(unet: nn.Module, text_train: np.ndarray) -> dict[str, Any] | None:
    """Standardise the U-Net's text input with the TRAINING split's statistics (``text_train``: (N, D) prompt
    vectors or (N, 1 + K, D) tokens); they live in the model's buffers, so the saved artifact applies the same
    standardisation at generation. Returns what was fitted (for the artifact's meta), or None when the model has
    no text standardisation (the paper's U-Net, or ``text_standardize: false``)."""
    cfg = unet.cfg
    if not (hasattr(unet, "set_text_stats") and cfg.text_standardize):
        return None
    prompts = text_train[:, 0] if cfg.text_tokens else text_train
    kw: dict[str, Any] = {}
    mean, transform, info = text_standardizer(prompts, cfg.text_subspace)
    if cfg.text_subspace:
        kw["whiten"] = torch.from_numpy(transform)
    if cfg.text_tokens:
        statements = statement_rows(text_train)
        st_mean, st_transform, st_info = text_standardizer(statements, cfg.text_subspace)
        kw.update(statement_mean=torch.from_numpy(st_mean), statement_std=torch.from_numpy(statements.std(axis=0)))
        if cfg.text_subspace:
            kw["statement_whiten"] = torch.from_numpy(st_transform)
        info["statement_components"] = st_info["components"]
    unet.set_text_stats(torch.from_numpy(mean), torch.from_numpy(prompts.std(axis=0)), **kw)
    return {
        "n": int(len(text_train)),
        "mean_norm": float(np.linalg.norm(mean)),
        "median_std": float(np.median(prompts.std(axis=0))),
        **info,
    }
