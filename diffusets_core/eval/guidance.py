"""Classifier-free guidance sweep on the VALIDATION split: how the guidance scale trades condition adherence
(heart-rate error, classifier recall of the requested class) against fidelity and diversity (rFID, precision,
recall, coverage of CLIP features). The test split is not touched, so a scale chosen from this table can then be
evaluated on test by :func:`~.report.evaluate_run` without selecting on the test data.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..diffusion.pipeline import DiffuSETSPipeline, load_sampling_settings, save_sampling_settings
from ..fileio import atomic_writer
from ..layout import EVAL_GUIDANCE_DIR
from .classifiers import predict_proba
from .clip import ClipFeaturizer
from .config import GuidanceSweepConfig
from .diagnostic_level import diagnostic_rows, diagnostic_summary_row
from .feature_level import feature_rows
from .features import measure_features
from .fit_judges import fit_classifier, fit_clip
from .metrics import signal_metrics
from .signal_level import MIN_SET
from .splits import load_eval_splits

log = logging.getLogger(__name__)

__all__ = [
    "guidance_sweep",
    "choose_guidance",
    "save_chosen_guidance",
    "summarize_guidance",
    "SWEEP_COLUMNS",
    "MIN_COVERAGE_RATIO",
    "GuidanceProbe",
    "GuidanceSetting",
    "resolve_guidance",
]

#: :func:`choose_guidance` keeps the scales whose coverage is at least this share of the coverage at the smallest scale.
MIN_COVERAGE_RATIO = 0.9

SWEEP_COLUMNS = [
    "guidance_scale",
    "guidance_on",
    "n",
    "hr_mae_50_150",
    "hr_n_valid",
    "macro_recall",
    "macro_recall_morphology",
    "fid",
    "rfid",
    "precision",
    "recall",
    "coverage",
    "seconds_per_ecg",
]


@dataclass
class GuidanceProbe:
    """What a sweep holds fixed across guidance scales: the pipeline, the validation conditions and their
    requested classes, the judges fitted on the training split and the real features set metrics compare with.
    :meth:`measure` samples and scores one scale."""

    pipe: DiffuSETSPipeline
    conditions: pd.DataFrame  # the validation records sampled for (report, age, sex, hr)
    labels: np.ndarray  # (N, len(classes)) their requested classes
    classes: list[str]
    clip: ClipFeaturizer
    f_real: np.ndarray  # (N_val, 64) CLIP features of the real validation ECGs
    f_ref: np.ndarray  # (N_val, 64) ... of as many real training ECGs (the floor)
    classifier: Any
    thresholds: np.ndarray  # (len(classes),)
    valid: np.ndarray  # (len(classes),) bool: classes the classifier was trained on
    sampler: str = "ddim"
    steps: int = 20
    seed: int = 0
    batch_size: int = 64
    workers: int = 0
    guidance_on: str | None = None

    def measure(self, g: float) -> dict:
        """One sweep row for guidance scale ``g``: HR MAE (requested 50-150 bpm), macro recall (all / morphology
        classes), seconds per ECG and, when the sets are large enough (:data:`~.signal_level.MIN_SET`), FID / rFID
        / precision / recall / coverage (point estimates: the sweep ranks scales)."""
        req_hr = self.conditions["hr"].to_numpy(float)
        t0 = time.perf_counter()
        x = self.pipe(
            self.conditions["report"].tolist(),
            age=self.conditions["age"].to_numpy(float),
            sex=self.conditions["sex"].tolist(),
            hr=req_hr,
            num_inference_steps=self.steps,
            sampler=self.sampler,
            guidance_scale=g,
            guidance_on=self.guidance_on,
            seed=self.seed,
            batch_size=self.batch_size,
        ).signals
        dt = time.perf_counter() - t0
        meas = measure_features(x, fs=self.pipe.fs, workers=self.workers)
        hr = next(
            r
            for r in feature_rows("model", meas, None, req_hr, self.labels, self.classes)
            if r["class"] == "all" and r["metric"] == "hr_50_150"
        )
        summary = diagnostic_summary_row(
            "model",
            diagnostic_rows(
                "model", predict_proba(self.classifier, x), self.thresholds, self.labels, self.classes, self.valid
            ),
            len(x),
        )
        on = self.pipe.sampling["guidance_on"] if self.guidance_on is None else self.guidance_on
        row = {
            "guidance_scale": g,
            "guidance_on": on,
            "n": len(x),
            "hr_mae_50_150": hr["mae"],
            "hr_n_valid": hr["n_valid"],
            "macro_recall": summary["macro_recall"],
            "macro_recall_morphology": summary["macro_recall_morphology"],
            "seconds_per_ecg": dt / max(1, len(x)),
        }
        f_gen = self.clip.ecg_features(x)
        if min(len(f_gen), len(self.f_real)) >= MIN_SET:
            sm = signal_metrics(
                self.f_real, f_gen, real_ref=self.f_ref, n=min(len(f_gen), len(self.f_real)), seed=self.seed, n_boot=20
            )  # point estimates only: the sweep ranks scales
            row.update({k: sm[k] for k in ("fid", "rfid", "precision", "recall", "coverage")})
        log.info("guidance_sweep: scale %.2f -> %s", g, row)
        return row


def guidance_sweep(
    run_dir,
    scales: Sequence[float] = (1.0, 1.5, 2.0, 3.0),
    config: GuidanceSweepConfig | None = None,
    *,
    out_dir=None,
    embedder_kwargs: dict | None = None,
) -> pd.DataFrame:
    """One row per guidance scale, measured on ``config.n`` validation conditions (same conditions and seeds for
    every scale; settings: :class:`~.config.GuidanceSweepConfig`, default its defaults). With ``config.extend``,
    while :func:`choose_guidance` picks the largest swept scale, the sweep adds a scale 1.5 times larger (up to
    ``config.max_scale``), so the chosen scale is never the edge of the grid unless the cap is. The CLIP and the
    classifier are trained on the training split (as in :func:`~.report.evaluate_run`); the classifier's
    thresholds come from the real validation ECGs; set metrics compare with the real validation ECGs, the floor
    with as many real training ECGs. Written to ``out_dir/guidance_sweep.csv`` (default
    ``run_dir/eval_guidance``). ``embedder_kwargs`` go to ``DiffuSETSPipeline.from_pretrained``.

    Raises ValueError for an empty list of scales or a scale that is not finite and >= 0, before any work.
    """
    c = GuidanceSweepConfig() if config is None else config
    scales = [float(s) for s in scales]
    if not scales or any(not math.isfinite(s) or s < 0 for s in scales):
        raise ValueError(f"guidance scales must be finite and >= 0, got {scales}")
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / EVAL_GUIDANCE_DIR
    out.mkdir(parents=True, exist_ok=True)
    probe = _guidance_probe(run_dir, out, c, embedder_kwargs)
    rows = [probe.measure(g) for g in scales]
    while c.extend:
        df = pd.DataFrame(rows)
        top = float(df["guidance_scale"].max())
        nxt = round(top * 1.5 * 2) / 2  # the next scale, on a half-unit grid
        if choose_guidance(df) < top or nxt > c.max_scale:
            break
        rows.append(probe.measure(nxt))
    df = pd.DataFrame(rows).sort_values("guidance_scale").reindex(columns=SWEEP_COLUMNS).reset_index(drop=True)
    with atomic_writer(out / "guidance_sweep.csv") as tmp:
        df.to_csv(tmp, index=False)
    return df


def _guidance_probe(run_dir: Path, out: Path, c: GuidanceSweepConfig, embedder_kwargs: dict | None) -> GuidanceProbe:
    """The validation conditions (``c.n``, seeded), the judges fitted on the training split (written to ``out``),
    the real features set metrics compare with and the run's pipeline, held fixed across scales."""
    data = load_eval_splits(run_dir, ("train", "val"))
    sigs, labs = data.signals, data.labels
    sel = np.sort(np.random.default_rng(c.seed).permutation(len(data.records["val"]))[: c.n])
    val = data.records["val"].iloc[sel].reset_index(drop=True)

    feat = fit_clip(run_dir, out, sigs, data.vectors, seed=c.seed, steps=c.clip_steps, train_batch=c.train_batch)
    f_val_real = feat.ecg_features(sigs["val"])
    f_ref = feat.ecg_features(
        sigs["train"][np.random.default_rng(c.seed + 1).permutation(len(sigs["train"]))[: len(f_val_real)]]
    )
    model, thresholds, valid = fit_classifier(
        run_dir, out, sigs, labs, data.classes, seed=c.seed, steps=c.clf_steps, train_batch=c.train_batch
    )

    pipe = DiffuSETSPipeline.from_pretrained(run_dir, device="cpu", **(embedder_kwargs or {}))
    return GuidanceProbe(
        pipe,
        val,
        labs["val"][sel],
        data.classes,
        feat,
        f_val_real,
        f_ref,
        model,
        thresholds,
        valid,
        sampler=c.sampler,
        steps=c.steps,
        seed=c.seed,
        batch_size=c.batch_size,
        workers=c.workers,
        guidance_on=c.guidance_on,
    )


