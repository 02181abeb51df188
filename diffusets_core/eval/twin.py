"""Personal consistency of generated ECGs: is a generated ECG closer to its own subject than to another subject?

The digital-twin request for test subject S asks for a report F at heart rate h with S's earlier ECG as the
reference. Its *own* target is S's record with F at h; its *counterpart* (:mod:`diffusets_core.data.cohort.counterpart`)
is F at h on another subject's morphology. Report and rate are the same in both, so a generated ECG that resembles
its own target more than the counterpart carries the subject's personal morphology.

Input convention (as :mod:`.features`): ``(N, 12, L)`` mV, leads in :data:`~diffusets_core.data.leads.CANONICAL_LEADS`
order, ``fs`` Hz (the models' 10 s at 102.4 Hz, L = 1024). Measures, per request:

* ``corr_own`` / ``corr_other``: the 12-lead median beat of the generated ECG against that of its own target and of
  the counterpart: Pearson correlation lead by lead, averaged over the 12 leads (:func:`beat_correlation`). The median
  beats are those of the feature-level benchmark (:func:`.features.find_r_peaks`, :func:`.features.median_beat`: R
  peaks by neurokit2 behind the beat-consistency gate, 0.5 Hz high-pass, 500 Hz, each R refined on the detection
  lead), cut from ``pre_s`` before to ``post_s`` after the R. Two records' R fiducials can sit on different leads,
  whose R peaks are not simultaneous, so the beats are compared at the time shift (within ``max_lag_s``) that
  correlates them best, one shift for all 12 leads. At a fast rate the window reaches into the next beat; the
  comparison is fair because own target and counterpart are at the same rate.
* ``axis_err_*``: the difference (degrees, 0-180) of the frontal QRS axes (:func:`qrs_axis_deg`).
* ``qrs_err_*`` / ``qt_err_*``: absolute differences (ms) of QRS duration and QT of the median beats
  (:func:`.features.delineate_beat`, the benchmark's delineation, with its plausibility windows).

A record whose median beat cannot be read (flat, noise, too few beats) gives NaN measures and a ``reason``; its row
is left out of the rates of :func:`consistency_summary`, which reports how many rows were readable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.leads import CANONICAL_LEADS
from .features import (
    DEFAULT_DETECT_LEADS,
    FLAT_STD_MV,
    FS,
    MEDIAN_POST_S,
    MEDIAN_PRE_S,
    PLAUSIBLE,
    delineate_beat,
    find_r_peaks,
    median_beat,
    median_beat_rate,
)

__all__ = [
    "MAX_LAG_S",
    "MedianBeats",
    "median_beats",
    "beat_correlation",
    "beat_correlation_by_lead",
    "qrs_axis_deg",
    "axis_difference_deg",
    "personal_consistency",
    "consistency_summary",
    "TABLE_COLUMNS",
]

#: Largest time shift (s) between two median beats that :func:`beat_correlation` tries: the R peaks of different
#: leads lie up to a few tens of ms apart, and two records' R fiducials may come from different leads.
MAX_LAG_S = 0.04
_I, _AVF = CANONICAL_LEADS.index("I"), CANONICAL_LEADS.index("aVF")


@dataclass
class MedianBeats:
    """12-lead median beats of ``N`` records (:func:`median_beats`).

    Attributes:
        beats: ``(N, 12, W)`` mV, all NaN for a record without a median beat.
        fs: the beats' sampling rate (Hz): about 500 for a 102.4 Hz input, the input's own from 250 Hz up.
        r_index: the R peak's sample in every beat.
        reason: per record, ``""`` when its beat was read, otherwise why not.
        qrs_on, qrs_off, t_end: ``(N,)`` sample indices (float) in the beat frame, NaN when not found.
        base: ``(N, 12)`` isoelectric level per lead (mean of the 10 ms ending at QRS onset), NaN when not found.
        hr: ``(N,)`` heart rate (bpm) of the R peaks, NaN when not read.
        notes: per record, what the delineation could not find (``"; "``-joined; ``""`` when everything).
    """

    beats: np.ndarray
    fs: float
    r_index: int
    reason: list[str]
    qrs_on: np.ndarray
    qrs_off: np.ndarray
    t_end: np.ndarray
    base: np.ndarray
    hr: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.beats)

    @property
    def readable(self) -> np.ndarray:
        """``(N,)`` bool: the record has a median beat."""
        return np.array([r == "" for r in self.reason])

    def _ms(self, a: np.ndarray, b: np.ndarray, key: str) -> np.ndarray:
        v = (b - a) * 1000.0 / self.fs
        lo, hi = PLAUSIBLE[key]
        return np.where((v >= lo) & (v <= hi), v, np.nan)  # NaN stays NaN

    @property
    def qrs_ms(self) -> np.ndarray:
        """``(N,)`` QRS duration (ms), NaN when not found or outside the benchmark's plausible 30-250 ms."""
        return self._ms(self.qrs_on, self.qrs_off, "qrs_ms")

    @property
    def qt_ms(self) -> np.ndarray:
        """``(N,)`` QT (ms, QRS onset to T end), NaN when not found or outside the plausible 150-750 ms."""
        return self._ms(self.qrs_on, self.t_end, "qt_ms")


