"""The chapters' figures: each function draws one figure of the book from the tables a chapter computed.

``plot_*`` return the :class:`~matplotlib.figure.Figure` (the notebook shows it with ``plt.show()``); ``show_*``
draw a sequence of figures and show each in turn (``plt.show()`` after each, as a chapter cell would), for the
pages that show several ECGs one after the other. Signals are ``(12, T)`` arrays in mV, ``fs`` in Hz.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .ecgplot import plot_12lead

__all__ = [
    "plot_cooccurrence",
    "plot_pipeline",
    "plot_patients",
    "show_records",
    "plot_embedding_pca",
    "plot_noise_schedule",
    "plot_training_history",
    "plot_sampler_traces",
    "plot_guidance_sweep",
    "show_guidance_sweep",
    "plot_lead_ii_grid",
    "plot_hr_sweep",
    "plot_signature_strips",
    "show_condition_examples",
    "plot_shift_heatmap",
    "plot_embedding_view",
    "patient_label",
    "show_gallery",
    "show_quiz",
    "plot_twin_strips",
]


def plot_pipeline(vae_cfg: Any, unet_cfg: Any, text_dim: int) -> Figure:
    """The methods chapter's diagram: report and patient -> encoders -> U-Net -> sampler -> VAE decoder, with the
    sizes of the given VAE / U-Net configurations."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(12, 3.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 3.6)
    ax.axis("off")
    L = vae_cfg.downsample_factor
    boxes = [
        (0.1, 2.2, "report\n“Sinus tachycardia|…”", "#e8f1fb"),
        (0.1, 0.5, "patient\nsex, age, HR", "#e8f1fb"),
        (2.4, 2.2, f"ordered prompt →\ntext embedder ({text_dim}-d)", "#fdf2e3"),
        (2.4, 0.5, "patient encoding\n(3 values)", "#fdf2e3"),
        (
            5.0,
            1.35,
            (
                f"conditional U-Net\n{unet_cfg.levels} levels, kernel {unet_cfg.kernel_size}\n"
                if unet_cfg.arch == "paper"
                else f"FiLM U-Net, {len(unet_cfg.channel_mults)} levels\n{unet_cfg.base_channels}–"
                f"{unet_cfg.base_channels * max(unet_cfg.channel_mults)} channels\n"
            )
            + f"ε-prediction, {unet_cfg.time_steps} steps",
            "#eaf7ea",
        ),
        (7.6, 1.35, f"sampler\nnoise {unet_cfg.in_channels}×{1024 // L} → latent", "#eaf7ea"),
        (
            10.0,
            1.35,
            "VAE decoder\nlatent → 12 × 1024 ECG\n(mV, 102.4 Hz)"
            + ("\nIII, aVR, aVL, aVF derived" if vae_cfg.derived_leads else ""),
            "#f6e8f6",
        ),
    ]
    for x, y, text, color in boxes:
        ax.add_patch(FancyBboxPatch((x, y), 1.9, 0.95, boxstyle="round,pad=0.05", fc=color, ec="0.3"))
        ax.text(x + 0.95, y + 0.47, text, ha="center", va="center", fontsize=8.5)
    for (x0, y0), (x1, y1) in [
        ((2.05, 2.67), (2.35, 2.67)),
        ((2.05, 0.97), (2.35, 0.97)),
        ((4.35, 2.67), (4.95, 2.0)),
        ((4.35, 0.97), (4.95, 1.6)),
        ((6.95, 1.82), (7.55, 1.82)),
        ((9.55, 1.82), (9.95, 1.82)),
    ]:
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color="0.2"))
    ax.set_title("DiffuSETS generation, as configured in this build")
    return fig


def plot_patients(records: pd.DataFrame) -> Figure:
    """Heart rate by its source, age by sex, sex by split (the data chapter's patient panel)."""
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    sns.histplot(records, x="hr", hue="hr_source", bins=40, ax=axes[0], multiple="stack")
    axes[0].set(xlabel="heart rate (bpm)", title="Heart rate")
    sns.histplot(records, x="age", hue="sex", bins=30, ax=axes[1], multiple="stack")
    axes[1].set(xlabel="age (years)", title="Age by sex")
    sns.countplot(records, x="split", hue="sex", order=["train", "val", "test"], ax=axes[2])
    axes[2].set(title="Sex by split")
    fig.tight_layout()
    return fig


