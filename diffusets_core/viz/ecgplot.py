"""12-lead ECGs on standard ECG paper: 25 mm/s, 10 mm/mV, 1 mm minor and 5 mm major grid.

The default ``"3x4+R"`` layout is the clinical print-out: four 2.5 s columns (I/II/III, aVR/aVL/aVF,
V1–V3, V4–V6) and a full-length lead II rhythm strip. Leads are looked up by name, never by position.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..data.leads import CANONICAL_LEADS

MM_PER_S = 25.0
MM_PER_MV = 10.0
_INCH = 25.4
_GRID_MINOR = (1.0, 0.80, 0.80)
_GRID_MAJOR = (0.94, 0.55, 0.55)

LAYOUT_3X4 = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))


def _draw_grid(ax, width_mm: float, height_mm: float) -> None:
    from matplotlib.collections import LineCollection

    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    # one collection per line style (minor / major) instead of one artist per line: the same picture, drawn
    # about twice as fast (the grid is most of a print-out's artists)
    segs: dict[bool, list] = {False: [], True: []}
    for x in np.arange(0, width_mm + 1e-6, 1.0):
        segs[abs(x / 5 - round(x / 5)) < 1e-6].append([(x, 0), (x, height_mm)])
    for y in np.arange(0, height_mm + 1e-6, 1.0):
        segs[abs(y / 5 - round(y / 5)) < 1e-6].append([(0, y), (width_mm, y)])
    ax.add_collection(LineCollection(segs[False], colors=[_GRID_MINOR], linewidths=0.3, zorder=0))
    ax.add_collection(LineCollection(segs[True], colors=[_GRID_MAJOR], linewidths=0.6, zorder=0))
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _trace(ax, y: np.ndarray, fs: float, x0_mm: float, baseline_mm: float, lw: float) -> None:
    t_mm = np.arange(len(y)) / fs * MM_PER_S
    ax.plot(x0_mm + t_mm, baseline_mm + np.asarray(y) * MM_PER_MV, color="black", lw=lw, zorder=3)


def _calibration_pulse(ax, x0_mm: float, baseline_mm: float) -> None:
    # 1 mV x 200 ms reference pulse, as printed at the start of each row on clinical ECGs.
    xs = [x0_mm, x0_mm + 1, x0_mm + 1, x0_mm + 6, x0_mm + 6, x0_mm + 7]
    ys = [baseline_mm, baseline_mm, baseline_mm + MM_PER_MV, baseline_mm + MM_PER_MV, baseline_mm, baseline_mm]
    ax.plot(xs, ys, color="black", lw=0.8, zorder=3)


def plot_12lead(
    signal: np.ndarray,
    fs: float,
    *,
    leads: Sequence[str] = CANONICAL_LEADS,
    title: str | None = None,
    layout: str = "3x4+R",
    rhythm_lead: str = "II",
    row_mm: float = 30.0,
    dpi: int = 100,
    linewidth: float = 0.7,
) -> Figure:
    """Plot a ``(12, L)`` mV array on ECG paper at true scale.

    layout: ``"3x4+R"`` (clinical print-out with a rhythm strip) or ``"12x1"`` (every lead full length).
    """
    sig = np.asarray(signal, dtype=float)
    if sig.ndim != 2 or sig.shape[0] != len(leads):
        raise ValueError(f"signal must have shape ({len(leads)}, L) matching leads, got {sig.shape}")
    index = {name: i for i, name in enumerate(leads)}
    duration_s = sig.shape[1] / fs
    margin = 8.0  # mm, room for the calibration pulse
    if layout == "3x4+R":
        col_s = duration_s / 4
        rows = [list(r) for r in LAYOUT_3X4]
        n_rows = len(rows) + 1
    elif layout == "12x1":
        col_s = duration_s
        rows = [[name] for name in leads]
        n_rows = len(rows)
    else:
        raise ValueError(f"unknown layout {layout!r}; use '3x4+R' or '12x1'")
    width_mm = margin + duration_s * MM_PER_S
    height_mm = n_rows * row_mm + 5
    fig = plt.figure(figsize=(width_mm / _INCH * 1.0, height_mm / _INCH * 1.0 + (0.3 if title else 0)), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, height_mm / (height_mm + (0.3 * _INCH if title else 0))))
    _draw_grid(ax, width_mm, height_mm)
    n_col = int(round(duration_s / col_s))
    n_seg = int(round(col_s * fs))
    for r, row in enumerate(rows):
        base = height_mm - (r + 0.5) * row_mm - 2.5
        _calibration_pulse(ax, 0.5, base)
        for c, name in enumerate(row[:n_col]):
            seg = sig[index[name], c * n_seg : (c + 1) * n_seg]
            x0 = margin + c * col_s * MM_PER_S
            _trace(ax, seg, fs, x0, base, linewidth)
            ax.text(x0 + 1, base + 0.35 * row_mm, name, fontsize=8, zorder=4)
            if c > 0:  # column separator tick
                ax.plot([x0, x0], [base - 3, base + 3], color="black", lw=0.8, zorder=3)
    if layout == "3x4+R":
        base = height_mm - (len(rows) + 0.5) * row_mm - 2.5
        _calibration_pulse(ax, 0.5, base)
        _trace(ax, sig[index[rhythm_lead]], fs, margin, base, linewidth)
        ax.text(margin + 1, base + 0.35 * row_mm, rhythm_lead, fontsize=8, zorder=4)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=9, y=0.995)
    return fig