def choose_guidance(sweep: pd.DataFrame, *, min_coverage_ratio: float = MIN_COVERAGE_RATIO) -> float:
    """The rule the ``auto`` setting applies to a validation sweep, fixed before looking at any result: the scale
    with the highest macro recall of the requested class among the scales whose coverage is at least
    ``min_coverage_ratio`` times the coverage at the smallest swept scale (adherence, but not bought with a
    collapse of diversity); ties go to the smaller scale. Falls back to the smallest scale when nothing is
    measurable. Without coverage (a sweep smaller than :data:`~.signal_level.MIN_SET` has no ``coverage`` column,
    or NaN in it) the coverage guard is skipped. Raises ValueError on an empty sweep."""
    df = sweep.sort_values("guidance_scale").reset_index(drop=True)
    if df.empty:
        raise ValueError("choose_guidance: the sweep has no rows")
    base = df.iloc[0]
    ok = df["macro_recall"].notna()
    if "coverage" in df and pd.notna(base["coverage"]):
        ok &= df["coverage"] >= min_coverage_ratio * base["coverage"]
    if not ok.any():
        return float(base["guidance_scale"])
    cand = df[ok]
    return float(cand.loc[cand["macro_recall"] == cand["macro_recall"].max(), "guidance_scale"].min())


