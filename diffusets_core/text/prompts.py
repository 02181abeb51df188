"""Ordered diagnosis prompts (as built by ``prompt_propcess`` in the authors' ``utils/text_to_emb.py``;
book/reference_implementation.md#the-ordered-prompt).

A machine report is a list of statements in their original order (the manifest joins them with ``|``).
The paper turns them into one "ordered prompt" that is embedded as a whole:

``"Sinus rhythm|Normal ECG."`` ->
``"Most importantly, the 1st diagnosis is {Sinus rhythm}.As a supplementary condition, the 2nd diagnosis is {Normal ECG.}."``

Two modes
---------
``"paper"``
    Reproduces the reference byte for byte: ordinals ``1st``/``2nd``/``3rd`` then ``<i+1>th`` for every
    later index (so ``21th``, ``22th`` exactly like the reference), the literal curly braces, and no
    separator between sentences.

    *Whitespace / empty segments.*  The two reference repositories differ here: OFF keeps each segment
    verbatim (including surrounding blanks and empty segments such as ``"A||B"``), FORK strips every
    segment and drops the empty ones.  The FORK is the code that produced the paper's ada-002
    embeddings, so **paper mode follows FORK**: each segment is ``str.strip()``-ed and empty segments are
    dropped *before* numbering.  Inner whitespace and the text's own punctuation (e.g. the trailing
    period of ``"Normal ECG."``) are kept untouched.  For well-formed reports (no blank segments, no
    leading/trailing blanks) OFF and FORK agree, so this only matters for odd inputs.

``"clean"``
    A readable variant of the same ordered template: no braces, correct English ordinals
    (``21st``, ``22nd``, ``111th``), runs of whitespace collapsed, a statement's own trailing ``.``/``;``/``,``
    removed before the sentence period, and sentences separated by one space::

        "Most importantly, the 1st diagnosis is Sinus rhythm. As a supplementary condition, the 2nd diagnosis is Normal ECG."

An empty report (no statements left after stripping) gives the empty string ``""`` in both modes.

The prompt mode is part of every embedder identity (and thus of every cache key and artifact), because
the two modes give different vectors for the same report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Union

PROMPT_MODES = ("paper", "clean")
#: what joins the sentences of an ordered prompt: nothing in the reference's template, one space in ``clean``
PROMPT_SEPARATORS = {"paper": "", "clean": " "}

Statements = Union[str, Sequence[str], None]

_WS = re.compile(r"\s+")


def split_statements(statements: Statements) -> list[str]:
    """Return the statements as a list of stripped, non-empty strings (FORK semantics).

    ``statements`` is a ``|``-joined string (as in the manifest), a list/tuple of strings, or ``None``
    / NaN (treated as no statements).
    """
    if statements is None:
        return []
    if isinstance(statements, float):  # pandas NaN for an empty CSV cell
        if statements != statements:
            return []
        raise TypeError(f"statements must be a string or a list of strings, got float {statements!r}")
    if isinstance(statements, str):
        parts: Iterable[str] = statements.split("|")
    else:
        parts = []
        for s in statements:
            if not isinstance(s, str):
                raise TypeError(f"every statement must be a string, got {type(s).__name__} {s!r}")
            # a list element may itself contain '|' only if the caller joined things; keep it as one statement
            parts.append(s)  # type: ignore[attr-defined]
    return [p.strip() for p in parts if p.strip()]


def paper_ordinal(i: int) -> str:
    """Ordinal of the reference for 0-based index ``i``: 1st, 2nd, 3rd, then ``f"{i+1}th"`` (21th, ...)."""
    if i == 0:
        return "1st"
    if i == 1:
        return "2nd"
    if i == 2:
        return "3rd"
    return f"{i + 1}th"


def english_ordinal(n: int) -> str:
    """Correct English ordinal of the 1-based number ``n`` (1st, 2nd, 3rd, 4th, 11th, 21st, 112th)."""
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _sentence_head(i: int, ordinal: str) -> str:
    if i == 0:
        return f"Most importantly, the {ordinal} diagnosis is "
    return f"As a supplementary condition, the {ordinal} diagnosis is "


def prompt_sentences(statements: Statements, mode: str = "paper") -> list[str]:
    """The sentences of the ordered prompt, one per statement, in order: ``PROMPT_SEPARATORS[mode].join(...)``
    of them is :func:`ordered_prompt`. Each sentence carries its statement's ordinal, so any run of consecutive
    sentences is itself a piece of the prompt (what :mod:`~diffusets_core.text.window` embeds when a prompt is
    longer than the embedder's window). Raises ValueError on an unknown ``mode``."""
    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt mode must be one of {PROMPT_MODES}, got {mode!r}")
    items = split_statements(statements)
    if mode == "paper":
        return [_sentence_head(i, paper_ordinal(i)) + "{" + s + "}." for i, s in enumerate(items)]
    sentences = []
    for s in items:
        text = _WS.sub(" ", s).rstrip(" .;,")
        if not text:
            continue
        sentences.append(_sentence_head(len(sentences), english_ordinal(len(sentences) + 1)) + text + ".")
    return sentences


def ordered_prompt(statements: Statements, mode: str = "paper") -> str:
    """Build the ordered prompt for one report.

    Parameters
    ----------
    statements:
        ``"Sinus rhythm|Normal ECG."`` or ``["Sinus rhythm", "Normal ECG."]``.
    mode:
        ``"paper"`` (exact reference string) or ``"clean"`` (readable variant); see the module docstring.
    """
    sentences = prompt_sentences(statements, mode)  # validates mode
    return PROMPT_SEPARATORS[mode].join(sentences)


def ordered_prompts(reports: Iterable[Statements], mode: str = "paper") -> list[str]:
    """Vectorised :func:`ordered_prompt` over many reports."""
    return [ordered_prompt(r, mode) for r in reports]