def _one_beat(sig: np.ndarray, fs: float, pre_s: float, post_s: float, highpass_hz: float) -> dict[str, Any]:
    """The median beat of one ``(12, L)`` record cut to ``pre_s`` / ``post_s`` around the R, with its delineation
    (made on the benchmark's wider window so that the T end and P wave are searched as :func:`.features.measure_record`
    does). Returns ``reason`` (and nothing else) when no beat could be read."""
    if not np.all(np.isfinite(sig)):
        return {"reason": "non-finite samples"}
    if float(np.max(np.std(sig, axis=1))) < FLAT_STD_MV:
        return {"reason": "flat signal"}
    rp = find_r_peaks(sig, fs, DEFAULT_DETECT_LEADS, highpass_hz)
    if rp.reason:
        return {"reason": rp.reason}
    wide_pre, wide_post = max(pre_s, MEDIAN_PRE_S), max(post_s, MEDIAN_POST_S)
    mb, fsu, nb = median_beat(
        sig, rp.peaks, fs, lead=rp.lead, highpass_hz=highpass_hz, pre_s=wide_pre, post_s=wide_post
    )
    if mb is None:
        return {"reason": f"only {nb} complete beats for the median beat"}
    r_wide = int(round(wide_pre * fsu))
    d = delineate_beat(mb, fsu, r_wide, float(np.median(np.diff(rp.peaks)) / fs))
    start = r_wide - int(round(pre_s * fsu))
    width = int(round(pre_s * fsu)) + int(round(post_s * fsu))
    return {
        "reason": "",
        "beat": mb[:, start : start + width],
        **{k: d.get(k, math.nan) - start for k in ("qrs_on", "qrs_off", "t_end")},
        "base": d.get("base", np.full(12, np.nan)),
        "hr": rp.hr,
        "notes": "; ".join(d["reasons"]),
    }