def save_chosen_guidance(
    run_dir, sweep: pd.DataFrame, *, sampler: str, steps: int, guidance_on: str | None = None, unet_dir: str = "unet"
) -> dict:
    """Apply :func:`choose_guidance` to a validation sweep and save the result as the run's sampling settings
    (``unet/sampling.json``), which the pipeline, the CLI and every chapter then use by default. Returns them."""
    g = choose_guidance(sweep)
    on = guidance_on or (str(sweep["guidance_on"].iloc[0]) if "guidance_on" in sweep and len(sweep) else "all")
    settings = {
        "sampler": sampler,
        "num_inference_steps": int(steps),
        "guidance_scale": g,
        "guidance_on": on,
        "chosen_by": "choose_guidance on a validation-split sweep (highest macro recall keeping "
        f">= {MIN_COVERAGE_RATIO * 100:.0f} % of the coverage at the smallest scale)",
        "swept_scales": [float(x) for x in sweep["guidance_scale"]],
        "n_validation": int(sweep["n"].iloc[0]),
    }
    save_sampling_settings(run_dir, settings, unet_dir=unet_dir)
    return settings


def _value_at(sweep_by_scale: pd.DataFrame, col: str, g: float, p: int = 2) -> str:
    """``col`` of the sweep row for scale ``g`` with ``p`` decimals; ``n/a`` when missing."""
    v = sweep_by_scale.loc[g, col] if col in sweep_by_scale else np.nan
    return f"{v:.{p}f}" if pd.notna(v) else "n/a"