def plot_cooccurrence(co: pd.DataFrame) -> Figure:
    """Heatmap of a symmetric finding co-occurrence table (counts; the diagonal: each finding's own count)."""
    import seaborn as sns

    n = len(co)
    fig, ax = plt.subplots(figsize=(0.42 * n + 2, 0.38 * n + 1.5))
    sns.heatmap(co, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax, annot_kws={"size": 7})
    ax.set_title("reports saying both findings")
    fig.tight_layout()
    return fig


def show_records(records: pd.DataFrame, signals: Any, fs: float, rows: Sequence) -> None:
    """One 12-lead figure per row label in ``rows`` of ``records`` (signal ``signals[row]``), titled with the record
    id, patient and report."""
    for i in rows:
        r = records.loc[i]
        title = f"{r.record_id} | {r.sex}, {r.age:.0f} y, HR {r.hr:.0f} bpm | " + r.report.replace("|", " / ")
        plot_12lead(signals[i], fs, title=title)
        plt.show()


def plot_embedding_pca(frame: pd.DataFrame) -> Figure:
    """Report vectors on their first two principal components (``PC1``, ``PC2`` columns), coloured by the
    ``rhythm`` column and by ``hr``."""
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(14, 5))
    sns.scatterplot(frame, x="PC1", y="PC2", hue="rhythm", s=14, ax=axes[0], alpha=0.8)
    axes[0].legend(fontsize=7, loc="best")
    axes[0].set_title("coloured by first statement")
    sc = axes[1].scatter(frame["PC1"], frame["PC2"], c=frame["hr"], cmap="viridis", s=14, alpha=0.8)
    fig.colorbar(sc, ax=axes[1], label="heart rate (bpm)")
    axes[1].set_title("coloured by measured heart rate")
    fig.tight_layout()
    return fig


def plot_noise_schedule(alphas_cumprod: np.ndarray, title: str) -> Figure:
    """√ᾱ_t (signal share) and √(1 − ᾱ_t) (noise share) over the timesteps."""
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(np.sqrt(alphas_cumprod), label="√ᾱ_t (signal)")
    ax.plot(np.sqrt(1 - alphas_cumprod), label="√(1 − ᾱ_t) (noise)")
    ax.set(xlabel="timestep t", title=title)
    ax.legend()
    return fig


def plot_training_history(hist: pd.DataFrame, *, ylabel: str, title: str) -> Figure:
    """Training loss per logged step and, where ``val_loss`` is present, the validation loss (EMA weights)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(hist["step"], hist["train_loss"], alpha=0.7, label="train")
    if "val_loss" in hist and hist["val_loss"].notna().any():
        v = hist.dropna(subset=["val_loss"])
        ax.plot(v["step"], v["val_loss"], "o-", label="validation (EMA)")
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend()
    return fig


def plot_sampler_traces(outputs: Mapping[str, Any], fs: float, report: str) -> Figure:
    """Lead II of the first ECG of each sampler's output (``outputs[name].signals``), one row per sampler."""
    fig, axes = plt.subplots(len(outputs), 1, figsize=(12, 2.2 * len(outputs)), sharex=True)
    t = np.arange(1024) / fs
    for ax, (name, out) in zip(axes, outputs.items()):
        ax.plot(t, out.signals[0, 1], color="black", lw=0.8)
        ax.set_ylabel(f"{name}\nII (mV)")
    axes[0].set_title("the same condition and seed through each sampler: " + report.replace("|", " / "))
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


GUIDANCE_METRICS = ("hr_mae_50_150", "macro_recall_morphology", "rfid", "precision", "recall", "coverage")


def plot_guidance_sweep(sweep: pd.DataFrame, metrics: Sequence[str] = GUIDANCE_METRICS) -> Any:
    """One small panel per metric against ``guidance_scale`` (a seaborn ``FacetGrid``)."""
    import seaborn as sns

    long = sweep.melt(id_vars="guidance_scale", value_vars=list(metrics), var_name="metric")
    return sns.relplot(
        long.dropna(),
        x="guidance_scale",
        y="value",
        col="metric",
        kind="line",
        marker="o",
        height=2.6,
        facet_kws={"sharey": False},
        col_wrap=3,
    )


def show_guidance_sweep(sweep: pd.DataFrame, metrics: Sequence[str] = GUIDANCE_METRICS) -> None:
    """:func:`plot_guidance_sweep`, shown."""
    plot_guidance_sweep(sweep, metrics)
    plt.show()