def median_beats(
    signals: np.ndarray, fs: float = FS, *, pre_s: float = 0.25, post_s: float = 0.45, highpass_hz: float = 0.5
) -> MedianBeats:
    """The 12-lead median beat of every record of ``signals`` ``(N, 12, L)`` (or one ``(12, L)``) mV at ``fs`` Hz,
    cut from ``pre_s`` before to ``post_s`` after the R peak (module docstring). Never fails on a record: one
    without a readable beat gets a NaN row and a ``reason``.

    Raises:
        ValueError: ``signals`` not of shape ``(N, 12, L)`` / ``(12, L)``, or a window not positive.
    """
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] != 12:
        raise ValueError(f"signals must be (N, 12, L) mV in canonical lead order, got shape {np.shape(signals)}")
    if pre_s <= 0 or post_s <= 0:
        raise ValueError(f"pre_s and post_s must be positive seconds, got {pre_s}, {post_s}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit2 and empty-slice warnings on unreadable records
        rows = [_one_beat(s, fs, pre_s, post_s, highpass_hz) for s in x]
    fsu = median_beat_rate(fs)
    r_index, width = int(round(pre_s * fsu)), int(round(pre_s * fsu)) + int(round(post_s * fsu))
    n = len(rows)
    out = MedianBeats(
        beats=np.full((n, 12, width), np.nan),
        fs=float(fsu),
        r_index=r_index,
        reason=[r["reason"] for r in rows],
        qrs_on=np.full(n, np.nan),
        qrs_off=np.full(n, np.nan),
        t_end=np.full(n, np.nan),
        base=np.full((n, 12), np.nan),
        hr=np.full(n, np.nan),
        notes=[r.get("notes", "") for r in rows],
    )
    for i, r in enumerate(rows):
        if r["reason"]:
            continue
        out.beats[i] = r["beat"]
        out.qrs_on[i], out.qrs_off[i], out.t_end[i] = r["qrs_on"], r["qrs_off"], r["t_end"]
        out.base[i], out.hr[i] = r["base"], r["hr"]
    return out


def _beats_of(x: MedianBeats | np.ndarray, what: str) -> np.ndarray:
    b = x.beats if isinstance(x, MedianBeats) else np.asarray(x, dtype=np.float64)
    if b.ndim == 2:
        b = b[None]
    if b.ndim != 3 or b.shape[1] != 12:
        raise ValueError(f"{what}: median beats must be (N, 12, W), got shape {b.shape}")
    return b


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation over the last axis of ``a`` and ``b`` (``(..., T)``); NaN where either is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def _lagged(a: MedianBeats | np.ndarray, b: MedianBeats | np.ndarray, max_lag_s: float, fs: float | None):
    """``(per-lead (N, 12), mean (N,))`` correlations at the shift (within ``max_lag_s``) with the highest mean."""
    x, y = _beats_of(a, "a"), _beats_of(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"median beats must have the same shape to be compared, got {x.shape} and {y.shape}")
    rates = {m.fs for m in (a, b) if isinstance(m, MedianBeats)}
    if len(rates) > 1:
        raise ValueError(f"median beats at different rates {sorted(rates)} Hz cannot be compared")
    rate = next(iter(rates), fs)
    k = int(round(max_lag_s * rate)) if rate else 0
    k = min(k, x.shape[-1] // 4)  # the overlap keeps at least half the window
    w = x.shape[-1]
    best_lead = np.full(x.shape[:2], np.nan)
    best = np.full(len(x), -np.inf)
    for lag in range(-k, k + 1):
        per_lead = _pearson(x[..., max(0, lag) : w + min(0, lag)], y[..., max(0, -lag) : w - max(0, lag)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: unreadable records
            mean = np.nanmean(per_lead, axis=1)
        better = np.nan_to_num(mean, nan=-np.inf) > best
        best[better], best_lead[better] = mean[better], per_lead[better]
    best[~np.isfinite(best)] = np.nan
    return best_lead, best


def beat_correlation(
    a: MedianBeats | np.ndarray, b: MedianBeats | np.ndarray, *, max_lag_s: float = MAX_LAG_S, fs: float | None = None
) -> np.ndarray:
    """``(N,)`` mean over the 12 leads of the Pearson correlation of two sets of median beats, lead by lead, at the
    time shift within ``max_lag_s`` (one for all leads) where that mean is highest; a lead that is constant in
    either beat is left out of the mean, and a record missing in either is NaN.

    ``a``, ``b``: :class:`MedianBeats` (their rate sets the shift in samples) or ``(N, 12, W)`` arrays (shifted only
    when ``fs``, their rate, is given). ``max_lag_s=0`` compares the beats as aligned.

    Raises:
        ValueError: shapes differ or are not ``(N, 12, W)``, or beats at different rates.
    """
    return _lagged(a, b, max_lag_s, fs)[1]


def beat_correlation_by_lead(
    a: MedianBeats | np.ndarray, b: MedianBeats | np.ndarray, *, max_lag_s: float = MAX_LAG_S, fs: float | None = None
) -> pd.DataFrame:
    """The per-lead correlations behind :func:`beat_correlation` (at its shift): ``(N, 12)`` frame, one column per
    lead of :data:`~diffusets_core.data.leads.CANONICAL_LEADS`. Raises as :func:`beat_correlation`."""
    return pd.DataFrame(_lagged(a, b, max_lag_s, fs)[0], columns=list(CANONICAL_LEADS))


def qrs_axis_deg(beats: MedianBeats) -> np.ndarray:
    """``(N,)`` frontal QRS axis (degrees, -180..180) of each median beat, NaN where its QRS was not delineated.

    The hexaxial rule with leads I (0 degrees) and aVF (+90 degrees): ``atan2(area aVF, area I)`` of the net QRS
    areas from QRS onset to offset, each lead against its isoelectric level (the mean frontal QRS vector; Surawicz et
    al. 2009, AHA/ACCF/HRS recommendations for the standardization and interpretation of the ECG, part III, which
    defines the axis classes on it; the cohort interpreter reads the axis the same way). Treating aVF as the
    vertical component is the usual approximation of the hexaxial method.
    """
    out = np.full(len(beats), np.nan)
    w = beats.beats.shape[-1]
    for i in range(len(beats)):
        on, off = beats.qrs_on[i], beats.qrs_off[i]
        if not (np.isfinite(on) and np.isfinite(off)):
            continue
        lo, hi = max(0, int(round(on))), min(w, int(round(off)) + 1)
        if hi - lo < 2:
            continue
        seg = beats.beats[i, :, lo:hi] - beats.base[i][:, None]
        area_i, area_avf = float(seg[_I].sum()), float(seg[_AVF].sum())
        if area_i == 0 and area_avf == 0:
            continue
        out[i] = math.degrees(math.atan2(area_avf, area_i))
    return out


def axis_difference_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest angle (degrees, 0..180) between axes ``a`` and ``b`` (degrees; 170 and -170 are 20 apart), NaN where
    either is NaN."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.abs((d + 180.0) % 360.0 - 180.0)


#: columns of :func:`personal_consistency`
TABLE_COLUMNS = [
    "corr_own",
    "corr_other",
    "closer",
    "axis_err_own",
    "axis_err_other",
    "qrs_err_own",
    "qrs_err_other",
    "qt_err_own",
    "qt_err_other",
    "readable",
    "reason",
    "notes",
]


def _as_beats(x: MedianBeats | np.ndarray, fs: float, pre_s: float, post_s: float) -> MedianBeats:
    return x if isinstance(x, MedianBeats) else median_beats(x, fs, pre_s=pre_s, post_s=post_s)


def personal_consistency(
    generated: MedianBeats | np.ndarray,
    own: MedianBeats | np.ndarray,
    other: MedianBeats | np.ndarray,
    fs: float = FS,
    *,
    max_lag_s: float = MAX_LAG_S,
    pre_s: float = 0.25,
    post_s: float = 0.45,
) -> pd.DataFrame:
    """One row per request ``i``: how close ``generated[i]`` is to its own target ``own[i]`` and to the counterpart
    ``other[i]`` (module docstring). Each argument is ``(N, 12, L)`` mV at ``fs`` Hz, or :class:`MedianBeats` already
    made (with the same window and rate).

    Columns (:data:`TABLE_COLUMNS`): ``corr_own``, ``corr_other`` (:func:`beat_correlation`); ``closer``
    (``corr_own > corr_other``; pandas' nullable boolean, NA where a correlation is NaN); ``axis_err_own`` /
    ``axis_err_other`` (degrees), ``qrs_err_own`` / ``qrs_err_other``, ``qt_err_own`` / ``qt_err_other`` (ms,
    absolute); ``readable`` (``closer`` is known); ``reason`` (why not: which record's beat could not be read,
    ``"; "``-joined); ``notes`` (what a delineation could not find: the interval errors it leaves NaN).

    Raises:
        ValueError: the three sets have different numbers of records, or beats that cannot be compared.
    """
    g, o, x = (_as_beats(v, fs, pre_s, post_s) for v in (generated, own, other))
    if not len(g) == len(o) == len(x):
        raise ValueError(f"generated, own and other must hold as many records, got {len(g)}, {len(o)}, {len(x)}")
    corr_own = beat_correlation(g, o, max_lag_s=max_lag_s)
    corr_other = beat_correlation(g, x, max_lag_s=max_lag_s)
    readable = np.isfinite(corr_own) & np.isfinite(corr_other)
    closer = pd.array(np.where(readable, corr_own > corr_other, False), dtype="boolean")
    closer[~readable] = pd.NA
    axes = [qrs_axis_deg(m) for m in (g, o, x)]
    table = pd.DataFrame(
        {
            "corr_own": corr_own,
            "corr_other": corr_other,
            "closer": closer,
            "axis_err_own": axis_difference_deg(axes[0], axes[1]),
            "axis_err_other": axis_difference_deg(axes[0], axes[2]),
            "qrs_err_own": np.abs(g.qrs_ms - o.qrs_ms),
            "qrs_err_other": np.abs(g.qrs_ms - x.qrs_ms),
            "qt_err_own": np.abs(g.qt_ms - o.qt_ms),
            "qt_err_other": np.abs(g.qt_ms - x.qt_ms),
            "readable": readable,
        }
    )
    names = ("generated", "own", "other")
    table["reason"] = [
        "; ".join(f"{n}: {m.reason[i]}" for n, m in zip(names, (g, o, x)) if m.reason[i])
        or ("" if readable[i] else "correlation undefined (a constant median beat)")
        for i in range(len(g))
    ]
    table["notes"] = [
        "; ".join(f"{n}: {m.notes[i]}" for n, m in zip(names, (g, o, x)) if i < len(m.notes) and m.notes[i])
        for i in range(len(g))
    ]
    return table[TABLE_COLUMNS]


def _share_closer(table: pd.DataFrame, kind: str, readable: pd.Series) -> tuple[float, int]:
    """Share of readable rows whose ``kind`` error is smaller for the own target, over rows with both errors."""
    own, other = table[f"{kind}_err_own"].to_numpy(float), table[f"{kind}_err_other"].to_numpy(float)
    ok = readable.to_numpy(bool) & np.isfinite(own) & np.isfinite(other)
    return (float(np.mean(own[ok] < other[ok])) if ok.any() else math.nan), int(ok.sum())


def _cluster_bootstrap(values: np.ndarray, clusters: np.ndarray | None, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) means of ``values`` over resamples: of whole clusters (all rows of a drawn cluster, drawn with
    replacement) when ``clusters`` is given, else of rows (Davison & Hinkley 1997, §3.8: resample the independent
    units -- the requests of one subject share that subject's heart)."""
    rng = np.random.default_rng(seed)
    if clusters is None:
        return values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    keys, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(keys))
    counts = np.bincount(inverse, minlength=len(keys)).astype(float)
    draw = rng.integers(0, len(keys), (n_boot, len(keys)))
    return sums[draw].sum(axis=1) / counts[draw].sum(axis=1)


def consistency_summary(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Summary of a :func:`personal_consistency` table over its readable rows.

    Returns ``n_total``, ``n_readable``; ``share_closer`` (rows with ``corr_own > corr_other``) and
    ``share_closer_ci`` (a 95 % percentile bootstrap interval, ``n_boot`` resamples, generator ``default_rng(seed)``:
    over subjects when the table has a ``subject_id`` column, each subject's requests resampled together, else over
    rows); ``median_corr_own``, ``median_corr_other``, ``median_corr_gap`` (of corr_own -
    corr_other); ``share_closer_axis`` / ``_qrs`` / ``_qt`` (smaller error to the own target, ties not closer) with
    ``n_axis`` / ``n_qrs`` / ``n_qt`` rows where both errors exist. Shares are NaN without rows.

    Raises:
        ValueError: ``table`` lacks a column of :data:`TABLE_COLUMNS` (named), or ``n_boot`` < 1.
    """
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"not a personal_consistency table: columns {missing} missing")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    readable = table["closer"].notna()
    closer = table.loc[readable, "closer"].to_numpy(dtype=float)
    gap = (table["corr_own"] - table["corr_other"])[readable].to_numpy(float)
    out: dict[str, Any] = {"n_total": int(len(table)), "n_readable": int(readable.sum())}
    if len(closer):
        clusters = table.loc[readable, "subject_id"].astype(str).to_numpy() if "subject_id" in table.columns else None
        boot = _cluster_bootstrap(closer, clusters, n_boot, seed)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out.update(share_closer=float(closer.mean()), share_closer_ci=(float(lo), float(hi)))
        out["median_corr_own"] = float(np.median(table.loc[readable, "corr_own"]))
        out["median_corr_other"] = float(np.median(table.loc[readable, "corr_other"]))
        out["median_corr_gap"] = float(np.median(gap))
    else:
        out.update(share_closer=math.nan, share_closer_ci=(math.nan, math.nan))
        out.update(median_corr_own=math.nan, median_corr_other=math.nan, median_corr_gap=math.nan)
    for kind in ("axis", "qrs", "qt"):
        out[f"share_closer_{kind}"], out[f"n_{kind}"] = _share_closer(table, kind, readable)
    return out