def summarize_guidance(sweep: pd.DataFrame, settings: dict) -> str:
    """One paragraph of findings about a validation sweep and the settings chosen from it (numbers read from
    ``sweep``, the output of :func:`guidance_sweep`, and ``settings``, from :func:`save_chosen_guidance`)."""
    s = sweep.set_index("guidance_scale")
    base, top = s.index.min(), s.index.max()

    hr_ok, rec_ok = (
        s["hr_mae_50_150"].dropna(),
        s["macro_recall_morphology"].dropna(),
    )  # a toy model may measure nothing
    best_hr = hr_ok.idxmin() if len(hr_ok) else base
    best_rec = rec_ok.idxmax() if len(rec_ok) else base
    g = settings["guidance_scale"]
    return (
        f"On {int(s['n'].iloc[0])} validation conditions, guiding the {'report alone' if settings['guidance_on'] == 'text' else 'report and patient values'}: "
        f"the lowest HR error is at scale {best_hr:g} ({_value_at(s, 'hr_mae_50_150', best_hr)} bpm; {_value_at(s, 'hr_mae_50_150', base)} "
        f"at {base:g}); morphology macro recall peaks at {best_rec:g} ({_value_at(s, 'macro_recall_morphology', best_rec)}; "
        f"{_value_at(s, 'macro_recall_morphology', base)} at {base:g}); coverage goes from {_value_at(s, 'coverage', base)} at {base:g} "
        f"to {_value_at(s, 'coverage', top)} at {top:g}. The rule fixed in advance (`choose_guidance`: the highest macro "
        f"recall among the scales that keep at least {MIN_COVERAGE_RATIO * 100:g} % of the coverage at the smallest "
        f"scale) picks **{g:g}**"
        + (" (the largest scale the sweep may reach)" if g == top else f", inside the swept range {base:g}–{top:g}")
        + f". Saved with the run: `{settings['sampler']}`, {settings['num_inference_steps']} steps, guidance "
        f"{g:g} on {settings['guidance_on']}; the CLI, the pipeline and the later chapters use these unless told otherwise."
    )


@dataclass
class GuidanceSetting:
    """The classifier-free guidance an evaluation uses (:func:`resolve_guidance`)."""

    scale: float | None  # what to pass to evaluate_run: None = the run's saved setting
    used: float  # the scale the pipeline will apply
    on: str  # what it guides: all / text
    origin: str  # "validated" (saved with the run), "default" (none saved: plain sampling) or "profile"

    @property
    def label(self) -> str:
        """``"<scale> on <what>"``, e.g. ``"2 on text"``."""
        return f"{self.used:g} on {self.on}"

    def describe(self) -> str:
        """One Markdown sentence: the scale, what it guides and where it comes from."""
        why = {
            "validated": "(the run's validated setting)",
            "default": "(no validated setting saved with the run: plain conditional sampling)",
            "profile": "(the profile's setting)",
        }[self.origin]
        return f"Guidance scale **{self.used:g}** on **{self.on}** {why}."


def resolve_guidance(run_dir: str | os.PathLike, guidance_scale: str | float | None = "auto") -> GuidanceSetting:
    """The ``guidance_scale: auto`` rule: ``"auto"`` (or None) uses the run's saved sampling settings
    (``unet/sampling.json``, chosen on the validation split by :func:`save_chosen_guidance`; scale 1.0 — plain
    conditional sampling — when none were saved); a number is used as given. What is guided is always the run's
    setting (``all`` when none was saved). Raises ValueError for a string other than ``"auto"``."""
    settings = load_sampling_settings(run_dir)
    scale = None if guidance_scale is None or guidance_scale == "auto" else float(guidance_scale)
    used = settings.get("guidance_scale", 1.0) if scale is None else scale
    origin = "profile" if scale is not None else "validated" if settings else "default"
    return GuidanceSetting(scale, float(used), str(settings.get("guidance_on", "all")), origin)
