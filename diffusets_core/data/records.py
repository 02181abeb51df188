"""What a dataset reader yields: one :class:`RecordRef` per source record."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RecordRef", "DatasetLayoutError", "float_or_none", "normalise_sex"]


class DatasetLayoutError(FileNotFoundError):
    """The data directory does not have the layout the chosen reader expects."""

    def __init__(self, path: str | os.PathLike[str], expected: str, detail: str = ""):
        self.path = str(path)
        self.expected = expected
        msg = f"{self.path}: expected {expected}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


@dataclass
class RecordRef:
    """A pointer to one source record plus its metadata, before the signal is read.

    ``skip_reason`` is set by a reader when the metadata row itself is unusable (e.g. a
    malformed CSV row); preparation then writes a ``skipped`` manifest row without
    touching the signal, so nothing is dropped silently.
    """

    record_id: str
    subject_id: str
    path: str  # WFDB record path without extension ("" if unknown)
    report: str = ""
    findings: str = ""  # structured labels: finding ids joined with "|" (sources that have them: the cohort)
    age: float | None = None
    sex: str | None = None  # "M" / "F" / None
    rr_interval_ms: float | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    skip_reason: str | None = None


_SEX = {
    "m": "M",
    "male": "M",
    "man": "M",
    "männlich": "M",
    "f": "F",
    "female": "F",
    "woman": "F",
    "w": "F",
    "weiblich": "F",
}


def float_or_none(value: Any) -> float | None:
    """A metadata value (CSV cell, header comment) as a float; None when it is missing, not a number, or NaN."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def normalise_sex(value: Any) -> str | None:
    """Map the common text spellings of sex to ``"M"``/``"F"``; anything else -> None.

    The numeric encodings of individual datasets (PTB-XL 0=male, 1=female) are
    translated by their readers, not here, because they differ between datasets.
    """
    if value is None:
        return None
    key = str(value).strip().lower()
    return _SEX.get(key)
