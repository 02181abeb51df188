"""Baselines for the benchmark (:mod:`diffusets_core.eval.report`).

* :func:`nearest_neighbour` — retrieval from the TRAINING set: for each requested condition, the training ECG
  whose report embedding is closest (cosine similarity); ties (identical reports, or similarities within
  ``tie_tol``) are broken by the closest heart rate, then by the lowest index. A generator that beats this
  baseline does more than look up a matching training ECG.
* :func:`deepfake_generate` — ``deepfake-ecg`` (Thambawita et al. 2021, pip package ``deepfakeecg``), an
  external UNCONDITIONAL generator: noise ``uniform(-1, 1)`` of shape ``(B, 8, 5000)``, output x 6000 uV
  (= x 6 mV), 500 Hz, 8 leads ``I, II, V1..V6``. The 4 limb leads it does not produce are derived with
  Einthoven / Goldberger (:func:`derive_12_leads`), then each lead is resampled 5000 -> 1024 samples
  (``scipy.signal.resample``, 10 s at ``MODEL_FS`` = 102.4 Hz) and put in canonical lead order.
* ``noc`` — the paper's text-only ablation: the run's U-Net without sex, age and HR, trained beside the main one
  by :func:`diffusets_core.train.unet.train_text_only_unet`; :func:`~.sets.text_only_set` samples it.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import resample

from ..fileio import l2_normalize

__all__ = ["nearest_neighbour", "derive_12_leads", "load_deepfake_generator", "deepfake_generate", "DEEPFAKE_LEADS"]

DEEPFAKE_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def nearest_neighbour(
    query_text: Any, query_hr: Any, train_text: Any, train_hr: Any, tie_tol: float = 1e-6, chunk: int = 2048
) -> np.ndarray:
    """Index into the training set for every query: highest cosine similarity of report embeddings, ties
    (within ``tie_tol``) broken by the smallest ``|hr_train - hr_query|``, then the lowest index."""
    q = np.asarray(query_text, dtype=np.float64)
    t = np.asarray(train_text, dtype=np.float64)
    qh = np.asarray(query_hr, dtype=np.float64).ravel()
    th = np.asarray(train_hr, dtype=np.float64).ravel()
    if len(q) != len(qh) or len(t) != len(th):
        raise ValueError("text vectors and heart rates must have the same length")
    if len(t) == 0:
        raise ValueError("empty training set")
    q, t = l2_normalize(q), l2_normalize(t)
    out = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), chunk):
        sim = q[s : s + chunk] @ t.T
        best = sim.max(axis=1, keepdims=True)
        tied = sim >= best - tie_tol
        dhr = np.abs(th[None, :] - qh[s : s + chunk, None])
        dhr = np.where(np.isfinite(dhr), dhr, np.inf)
        dhr = np.where(tied, dhr, np.inf)
        # argmin returns the first (lowest index) minimum; rows whose tied HRs are all NaN fall back to argmax sim
        idx = np.argmin(dhr, axis=1)
        none = ~np.isfinite(dhr.min(axis=1))
        idx[none] = np.argmax(tied[none], axis=1)
        out[s : s + chunk] = idx
    return out


def derive_12_leads(x8: Any) -> np.ndarray:
    """``(B, 8, L)`` leads ``I, II, V1..V6`` -> ``(B, 12, L)`` canonical order ``I, II, III, aVR, aVL, aVF,
    V1..V6`` with III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2."""
    x8 = np.asarray(x8)
    if x8.ndim != 3 or x8.shape[1] != 8:
        raise ValueError(f"expected (B, 8, L) leads {DEEPFAKE_LEADS}, got {x8.shape}")
    i, ii = x8[:, 0], x8[:, 1]
    limb = np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2], axis=1)
    return np.concatenate([limb, x8[:, 2:]], axis=1)


@lru_cache(maxsize=2)
def load_deepfake_generator(checkpoint: str | None = None):
    """The deepfake-ecg Pulse2Pulse generator with its packaged weights (``checkpoints/g_stat.pt``), eval mode."""
    import deepfakeecg  # imported when the baseline is used: it builds its network at import

    path = Path(checkpoint) if checkpoint else Path(deepfakeecg.__file__).parent / "checkpoints" / "g_stat.pt"
    with warnings.catch_warnings():  # the package calls the deprecated nn.init.kaiming_normal
        warnings.simplefilter("ignore", FutureWarning)
        net = deepfakeecg.Generator()
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net.load_state_dict(ck["stat_dict"])
    return net.eval()


def deepfake_generate(
    n: int, seed: int = 0, batch_size: int = 16, out_len: int = 1024, checkpoint: str | None = None
) -> np.ndarray:
    """``n`` unconditional deepfake-ecg ECGs as ``(n, 12, out_len)`` float32 mV, canonical lead order.

    ECG ``i`` uses the noise of ``torch.Generator().manual_seed(seed + i)`` (independent of the batching)."""
    net = load_deepfake_generator(checkpoint)
    outs = []
    with torch.no_grad():
        for s in range(0, n, batch_size):
            noise = []
            for i in range(s, min(s + batch_size, n)):
                g = torch.Generator().manual_seed(int(seed) + i)
                noise.append(torch.rand((8, 5000), generator=g) * 2 - 1)
            y = net(torch.stack(noise)).float().numpy() * 6.0  # x 6000 uV -> mV
            outs.append(y)
    if not outs:
        return np.zeros((0, 12, out_len), np.float32)
    x12 = derive_12_leads(np.concatenate(outs))
    return resample(x12, out_len, axis=-1).astype(np.float32)