def plot_lead_ii_grid(signals: np.ndarray, fs: float, grid: pd.DataFrame, n_cols: int) -> Figure:
    """Lead II of each generated ECG (row ``k`` of ``grid``: report, sex, age, hr, measured HR) in a grid of
    ``n_cols`` columns."""
    t = np.arange(signals.shape[2]) / fs
    n_rows = len(grid) // n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(14, 2.1 * n_rows), sharex=True, squeeze=False)
    for k, row in grid.iterrows():
        ax = axes[k // n_cols, k % n_cols]
        ax.plot(t, signals[k, 1], color="black", lw=0.7)
        ax.set_title(
            f"{row.report.replace('|', ' / ')[:70]}\n{row.sex}, {row.age} y, HR {row.hr} requested, "
            f"{row['measured HR']} measured",
            fontsize=8,
        )
        ax.set_yticks([])
    for ax in axes[-1]:
        ax.set_xlabel("time (s), lead II")
    fig.tight_layout()
    return fig


def plot_hr_sweep(sweep: pd.DataFrame, hr_sweep: Sequence[float]) -> Figure:
    """Requested against measured heart rate per series, with the identity line."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.stripplot(
        sweep, x="requested HR", y="measured HR", hue="series", dodge=True, native_scale=True, ax=ax, size=5, alpha=0.8
    )
    lo, hi = min(hr_sweep) - 10, max(hr_sweep) + 10
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set(xlim=(lo, hi), ylim=(lo, hi + 30), title="requested vs measured heart rate")
    ax.legend(fontsize=8)
    return fig


def plot_signature_strips(long: pd.DataFrame) -> Any:
    """Case and control values of each signature feature, one panel per condition (``feature``, ``value``,
    ``group``, ``condition`` columns; a seaborn ``FacetGrid``)."""
    import seaborn as sns

    g = sns.catplot(
        long,
        x="feature",
        y="value",
        hue="group",
        col="condition",
        kind="strip",
        dodge=True,
        sharex=False,
        sharey=False,
        height=3.6,
        aspect=1.3,
        alpha=0.8,
    )
    g.set_xticklabels(rotation=45, ha="right")
    g.set_titles("{col_name}")
    return g


def show_condition_examples(results: Mapping[str, Any], control_report: str, sex: str, age: float, hr: float) -> None:
    """The first generated ECG of each condition, then the first control (``results[name].case_signals`` /
    ``.control_signals`` / ``.fs``)."""
    for name, res in results.items():
        plot_12lead(res.case_signals[0], res.fs, title=f"generated | {name} | {sex}, {age} y, HR {hr}")
        plt.show()
    first = next(iter(results.values()))
    plot_12lead(
        first.control_signals[0],
        first.fs,
        title=f"generated control | {control_report.replace('|', ' / ')} | {sex}, {age} y, HR {hr}",
    )
    plt.show()


def plot_shift_heatmap(table: pd.DataFrame, experiments: Sequence[str], features: Sequence[str]) -> Figure:
    """Paired effect sizes (``effect``) per experiment and feature, starred where the verdict is a shift."""
    import seaborn as sns

    heat = table.pivot(index="experiment", columns="feature", values="effect").reindex(
        index=list(experiments), columns=features
    )
    sig = table.pivot(index="experiment", columns="feature", values="verdict").reindex(
        index=heat.index, columns=features
    )
    annot = heat.round(2).astype(str) + np.where(sig.fillna("").apply(lambda c: c.str.startswith("shift")), " *", "")
    fig, ax = plt.subplots(figsize=(1.6 * len(features) + 2, 0.6 * len(experiments) + 1.5))
    lim = float(np.nanmax(np.abs(heat.to_numpy(float)))) if np.isfinite(heat.to_numpy(float)).any() else 1.0
    sns.heatmap(
        heat.astype(float),
        annot=annot,
        fmt="",
        cmap="RdBu_r",
        center=0,
        vmin=-lim,
        vmax=lim,
        ax=ax,
        cbar_kws={"label": "d_z (case - control)"},
    )
    ax.set(title="paired effect sizes (* = 95% CI excludes 0)", xlabel="", ylabel="")
    return fig


def plot_embedding_view(view: Any, extra: np.ndarray, names: Sequence[str], seed: int) -> Figure:
    """The run's report embeddings (``view.points``: pc1, pc2, hr; jittered by a ``seed``-ed 1 % of their spread)
    coloured by heart rate, with the projected extra texts (``extra``, ``(K, 2)``) as labelled crosses."""
    pts = view.points
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    jit = np.random.default_rng(seed).normal(0, 0.01 * (pts[["pc1", "pc2"]].std().mean() or 1.0), (len(pts), 2))
    sc = ax.scatter(pts["pc1"] + jit[:, 0], pts["pc2"] + jit[:, 1], c=pts["hr"], cmap="viridis", s=12, alpha=0.7)
    fig.colorbar(sc, ax=ax, label="heart rate (bpm)")
    ax.scatter(extra[:, 0], extra[:, 1], marker="x", c="crimson", s=50)
    for (x, y), name in zip(extra, names):
        ax.annotate(name, (x, y), fontsize=7, color="crimson", xytext=(3, 3), textcoords="offset points")
    ax.set(
        xlabel=f"PC1 ({view.explained[0]:.0%} of variance)",
        ylabel=f"PC2 ({view.explained[1]:.0%})",
        title="report embeddings, coloured by heart rate",
    )
    return fig


def patient_label(r: Mapping[str, Any]) -> str:
    """``"F, 63 y, HR 72"`` for a record with ``sex``, ``age``, ``hr``."""
    return f"{r['sex']}, {r['age']:.0f} y, HR {r['hr']:.0f}"


def show_gallery(
    classes: pd.DataFrame, records: pd.DataFrame, signals: Any, fs: float, gen: Any, n_generated: int
) -> None:
    """Per gallery class: a heading with the report and patient, the real record (``signals[example_index]``), then
    its ``n_generated`` generated ECGs (``gen.signals`` in class order, seeds from ``gen.conditions``)."""
    from IPython.display import Markdown, display

    rows = [records.iloc[i] for i in classes["example_index"]]
    for k, (c, r) in enumerate(zip(classes["class"], rows)):
        display(Markdown(f"### {c}\n\nReport: *{r['report'].replace('|', ' / ')}* — patient {patient_label(r)}."))
        i = int(classes["example_index"].iloc[k])
        plot_12lead(np.asarray(signals[i]), fs, title=f"real (test record {r['record_id']}) | {c}")
        plt.show()
        for j in range(n_generated):
            plot_12lead(
                gen.signals[k * n_generated + j],
                gen.fs,
                title=f"generated #{j + 1} (seed {int(gen.conditions['seed'].iloc[k * n_generated + j])}) | {c}",
            )
            plt.show()


def show_quiz(quiz: pd.DataFrame, records: pd.DataFrame, items: Sequence[tuple[np.ndarray, float, str]]) -> None:
    """The quiz's ECGs in order, each titled with its label, report and patient (``items``: signal, fs, note)."""
    for (_, q), (sig, fs, _) in zip(quiz.iterrows(), items):
        r = records.iloc[int(q["index"])]
        plot_12lead(sig, fs, title=f"ECG {q['label']} | {r['report'].replace('|', ' / ')} | {patient_label(r)}")
        plt.show()


def plot_twin_strips(
    rows: Sequence[tuple[str, np.ndarray]],
    fs: float,
    leads: Sequence[str] = ("I", "II", "V1", "V5"),
    seconds: float = 3.0,
) -> Figure:
    """One patient's ECGs one under the other: each of ``rows`` is ``(label, (12, T) mV)`` -- e.g. the reference,
    the real target and the twin's ECGs under several reports -- with the first ``seconds`` of each of ``leads``
    side by side (0.5 mV grid lines), so the same heart can be compared across reports."""
    from ..data.leads import CANONICAL_LEADS

    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    fig, axes = plt.subplots(
        len(rows), len(leads), figsize=(3.2 * len(leads), 1.5 * len(rows)), sharex=True, sharey=True, squeeze=False
    )
    for i, (label, sig) in enumerate(rows):
        for j, lead in enumerate(leads):
            ax = axes[i, j]
            ax.plot(t, sig[CANONICAL_LEADS.index(lead), :n], color="black", lw=0.7)
            ax.set_yticks(np.arange(-2.0, 2.01, 0.5))
            ax.set_yticklabels([])
            ax.grid(True, color="#f4b6b6", lw=0.5)
            if i == 0:
                ax.set_title(lead, fontsize=9)
        axes[i, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    return fig
