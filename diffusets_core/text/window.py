"""Reports longer than the embedder's window: the one rule every path follows.

An embedder reads at most ``max_tokens`` tokens of one text (all-MiniLM-L6-v2: 256 word pieces; see
:class:`~diffusets_core.text.embedders.TokenWindow`). The ordered prompt adds about 12 words per statement, so a
long report (MIMIC-IV-ECG reports have up to 18 statements) can exceed it, and a truncating encoder would give two
reports that differ only in their last statement the same vector. Embedding (``embed_run``, hence training),
``generate --report``, ``generate --conditions``, the pipeline and the explorer all go through
:func:`plan_prompts`, which decides for each report:

* **Within the window** (the usual case): the ordered prompt is embedded whole, exactly as before this rule
  existed; its vector is the embedder's vector of that prompt, bit for bit.
* **Longer than the window**: the prompt's sentences (one per statement, each with its ordinal, see
  :func:`~diffusets_core.text.prompts.prompt_sentences`) are packed greedily, in order, into chunks of whole
  statements, each chunk within the window and counted as the embedder counts it. The first chunk therefore
  starts with "Most importantly, the 1st diagnosis is {...}", and joining the chunks gives the prompt back. Each
  chunk is embedded like a prompt, and the report's vector is the mean of the chunk vectors weighted by their token
  counts (a chunk weighs what its tokens weigh in mean pooling), then L2-normalised, as every backend normalises
  its vectors. Every statement reaches the vector; none is dropped.
* **A single statement whose sentence alone exceeds the window**: it cannot be split without changing its meaning,
  so the report is refused with :class:`~diffusets_core.text.embedders.PromptTooLongError` giving the token count
  and the limit.

A text embedded whole (a statement token of :mod:`~diffusets_core.text.tokens`) follows the same rule with one
sentence: within the window, or refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..fileio import l2_normalize
from .embedders import PromptTooLongError, TokenWindow
from .prompts import PROMPT_SEPARATORS, Statements, prompt_sentences

__all__ = ["STRATEGY", "PromptPlan", "combine_chunks", "plan_prompts", "plan_summary", "prompt_window_table"]

#: How a prompt longer than the window is embedded (stored with the embeddings of a run).
STRATEGY = "chunks of whole statements, token-weighted mean, L2-normalised"


@dataclass(frozen=True)
class PromptPlan:
    """How one report is embedded: ``prompt`` (its ordered prompt), ``chunks`` (the texts to embed: ``(prompt,)``
    when it fits the window), ``chunk_tokens`` (their token counts; empty without a window) and ``prompt_tokens``
    (the whole prompt's count; ``None`` without a window)."""

    prompt: str
    chunks: tuple[str, ...]
    chunk_tokens: tuple[int, ...] = ()
    prompt_tokens: int | None = None

    @property
    def split(self) -> bool:
        """True when the prompt is longer than the window and embedded in chunks."""
        return len(self.chunks) > 1


def _pack(sentences: list[str], sep: str, counts: list[int], window: TokenWindow) -> tuple[list[str], list[int]]:
    """Greedy packing of consecutive sentences into chunks within the window (``counts``: each sentence alone)."""
    limit = window.max_tokens
    assert limit is not None
    chunks: list[str] = []
    tokens: list[int] = []
    i = 0
    while i < len(sentences):
        text, n = sentences[i], counts[i]
        j = i + 1
        while j < len(sentences):
            # counted as a whole: a tokenizer may join pieces across the boundary
            candidate = text + sep + sentences[j]
            m = window.counts([candidate])[0]
            if m > limit:
                break
            text, n, j = candidate, m, j + 1
        chunks.append(text)
        tokens.append(n)
        i = j
    return chunks, tokens


def plan_prompts(
    reports: Iterable[Statements],
    window: TokenWindow,
    mode: str = "paper",
    *,
    refused: dict[int, PromptTooLongError] | None = None,
) -> list[PromptPlan]:
    """The rule: how each report is embedded (one :class:`PromptPlan` per report, in order; see the module
    docstring).

    Args:
        reports: ``|``-joined statements or lists of statements (as :func:`~diffusets_core.text.prompts.ordered_prompt`
            takes them).
        window: the embedder's window (``embedder.window``); without a limit every prompt is one chunk, uncounted.
        mode: the prompt mode (``embedder.prompt_mode``).
        refused: when a dict is given, a report that must be refused is recorded there (its index -> the error)
            and its plan is ``None``, instead of raising (to report every bad row at once).

    Raises:
        PromptTooLongError: a statement whose sentence alone is longer than the window; the message names the
            statement, its token count and the limit.
        ValueError: an unknown prompt mode.
    """
    sep = PROMPT_SEPARATORS.get(mode, "")
    sentences: dict[str, list[str]] = {}
    order: list[str] = []
    for r in reports:
        s = prompt_sentences(r, mode)
        p = sep.join(s)
        order.append(p)
        sentences.setdefault(p, s)
    if window.max_tokens is None:
        return [PromptPlan(p, (p,)) for p in order]
    distinct = list(sentences)
    plans: dict[str, PromptPlan | PromptTooLongError] = {}
    for p, n in zip(distinct, window.counts(distinct)):
        if n <= window.max_tokens:
            plans[p] = PromptPlan(p, (p,), (n,), n)
            continue
        s = sentences[p]
        counts = window.counts(s)
        too_long = [k for k, m in enumerate(counts) if m > window.max_tokens]
        if too_long:
            k = too_long[0]
            plans[p] = PromptTooLongError(
                f"statement {k + 1} of {len(s)} of the report makes a sentence of the ordered prompt of "
                f"{window.describe(counts[k])} ({s[k][:80]!r}{'...' if len(s[k]) > 80 else ''}); the "
                f"{window.name} embedder reads at most {window.max_tokens} tokens of one text, and a statement "
                "cannot be split without changing its meaning. Shorten or split that statement.",
                tokens=counts[k],
                limit=window.max_tokens,
            )
            continue
        chunks, tokens = _pack(s, sep, counts, window)
        plans[p] = PromptPlan(p, tuple(chunks), tuple(tokens), n)
    out: list = []
    for i, p in enumerate(order):
        plan = plans[p]
        if isinstance(plan, PromptTooLongError):
            if refused is None:
                raise plan
            refused[i] = plan
            plan = None
        out.append(plan)
    return out


def combine_chunks(vectors: np.ndarray, tokens: Sequence[int]) -> np.ndarray:
    """The vector of a prompt embedded in chunks: the token-count-weighted mean of the chunk vectors ``(k, D)``,
    L2-normalised; float32 ``(D,)``. Raises ValueError when the shapes disagree or a weight is not positive."""
    vectors = np.asarray(vectors, dtype=np.float64)
    w = np.asarray(tokens, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(w) or not len(w) or (w <= 0).any():
        raise ValueError(f"combine_chunks needs (k, D) vectors and k positive token counts, got {vectors.shape}, {w}")
    return l2_normalize(w @ vectors / w.sum()).astype(np.float32)


def plan_summary(plans: Sequence[PromptPlan], window: TokenWindow) -> dict:
    """What the rule did to ``plans`` (one per record, duplicates counted): ``window`` (max tokens or None),
    ``token_count`` (how tokens were counted), ``max_prompt_tokens`` (the longest prompt; None without a window),
    ``long_records`` (records whose prompt exceeds the window: embedded in chunks), ``long_prompts`` (distinct such
    prompts), ``strategy``."""
    counted = [p.prompt_tokens for p in plans if p.prompt_tokens is not None]
    return {
        "window": window.max_tokens,
        "token_count": window.rule if window.max_tokens is not None else "not counted (no window)",
        "max_prompt_tokens": max(counted) if counted else None,
        "long_records": int(sum(p.split for p in plans)),
        "long_prompts": len({p.prompt for p in plans if p.split}),
        "strategy": STRATEGY,
    }


def prompt_window_table(reports: Iterable[Statements], window: TokenWindow, mode: str = "paper") -> pd.DataFrame:
    """How the reports meet the embedder's window, before anything is embedded (what the data chapter shows): one
    row per quantity — reports, the embedder and its window, the longest prompt, reports over the window (embedded
    in chunks) and reports refused (a statement longer than the window)."""
    refused: dict[int, PromptTooLongError] = {}
    plans = plan_prompts(reports, window, mode, refused=refused)
    s = plan_summary([p for p in plans if p is not None], window)
    rows = {
        "reports": len(plans),
        "embedder": window.name,
        "window (tokens)": "none" if s["window"] is None else s["window"],
        "longest prompt (tokens)": "not counted" if s["max_prompt_tokens"] is None else s["max_prompt_tokens"],
        "reports over the window (embedded in chunks)": s["long_records"],
        "reports refused (a statement longer than the window)": len(refused),
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))
