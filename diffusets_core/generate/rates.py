"""Output sampling rates of a generated dataset: the model generates at 102.4 Hz; ``generate --conditions --fs``
resamples to a dataset's rate.

:data:`OUTPUT_RATES` lists the rates offered with the exact rational ratio from the model's rate;
:func:`output_rate` checks a requested rate; :func:`resample` converts a batch and says how, for the WFDB headers
and ``dataset.json``.
"""

from __future__ import annotations

import numpy as np

from ..data.preprocess import MODEL_FS

__all__ = ["OUTPUT_RATES", "output_rate", "resample"]

#: Output sampling rates (Hz) -> ``scipy.signal.resample_poly`` (up, down) from the model's 102.4 Hz.
#: 100 Hz is PTB-XL's low-rate files; 500 Hz is PTB-XL's high-rate files and MIMIC-IV-ECG.
OUTPUT_RATES: dict[float, tuple[int, int] | None] = {MODEL_FS: None, 100.0: (125, 128), 500.0: (625, 128)}


def output_rate(fs: float) -> float:
    """The key of :data:`OUTPUT_RATES` equal to ``fs`` (within 1e-6 Hz). ValueError naming the offered rates
    otherwise."""
    for k in OUTPUT_RATES:
        if abs(float(fs) - k) < 1e-6:
            return k
    raise ValueError(f"output sampling rate {fs:g} Hz: expected one of {', '.join(f'{k:g}' for k in OUTPUT_RATES)}")


def resample(signals: np.ndarray, fs_out: float) -> tuple[np.ndarray, str]:
    """``(B, 12, L)`` mV at 102.4 Hz -> the same at ``fs_out`` (one of :data:`OUTPUT_RATES`), and a sentence
    saying how (for the header). Uses ``scipy.signal.resample_poly`` (polyphase FIR, Kaiser window): the exact
    rational ratio, so 10 s of 1024 samples become 1000 (100 Hz) or 5000 (500 Hz). ValueError: another rate."""
    key = output_rate(fs_out)
    ratio = OUTPUT_RATES[key]
    if ratio is None:
        return signals.astype(np.float32), "none (the model's native rate)"
    from scipy.signal import resample_poly  # scipy.signal loads in ~0.3 s; only resampled datasets need it

    up, down = ratio
    out = resample_poly(signals.astype(np.float64), up, down, axis=-1).astype(np.float32)
    return out, f"scipy.signal.resample_poly up={up} down={down} from {MODEL_FS:g} Hz"
