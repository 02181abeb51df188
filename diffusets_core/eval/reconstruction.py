"""How much of an ECG an autoencoder keeps: signal error, per-lead correlation, the physiology a reader looks at
(P-wave amplitude, QRS width) and the physical consistency of the limb leads.

These numbers bound what any generator built on the autoencoder can reach: a latent diffusion model samples
latents, and the decoder can only draw what its reconstructions of real ECGs keep.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from scipy.signal import resample

from ..data.cohort.interpreter import measure as interpret_record
from ..data.cohort.morphology import FS as COHORT_FS
from ..data.leads import CANONICAL_LEADS
from ..data.limb_leads import limb_identity_error
from ..data.preprocess import MODEL_FS
from .features import measure_features

__all__ = [
    "reconstruct",
    "lead_correlation",
    "typical_reconstruction",
    "physical_consistency",
    "p_wave_amplitude",
    "reconstruction_metrics",
    "per_lead_table",
    "edge_ratio",
    "AMPLITUDE_LIMIT_MV",
]

#: |value| above this (mV) no surface ECG reaches; used as the "beyond ±10 mV" physical-consistency check.
AMPLITUDE_LIMIT_MV = 10.0


@torch.no_grad()
def reconstruct(vae, x: np.ndarray, *, batch: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
    """(N, 12, L) mV -> (N, 12, L) mV: decode(posterior mean) of each ECG, in batches."""
    vae.eval().to(device)
    out = []
    for i in range(0, len(x), batch):
        xb = torch.as_tensor(np.ascontiguousarray(x[i : i + batch]), dtype=torch.float32, device=device)
        z, _, _ = vae.encode(xb, sample=False)
        out.append(vae.decode(z).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros_like(x, dtype=np.float32)


def lead_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each record's lead with the same lead of ``y``: (N, 12, L) x2 -> (N, 12)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1) + 1e-12)


def typical_reconstruction(x: np.ndarray, x_hat: np.ndarray) -> tuple[int, float]:
    """The record of median reconstruction quality: ranks the records of ``x`` / ``x_hat`` ((N, 12, L) mV each)
    by the median over leads of :func:`lead_correlation` and returns ``(index, its median correlation)`` of the
    one at rank ``N // 2``."""
    corr = np.median(lead_correlation(np.asarray(x, np.float64), np.asarray(x_hat, np.float64)), axis=1)
    i = int(np.argsort(corr)[len(x) // 2])
    return i, float(corr[i])


def edge_ratio(x: np.ndarray, fs: float, edge_s: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """How the first and last ``edge_s`` seconds of each record compare with its middle: per record, the RMS
    (over leads and samples) of the signal minus each lead's median in the edge window, divided by the same RMS
    over the middle of the record. Beats fall anywhere in a real 10 s window, so real ECGs sit near 1 on average;
    a start-up transient (padding, a border effect of the decoder or of the latent's first positions) shows as a
    ratio well above 1. Returns ``(start, end)``, each (N,)."""
    a = np.asarray(x, dtype=np.float64)
    a = a - np.median(a, axis=-1, keepdims=True)
    k = max(1, int(round(edge_s * fs)))
    mid = np.sqrt((a[..., k:-k] ** 2).mean(axis=(1, 2))) + 1e-9
    start = np.sqrt((a[..., :k] ** 2).mean(axis=(1, 2))) / mid
    end = np.sqrt((a[..., -k:] ** 2).mean(axis=(1, 2))) / mid
    return start, end


def physical_consistency(x: np.ndarray, fs: float = MODEL_FS) -> dict[str, float]:
    """Checks no real 12-lead ECG fails, for (N, 12, L) mV signals sampled at ``fs`` Hz: the median and 95th
    percentile over records of the frontal-lead identity error (µV RMS,
    :func:`~..data.limb_leads.limb_identity_error`), the share of records with any sample beyond
    ±:data:`AMPLITUDE_LIMIT_MV`, and the median :func:`edge_ratio` at the start and the end of the records."""
    if len(x) == 0:
        return {
            "identity_uv_median": np.nan,
            "identity_uv_p95": np.nan,
            "beyond_10mv": np.nan,
            "edge_start": np.nan,
            "edge_end": np.nan,
        }
    err = limb_identity_error(x)
    beyond = np.abs(np.asarray(x)).reshape(len(x), -1).max(axis=1) > AMPLITUDE_LIMIT_MV
    start, end = edge_ratio(x, fs)
    return {
        "identity_uv_median": float(np.median(err)),
        "identity_uv_p95": float(np.percentile(err, 95)),
        "beyond_10mv": float(beyond.mean()),
        "edge_start": float(np.median(start)),
        "edge_end": float(np.median(end)),
    }


def p_wave_amplitude(x: np.ndarray, fs: float, workers: int = 0) -> np.ndarray:
    """P-wave amplitude (mV, lead II of the median beat) of each (12, L) record, measured by the embedded
    cohort's own interpreter after resampling to its 500 Hz (NaN where it finds no beats)."""
    n_out = int(round(x.shape[-1] * COHORT_FS / fs))
    amps = []
    for rec in x:
        m = interpret_record(resample(np.asarray(rec, dtype=np.float64), n_out, axis=-1))
        amps.append(float(m.get("p_amp", np.nan)) if "error" not in m else np.nan)
    return np.asarray(amps)


def reconstruction_metrics(
    x: np.ndarray, x_hat: np.ndarray, fs: float, *, physiology: bool = True, workers: int = 0
) -> dict[str, float]:
    """Summary of how well ``x_hat`` reconstructs ``x`` (both (N, 12, L) mV):

    ``rmse_uv`` (all values), ``corr_median`` (median over records and leads of the per-lead Pearson
    correlation), ``worst_lead`` / ``worst_lead_corr`` (the lead with the lowest median correlation),
    ``identity_uv_median`` / ``beyond_10mv`` of ``x_hat`` (:func:`physical_consistency`) and, with
    ``physiology``, the median P-wave amplitude and QRS width of ``x_hat`` as ratios of those of ``x``
    (``p_amp_ratio``, ``qrs_ratio``; 1.0 = kept).
    """
    x, x_hat = np.asarray(x, np.float32), np.asarray(x_hat, np.float32)
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {x_hat.shape}")
    corr = lead_correlation(x.astype(np.float64), x_hat.astype(np.float64))
    per_lead = np.median(corr, axis=0)
    w = int(np.argmin(per_lead))
    row = {
        "n": len(x),
        "rmse_uv": float(np.sqrt(np.mean((x - x_hat) ** 2)) * 1000),
        "corr_median": float(np.median(corr)),
        "worst_lead": CANONICAL_LEADS[w],
        "worst_lead_corr": float(per_lead[w]),
        **physical_consistency(x_hat, fs),
    }
    if physiology:
        p_real, p_hat = p_wave_amplitude(x, fs), p_wave_amplitude(x_hat, fs)
        q_real = measure_features(x, fs=fs, workers=workers)["qrs_ms"].to_numpy(float)
        q_hat = measure_features(x_hat, fs=fs, workers=workers)["qrs_ms"].to_numpy(float)
        row.update(
            {
                "p_amp_real_mv": _median(p_real),
                "p_amp_ratio": float(np.float64(_median(p_hat)) / _median(p_real)),
                "qrs_real_ms": _median(q_real),
                "qrs_ratio": float(np.float64(_median(q_hat)) / _median(q_real)),
            }
        )
    return row


def _median(values: np.ndarray) -> float:
    """``np.nanmedian`` as a float; NaN, without numpy's all-NaN warning, when nothing was measurable (a toy
    autoencoder's reconstructions often have no detectable QRS, and the table says so with NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(values))


def per_lead_table(x: np.ndarray, x_hat: np.ndarray) -> pd.DataFrame:
    """Per lead: RMSE (µV) and median correlation of ``x_hat`` against ``x`` ((N, 12, L) mV each)."""
    corr = lead_correlation(np.asarray(x, np.float64), np.asarray(x_hat, np.float64))
    rmse = np.sqrt(((np.asarray(x) - np.asarray(x_hat)) ** 2).mean(axis=(0, 2))) * 1000
    return pd.DataFrame(
        {"RMSE (µV)": rmse, "median correlation": np.median(corr, axis=0)}, index=pd.Index(CANONICAL_LEADS, name="lead")
    )
