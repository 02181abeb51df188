"""Einthoven's and Goldberger's identities between the six frontal (limb) leads.

The six limb leads of a 12-lead ECG are recorded from three electrodes (RA, LA, LL), so only two of them are
independent. With I = LA − RA and II = LL − RA (Einthoven 1912; Goldberger 1942; AHA/ACCF/HRS
recommendations for the standardization of the ECG, Kligfield et al., Circulation 2007, part I):

    III = II − I,   aVR = −(I + II) / 2,   aVL = I − II / 2,   aVF = II − I / 2.

ECG machines store I and II and compute the other four this way, and so does deepfake-ecg (Thambawita et al.
2021), which generates the eight independent leads I, II, V1–V6. A generator that models all twelve leads freely
can break these identities, which no real heart can do; :func:`derive_limb_leads` makes them hold by
construction and :func:`limb_identity_error` measures how far a set of ECGs is from them.

Arrays are channels-first in :data:`~.leads.CANONICAL_LEADS` order: ``(..., 12, L)`` signals, ``(..., 8, L)``
independent leads in :data:`INDEPENDENT_LEADS` order.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from .leads import CANONICAL_LEADS

__all__ = ["INDEPENDENT_LEADS", "INDEPENDENT_INDEX", "derive_limb_leads", "independent_leads", "limb_identity_error"]

#: The eight leads that determine a 12-lead ECG: I, II and the six chest leads.
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: Their positions in :data:`~.leads.CANONICAL_LEADS`.
INDEPENDENT_INDEX: tuple[int, ...] = tuple(CANONICAL_LEADS.index(n) for n in INDEPENDENT_LEADS)

Array = Union[np.ndarray, torch.Tensor]


def independent_leads(x: Array) -> Array:
    """``(..., 12, L)`` -> ``(..., 8, L)``: leads I, II, V1–V6 of a canonical-order signal."""
    if x.shape[-2] != len(CANONICAL_LEADS):
        raise ValueError(f"expected (..., 12, L) signals in canonical lead order, got shape {tuple(x.shape)}")
    idx = list(INDEPENDENT_INDEX)
    return x[..., idx, :]


def derive_limb_leads(x8: Array) -> Array:
    """``(..., 8, L)`` leads I, II, V1–V6 -> ``(..., 12, L)`` canonical 12-lead signal, with III, aVR, aVL, aVF
    computed from I and II by the identities in the module docstring (units unchanged). Works on numpy arrays
    and torch tensors (differentiable)."""
    if x8.shape[-2] != len(INDEPENDENT_LEADS):
        raise ValueError(f"expected (..., 8, L) signals (leads {', '.join(INDEPENDENT_LEADS)}), got {tuple(x8.shape)}")
    i, ii, chest = x8[..., 0:1, :], x8[..., 1:2, :], x8[..., 2:, :]
    parts = [i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2, chest]
    if isinstance(x8, torch.Tensor):
        return torch.cat(parts, dim=-2)
    return np.concatenate(parts, axis=-2)


def limb_identity_error(x: Array) -> np.ndarray:
    """Per-record RMS deviation (µV) of the recorded III, aVR, aVL, aVF from the values their identities give
    from I and II: ``sqrt(mean over the 4 leads and L samples of (lead − derived)²) × 1000`` for ``(N, 12, L)``
    signals in mV. Real 12-lead ECGs sit near 0 (rounding of the stored samples); returns shape ``(N,)``."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 3 or a.shape[1] != len(CANONICAL_LEADS):
        raise ValueError(f"expected (N, 12, L) signals in canonical lead order, got shape {a.shape}")
    a = a.astype(np.float64)
    derived = derive_limb_leads(independent_leads(a))
    dep = [CANONICAL_LEADS.index(n) for n in ("III", "aVR", "aVL", "aVF")]
    d = a[:, dep, :] - derived[:, dep, :]
    return np.sqrt((d**2).mean(axis=(1, 2))) * 1000.0
