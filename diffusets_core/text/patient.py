"""Numeric encoding of patient information (sex, age, heart rate) — the only place it happens.

``encode_patient(sex, age, hr, mode)`` returns a float32 array of shape ``(n, 3)`` with columns in the
reference order **sex, age, HR**.

``mode="paper"``
    The reference's raw values: sex ``1`` = male, ``0`` = female; age in years; HR in bpm.  Use it only
    with models bound to the paper's conditioning (raw values next to a unit-norm text vector).
``mode="normalized"`` (default)
    Values of order one, centred on a typical adult:

    * sex: ``+1`` = male, ``-1`` = female (symmetric, so "no information" after condition dropout is 0);
    * age: ``(age - 50) / 20``   (0-120 y -> -2.5 .. +3.5);
    * HR:  ``(hr - 75) / 25``    (20-300 bpm -> -2.2 .. +9; 50-150 bpm -> -1 .. +3).

Validation (both modes): sex must be ``"M"``/``"F"`` (case-insensitive; ``"male"``/``"female"`` are
accepted too), age within 0-120 years, HR within 20-300 bpm, all finite; a ``ValueError`` names the field,
the offending value and its position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PATIENT_MODES = ("normalized", "paper")
AGE_RANGE = (0.0, 120.0)
HR_RANGE = (20.0, 300.0)
AGE_CENTER, AGE_SCALE = 50.0, 20.0
HR_CENTER, HR_SCALE = 75.0, 25.0
COLUMNS = ("sex", "age", "hr")

_SEX = {"m": 1, "male": 1, "f": 0, "female": 0}


def _as_1d(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    return np.atleast_1d(a).reshape(-1)


def _sex_to_male(sex: Any) -> np.ndarray:
    vals = _as_1d(sex)
    out = np.empty(len(vals), dtype=np.float32)
    for i, v in enumerate(vals):
        key = v.strip().lower() if isinstance(v, str) else None
        if key not in _SEX:
            where = f" at position {i}" if len(vals) > 1 else ""
            raise ValueError(f"sex must be 'M' or 'F', got {_show(v)}{where}")
        out[i] = _SEX[key]
    return out


def _checked(name: str, x: Any, lo: float, hi: float, unit: str) -> np.ndarray:
    vals = _as_1d(x)
    try:
        arr = vals.astype(np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in vals if not _is_number(v))
        raise ValueError(f"{name} must be a number ({unit}), got {_show(bad)}") from None
    bad = ~np.isfinite(arr) | (arr < lo) | (arr > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f" at position {i}" if len(arr) > 1 else ""
        raise ValueError(f"{name} must be within {lo:g}-{hi:g} {unit}, got {_show(vals[i])}{where}")
    return arr


def _show(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    return repr(v)


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def encode_patient(sex: Any, age: Any, hr: Any, mode: str = "normalized") -> np.ndarray:
    """Encode patient information -> ``np.ndarray`` float32 ``(n, 3)`` = (sex, age, HR).

    ``sex``/``age``/``hr`` are scalars or sequences; scalars broadcast against sequences.
    """
    if mode not in PATIENT_MODES:
        raise ValueError(f"patient encoding mode must be one of {PATIENT_MODES}, got {mode!r}")
    male = _sex_to_male(sex)
    a = _checked("age", age, *AGE_RANGE, "years")
    h = _checked("hr", hr, *HR_RANGE, "bpm")
    n = max(len(male), len(a), len(h))
    for name, arr in (("sex", male), ("age", a), ("hr", h)):
        if len(arr) not in (1, n):
            raise ValueError(f"{name} has {len(arr)} values, expected 1 or {n}")
    male, a, h = (np.broadcast_to(v, (n,)) for v in (male, a, h))
    if mode == "paper":
        cols = (male, a, h)
    else:
        cols = (2.0 * male - 1.0, (a - AGE_CENTER) / AGE_SCALE, (h - HR_CENTER) / HR_SCALE)
    return np.stack(cols, axis=1).astype(np.float32)


def decode_patient(x: np.ndarray, mode: str = "normalized") -> dict:
    """Inverse of :func:`encode_patient`: ``{"sex": [...'M'/'F'], "age": array, "hr": array}``."""
    if mode not in PATIENT_MODES:
        raise ValueError(f"patient encoding mode must be one of {PATIENT_MODES}, got {mode!r}")
    x = np.asarray(x, dtype=np.float64).reshape(-1, 3)
    if mode == "paper":
        male, age, hr = x[:, 0] >= 0.5, x[:, 1], x[:, 2]
    else:
        male, age, hr = x[:, 0] > 0, x[:, 1] * AGE_SCALE + AGE_CENTER, x[:, 2] * HR_SCALE + HR_CENTER
    return {"sex": ["M" if m else "F" for m in male], "age": age, "hr": hr}
