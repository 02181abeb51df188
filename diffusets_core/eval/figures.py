"""Figures of the evaluation.

* :func:`write_figures` — the benchmark's PNGs written beside its tables (pyplot-free: the caller's backend and
  current figure, e.g. a notebook's inline plots, stay untouched);
* chapter figures drawn with pyplot / seaborn for display in a notebook (each returns its figure; the caller
  shows it): the benchmark's set metrics, requested vs measured HR and the confusion matrix (chapter 6), a
  training curve, an ECG beside its reconstruction and the latents (chapter 3). pyplot is imported when one is
  drawn, so importing this module selects no backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..data.leads import CANONICAL_LEADS
from ..fileio import atomic_writer

__all__ = [
    "write_figures",
    "plot_set_metrics",
    "plot_hr_agreement",
    "plot_confusion",
    "plot_training_history",
    "plot_reconstruction",
    "plot_latents",
]

HR_RANGE_BPM = (30, 180)  # axes of the requested-vs-measured HR plots


def _save_png(fig: Figure, path: Path) -> None:
    with atomic_writer(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def write_figures(out: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    """``signal_metrics.png`` (rFID, precision, recall, coverage per source, real floor dashed),
    ``hr_scatter.png`` (requested vs measured HR; when ``hr_pairs`` has rows) and ``confusion_model.png`` (the
    model's confusion matrix; when it has one) in ``out``. Returns the file names written."""
    written = []
    sig = tables["signal"]
    fig = Figure(figsize=(14, 3.2))
    axes = fig.subplots(1, 4)
    for ax, col in zip(axes, ("rfid", "precision", "recall", "coverage")):
        ax.bar(sig["source"], sig[col], color="0.6")
        if f"{col}_floor" in sig:
            ax.axhline(float(sig[f"{col}_floor"].iloc[0]), color="C3", ls="--", lw=1, label="real floor")
        ax.set_title(col)
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    _save_png(fig, out / "signal_metrics.png")
    written.append("signal_metrics.png")
    hr_pairs = tables["hr_pairs"]
    if len(hr_pairs):
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.subplots()
        for src, d in hr_pairs.groupby("source", sort=False):
            ax.scatter(d["requested_hr"], d["measured_hr"], s=10, alpha=0.6, label=src)
        ax.plot(HR_RANGE_BPM, HR_RANGE_BPM, "k--", lw=1)
        ax.set_xlabel("requested HR (bpm)")
        ax.set_ylabel("measured HR (bpm)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        _save_png(fig, out / "hr_scatter.png")
        written.append("hr_scatter.png")
    cm = tables["confusion"]
    cm = cm[cm["source"] == "model"]
    if len(cm):
        mat = cm.pivot(index="requested", columns="predicted", values="count")
        fig = Figure(figsize=(6, 5))
        ax = fig.subplots()
        ax.imshow(mat.to_numpy(), cmap="Blues")
        ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=90, fontsize=7)
        ax.set_yticks(range(mat.shape[0]), mat.index, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("requested")
        fig.tight_layout()
        _save_png(fig, out / "confusion_model.png")
        written.append("confusion_model.png")
    return written


# -- chapter 6: the benchmark ---------------------------------------------------------------------------------------
def plot_set_metrics(signal: pd.DataFrame, metrics: Sequence[str] = ("precision", "recall", "density", "coverage")):
    """One bar panel per metric of the ``signal`` table, a bar per source (seaborn ``catplot``; the returned
    ``FacetGrid`` holds the figure)."""
    import seaborn as sns

    long = signal.melt(id_vars="source", value_vars=list(metrics), var_name="metric")
    grid = sns.catplot(
        long.dropna(), x="source", y="value", col="metric", kind="bar", height=3, aspect=1.0, color="0.6", sharey=False
    )
    grid.set_xticklabels(rotation=45)
    return grid


def plot_hr_agreement(hr_pairs: pd.DataFrame):
    """Requested vs measured heart rate of every ECG (``hr_pairs`` table), one colour per source, identity
    dashed; rows without a measurement are left out."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.5, 5))
    sns.scatterplot(hr_pairs.dropna(), x="requested_hr", y="measured_hr", hue="source", ax=ax, s=20, alpha=0.7)
    ax.plot(HR_RANGE_BPM, HR_RANGE_BPM, "k--", lw=1)
    ax.set(xlim=HR_RANGE_BPM, ylim=HR_RANGE_BPM, title="requested vs measured heart rate")
    return fig


def plot_confusion(confusion: pd.DataFrame, source: str = "model"):
    """Heat map of ``source``'s confusion matrix (``confusion`` table: requested class of the single-class
    conditions vs the classifier's top class), requested classes without ECGs left out; None when ``source``
    has no confusion matrix."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    cm = confusion[confusion["source"] == source]
    if not len(cm):
        return None
    mat = cm.pivot(index="requested", columns="predicted", values="count")
    mat = mat.loc[mat.sum(axis=1) > 0]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(mat) + 2))
    sns.heatmap(mat, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_title(f"{source}: requested class (single-class conditions) vs classifier's top class")
    return fig


# -- chapter 3: the autoencoder --------------------------------------------------------------------------------------
def plot_training_history(history: pd.DataFrame, title: str):
    """Training loss per step (log scale) and, where the ``history.csv`` of a training run has them, the
    validation losses (EMA weights, full KL weight)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(history["step"], history["train_loss"], label="train (KL weight ramping)", alpha=0.8)
    if "val_loss" in history and history["val_loss"].notna().any():
        v = history.dropna(subset=["val_loss"])
        ax.plot(v["step"], v["val_loss"], "o-", label="validation (EMA weights, full KL weight)")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=title)
    ax.legend()
    return fig


def plot_reconstruction(
    x: np.ndarray, x_hat: np.ndarray, fs: float, title: str, leads: Sequence[str] = ("I", "II", "V1", "V5")
):
    """One ECG ``x`` (12, L) mV in canonical lead order and its reconstruction ``x_hat``, overlaid, for
    ``leads``."""
    import matplotlib.pyplot as plt

    t = np.arange(x.shape[-1]) / fs
    fig, axes = plt.subplots(len(leads), 1, figsize=(12, 7), sharex=True)
    for ax, lead in zip(axes, leads):
        k = CANONICAL_LEADS.index(lead)
        ax.plot(t, x[k], color="black", lw=0.8, label="original")
        ax.plot(t, x_hat[k], color="tab:red", lw=0.8, alpha=0.8, label="reconstruction")
        ax.set_ylabel(f"{lead} (mV)")
    axes[0].legend(loc="upper right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latents(z: np.ndarray):
    """Scaled training latents ``z`` (N, C, T): the distribution of each channel and the latent of the first
    record."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    for c in range(z.shape[1]):
        sns.kdeplot(z[:, c].ravel(), ax=axes[0], label=f"channel {c}")
    axes[0].set(title="scaled training latents per channel", xlabel="value")
    axes[0].legend()
    axes[1].plot(z[0].T)
    axes[1].set(
        title=f"the {z.shape[1]} × {z.shape[2]} latent of one training ECG", xlabel="latent position (1 = 78 ms)"
    )
    fig.tight_layout()
    return fig
