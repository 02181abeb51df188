"""The benchmark suite: one call, :func:`evaluate_run`, evaluates a trained run at the signal, feature and
diagnostic level against baselines, and writes CSV + JSON tables and PNG figures to ``run/eval/``.

Sets compared (``source`` column of every table):

* ``model`` — the run's pipeline (``sampler``, ``steps``) for the conditions (report, age, sex, HR) of the
  evaluated TEST records (ECG ``i`` uses seed ``seed + i``);
* ``real`` — the real test ECGs themselves (the floor: what a perfect generator would score);
* ``nn`` — nearest-neighbour retrieval from the TRAINING split (:func:`~.baselines.nearest_neighbour`);
* ``deepfake`` — deepfake-ecg, an external unconditional generator (:func:`~.baselines.deepfake_generate`);
* ``noc`` — the paper's text-only ablation: a U-Net trained without sex, age and HR (``cond_dim: 0``, in
  ``run/unet_noc/``), same reports, sampler and seeds;
* ``ddpm`` / ``model_subset`` — the paper's 1000-step DDPM against the fast sampler on the first ``n_ddpm``
  conditions (same conditions, same seeds).

Metrics:

* signal level, on the 64-d ECG features of an ECG-text CLIP trained on the TRAINING split only (best on
  validation): FID / rFID, precision / recall (k=3), density / coverage (k=5) and the CLIP score. Every set is
  compared with the real TEST features at the same ``n``; the real-vs-real floor compares the real
  VALIDATION split with the same test features (``floor_*`` columns; the ``real`` row is that floor, with the
  CLIP score of the real test ECGs and their own reports). Retrieval accuracy of the CLIP on test.
* feature level (:func:`~.features.measure_features`): HR error against the requested HR (all records and
  requested HR in 50-150 bpm), QRS / PR / QTc errors against the measurements of the reference test record,
  overall and per condition class;
* diagnostic level: a multi-label classifier (classes = report statements, :data:`EVAL_CLASSES`) trained on
  the real TRAINING split, thresholds chosen on validation, reads every set; recall of each requested class,
  macro recall, a confusion matrix (single-class conditions); TSTR vs TRTR macro AUROC (generated vs real ECGs
  for the same ``n_tstr`` training conditions, tested on real test).

Deterministic for a given ``seed`` (seeded subsets, seeded training, per-ECG sampling seeds).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..train.stages import NOC_DIR

log = logging.getLogger(__name__)

BASELINES = ("nn", "deepfake", "ddpm", "noc")

__all__ = ["BASELINES", "EVAL_CLASSES", "MORPHOLOGY_CLASSES", "KEY_CLASSES", "TARGETS", "evaluate_run", "targets_table",
           "summarize_benchmark", "recall_table", "wilson_interval", "fit_clip", "fit_classifier",
           "add_evaluate_parser"]

# class -> substring patterns on the lower-cased report (see classifiers.labels_from_reports)
EVAL_CLASSES: dict[str, Any] = {
    "normal": {"any": ["normal ecg"], "none": ["abnormal ecg"]},
    "sinus_bradycardia": ["sinus bradycardia"],
    "sinus_tachycardia": ["sinus tachycardia"],
    "atrial_fibrillation": ["atrial fibrillation"],
    "av_block_1": ["1st degree a-v block"],
    "rbbb": ["right bundle branch block"],
    "lbbb": ["left bundle branch block"],
    "st_elevation": ["st elevation"],
    "t_inversion": ["t wave inversion"],
    "peaked_t": ["peaked t waves"],
    "long_qt": ["prolonged qt interval"],
    "pvc": ["ventricular premature complex"],
    "low_voltage": ["low qrs voltages"],
}

#: Classes that heart rate alone decides; every other class is a morphology (or rhythm-morphology) class.
RATE_CLASSES = ("normal", "sinus_bradycardia", "sinus_tachycardia")
MORPHOLOGY_CLASSES = tuple(c for c in EVAL_CLASSES if c not in RATE_CLASSES)
#: The classes with a per-class recall target of their own.
KEY_CLASSES = ("rbbb", "lbbb", "t_inversion", "atrial_fibrillation", "av_block_1", "st_elevation")

# The benchmark's targets: key -> (description, threshold, direction). "x real" thresholds are relative to the
# real test ECGs' own value in the same table.
TARGETS = {
    "hr_mae_50_150": ("HR MAE (requested HR 50-150 bpm)", 5.0, "<="),
    "macro_recall_morphology": ("classifier recall of the requested class, macro over morphology classes", 0.8, ">="),
    **{f"recall_{c}": (f"classifier recall of {c}", 0.6, ">=") for c in KEY_CLASSES},
    "macro_recall_vs_real": ("all-class macro recall / the real ECGs' own", 0.85, ">="),
    "rfid": ("rFID", 2.0, "<="),
    "precision": ("precision (k=3)", 0.7, ">="),
    "recall": ("recall (k=3)", 0.7, ">="),
    "identity_uv": ("frontal-lead identity error, median (µV RMS)", 5.0, "<="),
    "beyond_10mv": ("share of records beyond ±10 mV", 0.0, "<="),
    "sinus_rr_cv_vs_real": ("sinus rhythm: median RR CV / the real sinus records'", 2.0, "<="),
    "af_rr_cv_vs_sinus": ("atrial fibrillation: median RR CV / generated sinus rhythm's", 3.0, ">="),
}


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (scipy's ``binomtest(...).proportion_ci``; Wilson 1927,
    recommended for small n by Brown, Cai & DasGupta 2001). ``(nan, nan)`` for n = 0."""
    from scipy.stats import binomtest

    if n <= 0:
        return math.nan, math.nan
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)

MIN_SET = 8  # smallest set for FID / k-NN metrics
SIGNAL_COLUMNS = ("n", "n_real", "n_gen", "fid", "floor", "rfid", "rfid_lo", "rfid_hi", "precision", "recall",
                  "density", "coverage", "f1", "precision_floor", "recall_floor", "density_floor", "coverage_floor",
                  "f1_floor", "clip", "clip_shuffled", "n_clip")

INTERVALS = {"qrs_ms": "qrs_ms", "pr_ms": "pr_ms", "qtc_ms": "qtc_bazett_ms"}


def _train_cfg(steps: int, seed: int, batch_size: int = 64, wd: float = 1e-3):
    from ..train.loop import TrainConfig

    return TrainConfig(max_steps=int(steps), batch_size=batch_size, lr=1e-3, weight_decay=wd,
                       warmup_steps=min(20, max(1, int(steps) // 10)), ema_decay=0.99,
                       val_every=max(1, min(50, int(steps))), checkpoint_every=100000, log_every=10 ** 6,
                       seed=seed, device="cpu", progress=False)


def fit_clip(run_dir: Path, out: Path, sigs: dict, vecs: dict, *, seed: int, steps: int, train_batch: int):
    """The ECG-text CLIP whose ECG features the set metrics use: trained on the real TRAINING split, best on
    validation, written to ``out/clip`` (replacing an earlier one)."""
    from .clip import ClipFeaturizer, train_clip

    shutil.rmtree(out / "clip", ignore_errors=True)
    train_clip(sigs["train"], vecs["train"], out / "clip",
               train_cfg=_train_cfg(steps, seed, min(train_batch, len(sigs["train"]))),
               val=(sigs["val"], vecs["val"]), meta={"run_dir": str(run_dir), "seed": seed})
    return ClipFeaturizer.from_checkpoint(out / "clip" / "best.pt")


def fit_classifier(run_dir: Path, out: Path, sigs: dict, labs: dict, classes: list[str], *, seed: int, steps: int,
                    train_batch: int):
    """The multi-label classifier that reads generated ECGs: trained on the real TRAINING split, thresholds
    chosen on the real validation ECGs, written to ``out/classifier``. Returns ``(model, thresholds, valid)``,
    ``valid`` marking the classes the training split can teach (present and not universal)."""
    from .classifiers import choose_thresholds, predict_proba, train_classifier

    shutil.rmtree(out / "classifier", ignore_errors=True)
    model, _ = train_classifier(sigs["train"], labs["train"], sigs["val"], labs["val"], out / "classifier",
                                train_cfg=_train_cfg(steps, seed, min(train_batch, len(sigs["train"])), wd=3e-4),
                                pos_weight="balanced", classes=classes, meta={"run_dir": str(run_dir), "seed": seed})
    th = choose_thresholds(labs["val"], predict_proba(model, sigs["val"]))
    valid = (labs["train"].sum(0) > 0) & (labs["train"].sum(0) < len(labs["train"]))
    return model, th, valid


def _select(labels: np.ndarray, n_eval: Optional[int], n_per_class: Optional[int], rng) -> np.ndarray:
    """Indices of the evaluated test records: up to ``n_per_class`` carrying each class (seeded), then capped /
    filled to ``n_eval`` at random; all records when both are None. Sorted."""
    n = len(labels)
    perm = rng.permutation(n)
    if n_per_class is None:
        chosen = list(perm if n_eval is None else perm[:n_eval])
        return np.sort(np.asarray(chosen, dtype=np.int64))
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for c in range(labels.shape[1]):
        have = [int(i) for i in perm if labels[i, c] == 1 and not taken[i]]
        already = int(((labels[:, c] == 1) & taken).sum())
        for i in have[:max(0, n_per_class - already)]:
            taken[i] = True
            chosen.append(i)
    if n_eval is not None:
        if len(chosen) > n_eval:
            chosen = chosen[:n_eval]
        else:
            chosen += [int(i) for i in perm if not taken[i]][:n_eval - len(chosen)]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _top_up(sel: np.ndarray, labels: np.ndarray, min_per_class: int) -> np.ndarray:
    """``sel`` followed by repeats of its own records, class by class in order, until every class present in
    ``labels[sel]`` has at least ``min_per_class`` conditions (a repeated condition is generated again with its
    own seed, an independent sample; the real ECG behind it is counted once). Returns ``sel`` unchanged for
    ``min_per_class`` <= 0."""
    out = [int(i) for i in sel]
    if min_per_class <= 0:
        return np.asarray(out, dtype=np.int64)
    for c in range(labels.shape[1]):
        have = [i for i in sel if labels[i, c] == 1]
        count = sum(labels[i, c] == 1 for i in out)
        k = 0
        while have and count < min_per_class:
            out.append(int(have[k % len(have)]))
            count += 1
            k += 1
    return np.asarray(out, dtype=np.int64)


def _unseen_rows(generate, train_reports, test: pd.DataFrame, model, th, classes, valid, *, seed: int,
                 per_combination: int, sampler: str, steps: int, fs: float, workers: int) -> pd.DataFrame:
    """Per unseen statement combination (:func:`.paraphrase.unseen_combinations`): ECGs generated for it with the
    age, sex and HR of random test records, their HR error and the recall of each requested class."""
    from .classifiers import labels_from_reports, predict_proba
    from .features import hr_error, measure_features
    from .paraphrase import unseen_combinations

    combos = unseen_combinations(train_reports)
    rows = []
    if not combos:
        return pd.DataFrame(rows)
    pick = np.random.default_rng(seed + 2).integers(0, len(test), len(combos) * per_combination)
    frame = test.iloc[pick].reset_index(drop=True)
    frame["report"] = [c for c in combos for _ in range(per_combination)]
    x = generate(frame, sampler, steps, seed + 2 * 10 ** 6)
    labels = labels_from_reports(frame["report"].tolist(), EVAL_CLASSES)[0]
    pred = predict_proba(model, x) >= th[None, :]
    hr = measure_features(x, fs=fs, workers=workers)["hr_nk"].to_numpy(float)
    for k, combo in enumerate(combos):
        m = slice(k * per_combination, (k + 1) * per_combination)
        req = [j for j, c in enumerate(classes) if labels[m][0, j] == 1 and valid[j]]
        e = hr_error(hr[m], frame["hr"].to_numpy(float)[m])
        rows.append({"report": combo, "n": per_combination, "hr_mae": e["mae"],
                     "requested_classes": "|".join(classes[j] for j in req),
                     "recall_each": "; ".join(f"{classes[j]} {pred[m, j].mean():.2f}" for j in req),
                     "recall_all_requested": float(pred[m][:, req].all(axis=1).mean()) if req else math.nan})
    return pd.DataFrame(rows)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _write(out: Path, name: str, df: pd.DataFrame) -> None:
    df.to_csv(out / f"{name}.csv", index=False)
    recs = json.loads(df.to_json(orient="records", double_precision=6))
    (out / f"{name}.json").write_text(json.dumps(recs, indent=1, default=_json_default))


def _feature_rows(source: str, meas: pd.DataFrame, ref: Optional[pd.DataFrame], req_hr: np.ndarray,
                  labels: np.ndarray, classes: list[str]) -> list[dict]:
    from .features import hr_error, interval_error

    rows = []
    groups = [("all", np.ones(len(meas), bool))] + [(c, labels[:, j] == 1) for j, c in enumerate(classes)]
    hr = meas["hr_nk"].to_numpy(float)
    for cls, m in groups:
        if not m.any():
            continue
        in_range = m & (req_hr >= 50) & (req_hr <= 150)
        for metric, res in (("hr", hr_error(hr[m], req_hr[m])), ("hr_50_150", hr_error(hr[in_range], req_hr[in_range]))):
            rows.append({"source": source, "class": cls, "metric": metric, "unit": "bpm",
                         **{k: res[k] for k in ("n", "n_valid", "frac_valid", "mae", "bias", "rmse", "median_ae")},
                         "frac_within_tol": res["frac_within_5"], "tol": 5.0})
        if ref is None:
            continue
        for metric, col in INTERVALS.items():
            res = interval_error(meas[col].to_numpy(float)[m], ref[col].to_numpy(float)[m])
            rows.append({"source": source, "class": cls, "metric": metric, "unit": "ms",
                         **{k: res[k] for k in ("n", "n_valid", "frac_valid", "mae", "bias", "rmse", "median_ae")},
                         "frac_within_tol": res["frac_within_20ms"], "tol": 20.0})
    return rows


def _diag_rows(source: str, proba: np.ndarray, th: np.ndarray, labels: np.ndarray, classes: list[str],
               valid: np.ndarray) -> list[dict]:
    pred = proba >= th[None, :]
    rows = []
    for j, c in enumerate(classes):
        m = labels[:, j] == 1
        k, n = int(pred[m, j].sum()), int(m.sum())
        lo, hi = wilson_interval(k, n)
        rows.append({"source": source, "class": c, "morphology": c in MORPHOLOGY_CLASSES, "support": n,
                     "trained": bool(valid[j]), "recall": k / n if n else math.nan, "recall_lo": lo, "recall_hi": hi,
                     "predicted_rate": float(pred[:, j].mean()) if len(pred) else math.nan})
    return rows


def diagnostic_summary_row(source: str, rows: list[dict], n: int) -> dict:
    """Macro recall over every trained class and over the morphology classes (:data:`MORPHOLOGY_CLASSES`)."""
    rec = [d["recall"] for d in rows if d["trained"] and np.isfinite(d["recall"])]
    morph = [d["recall"] for d in rows if d["trained"] and d["morphology"] and np.isfinite(d["recall"])]
    return {"source": source, "n": n, "macro_recall": float(np.mean(rec)) if rec else math.nan,
            "macro_recall_morphology": float(np.mean(morph)) if morph else math.nan, "n_classes": len(rec),
            "n_morphology_classes": len(morph)}


def _confusion(source: str, proba: np.ndarray, labels: np.ndarray, classes: list[str], valid: np.ndarray) -> pd.DataFrame:
    cols = np.flatnonzero(valid)
    single = (labels.sum(axis=1) == 1) & (labels[:, cols].sum(axis=1) == 1)
    rows = []
    if single.any():
        t = np.argmax(labels[single][:, cols], axis=1)
        p = np.argmax(proba[single][:, cols], axis=1)
        cm = np.zeros((len(cols), len(cols)), dtype=np.int64)
        np.add.at(cm, (t, p), 1)
        for a in range(len(cols)):
            for b in range(len(cols)):
                rows.append({"source": source, "requested": classes[cols[a]], "predicted": classes[cols[b]],
                             "count": int(cm[a, b])})
    return pd.DataFrame(rows, columns=["source", "requested", "predicted", "count"])


def rhythm_rows(source: str, meas: pd.DataFrame, labels: np.ndarray, classes: list[str]) -> list[dict]:
    """Median RR coefficient of variation (``rr_std_ms / rr_ms`` of the measured beats) of the records asked
    for sinus rhythm (no atrial fibrillation, no premature complexes) and of those asked for atrial
    fibrillation."""
    cv = (meas["rr_std_ms"] / meas["rr_ms"]).to_numpy(float)
    af = labels[:, classes.index("atrial_fibrillation")] == 1
    sinus = ~af & (labels[:, classes.index("pvc")] == 0)
    rows = []
    for rhythm, m in (("sinus", sinus), ("atrial_fibrillation", af)):
        v = cv[m][np.isfinite(cv[m])]
        rows.append({"source": source, "rhythm": rhythm, "n": int(m.sum()), "n_valid": int(len(v)),
                     "rr_cv_median": float(np.median(v)) if len(v) else math.nan})
    return rows


def targets_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The benchmark's targets (:data:`TARGETS`) as met / missed, computed from the tables (model row; the
    ``vae`` ceiling beside it where the tables have one, and the nearest-neighbour comparison rows)."""
    rows = []
    sig, feat, summ, diag = tables["signal"], tables["features"], tables["diagnostic_summary"], tables["diagnostic"]
    phys, rhy = tables.get("physical"), tables.get("rhythm")

    def val(df, src, col, **where):
        if df is None or not len(df):
            return math.nan
        d = df[df["source"] == src]
        for k, v in where.items():
            d = d[d[k] == v]
        return float(d[col].iloc[0]) if len(d) and pd.notna(d[col].iloc[0]) else math.nan

    def ratio(a: float, b: float) -> float:
        return a / b if np.isfinite(a) and np.isfinite(b) and b != 0 else math.nan

    def values(src: str) -> dict[str, float]:
        sinus = val(rhy, src, "rr_cv_median", rhythm="sinus")
        return {"hr_mae_50_150": val(feat, src, "mae", **{"class": "all", "metric": "hr_50_150"}),
                "macro_recall_morphology": val(summ, src, "macro_recall_morphology"),
                **{f"recall_{c}": val(diag, src, "recall", **{"class": c}) for c in KEY_CLASSES},
                "macro_recall_vs_real": ratio(val(summ, src, "macro_recall"), val(summ, "real", "macro_recall")),
                "rfid": val(sig, src, "rfid"), "precision": val(sig, src, "precision"),
                "recall": val(sig, src, "recall"), "identity_uv": val(phys, src, "identity_uv_median"),
                "beyond_10mv": val(phys, src, "beyond_10mv"),
                "sinus_rr_cv_vs_real": ratio(sinus, val(rhy, "real", "rr_cv_median", rhythm="sinus")),
                "af_rr_cv_vs_sinus": ratio(val(rhy, src, "rr_cv_median", rhythm="atrial_fibrillation"), sinus)}

    model = values("model")
    ceiling = values("vae") if "vae" in set(sig["source"]) else {}
    for key, (desc, thr, op) in TARGETS.items():
        v = model[key]
        met = (v <= thr if op == "<=" else v >= thr) if np.isfinite(v) else False
        rows.append({"target": key, "description": desc, "value": v, "vae_ceiling": ceiling.get(key, math.nan),
                     "threshold": thr, "direction": op, "met": bool(met)})
    if "paraphrased" in set(summ["source"]):
        para_hr = val(feat, "paraphrased", "mae", **{"class": "all", "metric": "hr_50_150"})
        gap = model["macro_recall_morphology"] - val(summ, "paraphrased", "macro_recall_morphology")
        for key, desc, v, thr in (
                ("paraphrase_hr_mae_50_150", "paraphrased reports: HR MAE (requested 50-150 bpm)", para_hr, 5.0),
                ("paraphrase_morphology_gap", "morphology macro recall: in-distribution minus paraphrased", gap, 0.1)):
            rows.append({"target": key, "description": desc, "value": v, "vae_ceiling": math.nan, "threshold": thr,
                         "direction": "<=", "met": bool(np.isfinite(v) and v <= thr)})
    for key, df, col in (("beats_nn_macro_recall", summ, "macro_recall"), ("beats_nn_coverage", sig, "coverage")):
        m, nn = val(df, "model", col), val(df, "nn", col)
        rows.append({"target": key, "description": f"model {col} > nearest-neighbour {col}", "value": m,
                     "threshold": nn, "direction": ">", "met": bool(np.isfinite(m) and np.isfinite(nn) and m > nn)})
    return pd.DataFrame(rows)


def _figures(out: Path, tables: dict[str, pd.DataFrame], hr_pairs: pd.DataFrame) -> list[str]:
    # pyplot-free figures: the caller's backend and current figure (e.g. a notebook's inline plots) stay untouched
    from matplotlib.figure import Figure

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
    fig.savefig(out / "signal_metrics.png", dpi=110)
    written.append("signal_metrics.png")
    if len(hr_pairs):
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.subplots()
        for src, d in hr_pairs.groupby("source", sort=False):
            ax.scatter(d["requested_hr"], d["measured_hr"], s=10, alpha=0.6, label=src)
        lim = [30, 180]
        ax.plot(lim, lim, "k--", lw=1)
        ax.set_xlabel("requested HR (bpm)")
        ax.set_ylabel("measured HR (bpm)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "hr_scatter.png", dpi=110)
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
        fig.savefig(out / "confusion_model.png", dpi=110)
        written.append("confusion_model.png")
    return written


def evaluate_run(run_dir, *, n_eval: Optional[int] = None, n_per_class: Optional[int] = None, min_per_class: int = 0,
                 seed: int = 0,
                 clip_steps: int = 300, clf_steps: int = 300, sampler: str = "ddim", steps: int = 50,
                 baselines: Sequence[str] = ("nn", "deepfake", "ddpm"), n_ddpm: int = 8, ddpm_steps: int = 1000,
                 n_tstr: Optional[int] = 0, n_boot: int = 100, batch_size: int = 64, train_batch: int = 64,
                 workers: int = 0, guidance_scale: Optional[float] = None, guidance_on: Optional[str] = None,
                 vae_ceiling: bool = True, paraphrase: bool = False, per_combination: int = 8,
                 out_dir=None, embedder_kwargs: Optional[dict] = None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Benchmark a trained run; returns the tables (also written as CSV + JSON, with PNG figures, to
    ``out_dir``, default ``run_dir/eval``).

    Sizes: ``n_eval`` test conditions (None: all test records), optionally stratified with up to
    ``n_per_class`` records per class, then topped up with repeats of a class's own conditions (new seeds) until
    every class has ``min_per_class`` conditions (real and ``vae`` rows count each real ECG once); ``clip_steps`` / ``clf_steps`` training steps of the CLIP and the
    classifier; ``n_ddpm`` conditions generated with ``ddpm_steps`` DDPM steps (``"ddpm"`` in ``baselines``);
    ``n_tstr`` training conditions generated for TSTR vs TRTR (0 skips it, None = all training records).
    ``train_batch`` is the batch size of the CLIP / classifier training, ``n_boot`` the bootstrap replicates of
    the confidence intervals. ``workers`` > 1 measures features in a process pool. ``guidance_scale`` is the
    classifier-free guidance of every generated set (model, ddpm, noc, TSTR; 1.0 = plain conditional sampling;
    None = the run's validated setting, chosen on validation by :func:`~.guidance.guidance_sweep`), and
    ``guidance_on`` what it guides (``all`` / ``text``, None = the run's). ``vae_ceiling`` adds the source
    ``vae``: the real test ECGs through the run's VAE (posterior mean, then decode), what any generator on this
    autoencoder can reach at best. ``paraphrase`` adds the source ``paraphrased`` (the model's conditions with
    every statement reworded by :mod:`.paraphrase`, same seeds) and the table ``unseen_combinations`` (statement
    combinations absent from the training reports, ``per_combination`` ECGs each, read by the same classifier). ``embedder_kwargs`` go to
    ``DiffuSETSPipeline.from_pretrained`` (e.g. ``{"dim": 32}`` for the hash embedder of the tests).

    Tables: ``conditions``, ``signal``, ``retrieval``, ``features``, ``hr_pairs``, ``diagnostic`` (per-class
    recall with a 95 % Wilson interval), ``diagnostic_summary`` (macro recall, all classes and morphology
    classes), ``confusion``, ``physical`` (frontal-lead identity error, share beyond ±10 mV), ``rhythm`` (RR
    variability of sinus and AF requests), ``tstr``, ``targets`` (with the ``vae`` ceiling), ``timings``.
    """
    from ..data.store import SignalStore
    from ..diffusion.pipeline import DiffuSETSPipeline
    from ..text.embed import load_run_embeddings
    from . import baselines as bl
    from .classifiers import labels_from_reports, predict_proba, tstr_trtr
    from .clip import retrieval_accuracy
    from .features import measure_features
    from .metrics import clip_score_report, signal_metrics

    import torch

    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; choose from {', '.join(BASELINES)}")
    run_dir = Path(run_dir)
    if "noc" in baselines and not (run_dir / NOC_DIR / "model.pt").is_file():
        raise FileNotFoundError(f"baseline 'noc' needs the text-only U-Net {run_dir / NOC_DIR / 'model.pt'}; train it "
                                f"with `diffusets train-unet {run_dir} --text-only`")
    out = Path(out_dir) if out_dir is not None else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    timings: list[dict] = []
    t0 = time.perf_counter()

    def lap(stage: str, n: int = 0) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings.append({"stage": stage, "seconds": round(now - t0, 3), "n": n})
        log.info("evaluate_run: %s %.1fs", stage, now - t0)
        t0 = now

    # -- data ----------------------------------------------------------------------------------------------
    store = SignalStore(run_dir)
    ok = store.records()
    ids, vectors, _ = load_run_embeddings(run_dir)
    pos = {r: i for i, r in enumerate(ids)}
    split = {s: store.records(s) for s in ("train", "val", "test")}
    if any(len(split[s]) < 2 for s in split):
        raise ValueError(f"{run_dir}: need at least 2 records in each of train/val/test, got "
                         f"{ {s: len(v) for s, v in split.items()} }")
    sigs = {s: np.asarray(store.signals(s), dtype=np.float32) for s in split}
    vecs = {s: vectors[[pos[r] for r in split[s]["record_id"].astype(str)]].astype(np.float32) for s in split}
    labs = {s: labels_from_reports(split[s]["report"].tolist(), EVAL_CLASSES)[0] for s in split}
    classes = list(EVAL_CLASSES)
    rng = np.random.default_rng(seed)
    sel = _top_up(_select(labs["test"], n_eval, n_per_class, rng), labs["test"], min_per_class)
    first = np.zeros(len(sel), dtype=bool)  # each real test ECG once, for the real and vae rows
    first[np.unique(sel, return_index=True)[1]] = True
    test = split["test"].iloc[sel].reset_index(drop=True)
    x_test, v_test, y_test = sigs["test"][sel], vecs["test"][sel], labs["test"][sel]
    req_hr = test["hr"].to_numpy(float)
    cond = test[["record_id", "report", "age", "sex", "hr"]].copy()
    cond["seed"] = seed + np.arange(len(cond))
    cond["classes"] = ["|".join(c for j, c in enumerate(classes) if y_test[i, j] == 1) for i in range(len(cond))]
    lap("load", len(ok))

    # -- generation ----------------------------------------------------------------------------------------
    torch.manual_seed(seed)
    pipe = DiffuSETSPipeline.from_pretrained(run_dir, device="cpu", **(embedder_kwargs or {}))

    def generate(frame: pd.DataFrame, smp: str, n_steps: int, s0: int) -> np.ndarray:
        return pipe(frame["report"].tolist(), age=frame["age"].to_numpy(float), sex=frame["sex"].tolist(),
                    hr=frame["hr"].to_numpy(float), num_inference_steps=n_steps, sampler=smp, seed=s0,
                    guidance_scale=guidance_scale, guidance_on=guidance_on, batch_size=batch_size,
                    progress=progress).signals

    sets: dict[str, np.ndarray] = {"real": x_test}
    if vae_ceiling:
        from .reconstruction import reconstruct

        sets["vae"] = reconstruct(pipe.vae, x_test, batch=batch_size)
        lap("vae_reconstruct", len(test))
    sets["model"] = generate(test, sampler, steps, seed)
    lap("generate_model", len(test))
    if paraphrase:
        from .paraphrase import paraphrase_report

        prng = np.random.default_rng(seed)
        para = test.assign(report=[paraphrase_report(r, prng) for r in test["report"]])
        cond["paraphrased_report"] = para["report"].to_numpy()
        sets["paraphrased"] = generate(para, sampler, steps, seed)
        lap("generate_paraphrased", len(test))
    if "nn" in baselines:
        nn_idx = bl.nearest_neighbour(v_test, req_hr, vecs["train"], split["train"]["hr"].to_numpy(float))
        sets["nn"] = sigs["train"][nn_idx]
        cond["nn_record_id"] = split["train"]["record_id"].to_numpy()[nn_idx]
        lap("nn", len(test))
    if "deepfake" in baselines:
        sets["deepfake"] = bl.deepfake_generate(len(test), seed=seed)
        lap("deepfake", len(test))
    n_dd = min(int(n_ddpm), len(test)) if "ddpm" in baselines else 0
    if n_dd > 0:
        sets["ddpm"] = generate(test.iloc[:n_dd], "ddpm", ddpm_steps, seed)
        lap("generate_ddpm", n_dd)
    if "noc" in baselines:  # the paper's ablation: same reports and seeds, no sex/age/HR
        noc = DiffuSETSPipeline.from_pretrained(run_dir, device="cpu", unet_dir=NOC_DIR, **(embedder_kwargs or {}))
        sets["noc"] = noc(test["report"].tolist(), age=test["age"].to_numpy(float), sex=test["sex"].tolist(),
                          hr=test["hr"].to_numpy(float), num_inference_steps=steps, sampler=sampler, seed=seed,
                          guidance_scale=guidance_scale, guidance_on="all", batch_size=batch_size,
                          progress=progress).signals
        lap("generate_noc", len(test))
    subset_of = {"ddpm": n_dd}

    def rows_of(src: str) -> slice:
        return slice(0, subset_of.get(src, len(test)))

    # -- CLIP (training split only) ------------------------------------------------------------------------
    feat = fit_clip(run_dir, out, sigs, vecs, seed=seed, steps=clip_steps, train_batch=train_batch)
    f_val = feat.ecg_features(sigs["val"])
    f_test_all = feat.ecg_features(sigs["test"])
    t_test = feat.text_features(v_test)
    ret = retrieval_accuracy(f_test_all, feat.text_features(vecs["test"]), split["test"]["report"].tolist())
    retrieval = pd.DataFrame([{"split": "test", **ret}])
    lap("clip", len(sigs["train"]))

    def sig_row(src: str, x: np.ndarray) -> dict:
        f = feat.ecg_features(x)
        n = min(len(f), len(f_test_all), len(f_val))
        if n < MIN_SET:  # k-NN manifolds (k=5) and a 64-d covariance need more points: counts only
            return {"source": src, "n": n, "n_real": len(f_test_all), "n_gen": len(f),
                    "note": f"n < {MIN_SET}: set metrics not computed"}
        row = signal_metrics(f_test_all, f, real_ref=f_val, n=n, seed=seed, n_boot=n_boot,
                             ecg_feat_for_clip=f, text_feat=t_test[:len(f)], label=src)
        row["source"] = src
        return row

    def real_row() -> dict:
        # the floor row: real VALIDATION ECGs in place of generated ones (fid == floor); its CLIP score pairs
        # the real TEST ECGs with their own reports
        n = min(len(f_test_all), len(f_val))
        if n < MIN_SET:
            return {"source": "real", "n": n, "n_real": len(f_test_all), "n_gen": len(f_val),
                    "note": f"n < {MIN_SET}: set metrics not computed"}
        row = signal_metrics(f_test_all, f_val, real_ref=f_val, n=n, seed=seed, n_boot=n_boot, label="real")
        cs = clip_score_report(feat.ecg_features(x_test), t_test, seed=seed, n_boot=n_boot)
        row.update({"source": "real", "clip": cs["clip"], "clip_lo": cs["clip_ci"][0], "clip_hi": cs["clip_ci"][1],
                    "clip_shuffled": cs["shuffled"], "n_clip": cs["n"]})
        return row

    sig_rows = [real_row() if src == "real" else sig_row(src, x) for src, x in sets.items()]
    if n_dd > 0:  # the fast sampler on the ddpm subset, for a like-for-like comparison
        sig_rows.append(sig_row("model_subset", sets["model"][:n_dd]))
    signal = pd.DataFrame(sig_rows)
    for col in SIGNAL_COLUMNS:  # a table where every set was too small still has the metric columns
        if col not in signal:
            signal[col] = np.nan
    signal = signal[["source"] + [c for c in signal.columns if c not in ("source", "label")]]
    lap("signal_metrics")

    # -- features ------------------------------------------------------------------------------------------
    meas = {src: measure_features(x, fs=pipe.fs, workers=workers) for src, x in sets.items()}
    feat_rows, hr_pairs = [], []
    for src, m in meas.items():
        r = rows_of(src)
        ref = None if src == "real" else meas["real"].iloc[r].reset_index(drop=True)
        feat_rows += _feature_rows(src, m, ref, req_hr[r], y_test[r], classes)
        hr_pairs.append(pd.DataFrame({"source": src, "record_id": test["record_id"].to_numpy()[r],
                                      "requested_hr": req_hr[r], "measured_hr": m["hr_nk"].to_numpy(float)}))
    if n_dd > 0:
        m = meas["model"].iloc[:n_dd].reset_index(drop=True)
        feat_rows += _feature_rows("model_subset", m, meas["real"].iloc[:n_dd].reset_index(drop=True),
                                   req_hr[:n_dd], y_test[:n_dd], classes)
    features = pd.DataFrame(feat_rows)
    hr_pairs = pd.concat(hr_pairs, ignore_index=True)
    lap("features", sum(len(x) for x in sets.values()))

    # -- diagnostic ----------------------------------------------------------------------------------------
    model, th, valid = fit_classifier(run_dir, out, sigs, labs, classes, seed=seed, steps=clf_steps,
                                       train_batch=train_batch)
    diag_rows, cms, summ = [], [], []
    for src, x in list(sets.items()) + ([("model_subset", sets["model"][:n_dd])] if n_dd else []):
        y = y_test[:len(x)]
        if src in ("real", "vae"):  # one row per real ECG: a repeated condition is not a new real sample
            x, y = x[first], y_test[first]
        p = predict_proba(model, x)
        rows = _diag_rows(src, p, th, y, classes, valid)
        diag_rows += rows
        cms.append(_confusion(src, p, y, classes, valid))
        summ.append(diagnostic_summary_row(src, rows, len(x)))
    unseen = pd.DataFrame()
    if paraphrase:
        unseen = _unseen_rows(generate, split["train"]["report"], test, model, th, classes, valid, seed=seed,
                              per_combination=per_combination, sampler=sampler, steps=steps, fs=pipe.fs, workers=workers)
        lap("unseen_combinations", len(unseen))
    diagnostic = pd.DataFrame(diag_rows)
    diagnostic_summary = pd.DataFrame(summ)
    confusion = pd.concat(cms, ignore_index=True)
    lap("classifier", len(sigs["train"]))

    tstr_rows = []
    if n_tstr is None or n_tstr > 0:
        tr = split["train"]
        k = len(tr) if n_tstr is None else min(int(n_tstr), len(tr))
        tsel = np.sort(np.random.default_rng(seed + 1).permutation(len(tr))[:k])
        x_syn = generate(tr.iloc[tsel], sampler, steps, seed + 10 ** 6)
        cols = np.flatnonzero(valid)
        res = tstr_trtr((sigs["train"][tsel], labs["train"][tsel][:, cols]), (x_syn, labs["train"][tsel][:, cols]),
                        (sigs["val"], labs["val"][:, cols]), (sigs["test"], labs["test"][:, cols]), out / "tstr",
                        train_cfg=_train_cfg(clf_steps, seed, min(train_batch, k), wd=3e-4), pos_weight="balanced",
                        classes=[classes[c] for c in cols])
        for tag in ("trtr", "tstr"):
            tstr_rows.append({"setting": tag, "macro_auroc": res[f"{tag}_macro_auroc"], "n_train": res[f"n_train_{tag}"],
                              "n_test": res["n_test"]})
        tstr_rows.append({"setting": "tstr_over_trtr", "macro_auroc": res["tstr_over_trtr"], "n_train": k,
                          "n_test": res["n_test"]})
        lap("tstr", k)
    tstr = pd.DataFrame(tstr_rows, columns=["setting", "macro_auroc", "n_train", "n_test"])

    from .reconstruction import physical_consistency

    physical = pd.DataFrame([{"source": src, "n": len(x), **physical_consistency(x if src not in ("real", "vae") else x[first], pipe.fs)}
                             for src, x in sets.items()])
    rhythm = pd.DataFrame([r for src, m in meas.items() for r in rhythm_rows(
        src, m if src not in ("real", "vae") else m[first[:len(m)]].reset_index(drop=True),
        y_test[:len(m)] if src not in ("real", "vae") else y_test[first], classes)])
    tables = {"conditions": cond, "signal": signal, "retrieval": retrieval, "features": features,
              "hr_pairs": hr_pairs, "diagnostic": diagnostic, "diagnostic_summary": diagnostic_summary,
              "confusion": confusion, "physical": physical, "rhythm": rhythm, "tstr": tstr,
              "unseen_combinations": unseen}
    tables["targets"] = targets_table(tables)
    tables["timings"] = pd.DataFrame(timings)
    for name, df in tables.items():
        _write(out, name, df)
    figs = _figures(out, tables, hr_pairs)
    params = {"run_dir": str(run_dir), "n_eval": n_eval, "n_per_class": n_per_class, "min_per_class": min_per_class,
              "seed": seed,
              "clip_steps": clip_steps, "clf_steps": clf_steps, "sampler": sampler, "steps": steps,
              "guidance_scale": pipe.sampling["guidance_scale"] if guidance_scale is None else guidance_scale,
              "guidance_on": pipe.sampling["guidance_on"] if guidance_on is None else guidance_on, "baselines": list(baselines), "n_ddpm": n_ddpm, "ddpm_steps": ddpm_steps, "n_tstr": n_tstr,
              "n_boot": n_boot, "train_batch": train_batch, "n_conditions": len(test), "classes": classes, "figures": figs,
              "pipeline": pipe.identity}
    (out / "benchmark.json").write_text(json.dumps(params, indent=1, default=_json_default))
    return tables


# -- CLI -----------------------------------------------------------------------------------------------------------
def _cmd_evaluate(args: argparse.Namespace) -> int:
    tables = evaluate_run(args.run_dir, n_eval=args.n_eval, n_per_class=args.n_per_class,
                          min_per_class=args.min_per_class, seed=args.seed,
                          clip_steps=args.clip_steps, clf_steps=args.clf_steps, sampler=args.sampler, steps=args.steps,
                          baselines=tuple(b for b in args.baselines.split(",") if b), n_ddpm=args.n_ddpm,
                          ddpm_steps=args.ddpm_steps, n_tstr=args.n_tstr, n_boot=args.n_boot,
                          train_batch=args.train_batch, workers=args.workers,
                          guidance_scale=args.guidance_scale, guidance_on=args.guidance_on, out_dir=args.out_dir,
                          paraphrase=args.paraphrase)
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(tables["signal"][["source", "n", "fid", "floor", "rfid", "precision", "recall", "coverage"]])
        print(tables["targets"])
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """``diffusets evaluate RUN_DIR [...]``: add the sub-command to an argparse ``subparsers`` object."""
    c = subparsers.add_parser("evaluate", help="benchmark a trained run (signal/feature/diagnostic + baselines)")
    c.add_argument("run_dir")
    c.add_argument("--n-eval", type=int, default=None, help="test conditions (default: all test records)")
    c.add_argument("--n-per-class", type=int, default=None, help="stratify: up to N test records per class")
    c.add_argument("--min-per-class", type=int, default=0,
                   help="repeat a class's conditions (new seeds) until every class has at least N (default 0)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--clip-steps", type=int, default=300)
    c.add_argument("--clf-steps", type=int, default=300)
    c.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "dpmsolver++"])
    c.add_argument("--steps", type=int, default=50)
    c.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance of every generated set (1.0: plain conditional sampling; default: "
                        "the run's validated scale from `diffusets guidance-sweep --save`, else 1.0)")
    c.add_argument("--guidance-on", default=None, choices=["all", "text"], help="default: the run's setting")
    c.add_argument("--paraphrase", action="store_true", help="also reworded reports (source 'paraphrased') and "
                   "statement combinations the training set never pairs (table unseen_combinations)")
    c.add_argument("--baselines", default="nn,deepfake,ddpm", help="comma-separated subset of nn,deepfake,ddpm,noc (noc: train it first with "
                        "`diffusets train-unet RUN_DIR --text-only`)")
    c.add_argument("--n-ddpm", type=int, default=8)
    c.add_argument("--ddpm-steps", type=int, default=1000)
    c.add_argument("--n-tstr", type=int, default=0, help="training conditions generated for TSTR (0: skip)")
    c.add_argument("--n-boot", type=int, default=100)
    c.add_argument("--train-batch", type=int, default=64, help="CLIP / classifier training batch size")
    c.add_argument("--workers", type=int, default=0)
    c.add_argument("--out-dir", default=None)
    c.set_defaults(func=_cmd_evaluate)
    return c


# -- prose for the benchmark chapter ----------------------------------------------------------------------------------
def _fmt(x: Any, p: int = 2) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{x:.{p}f}" if np.isfinite(x) else "n/a"


def summarize_benchmark(tables: dict[str, pd.DataFrame], *, profile: str = "", sampler: str = "", steps: Any = "",
                        guidance: str = "") -> list[str]:
    """The benchmark chapter's findings as Markdown bullet lines, every number read from ``tables`` (the output
    of :func:`evaluate_run`): each target met or missed with its value and the ``vae`` ceiling that bounds it,
    the real ECGs' own values, and the baselines."""
    tg = tables["targets"].set_index("target")
    sd = tables["diagnostic_summary"].set_index("source")
    sg = tables["signal"].set_index("source")
    feat = tables["features"]

    def verdict(key: str) -> str:
        if key not in tg.index:
            return "n/a"
        r = tg.loc[key]
        ceil = f"; VAE ceiling {_fmt(r['vae_ceiling'])}" if "vae_ceiling" in r and np.isfinite(r["vae_ceiling"]) else ""
        return (f"**{'met' if r['met'] else 'missed'}** (value {_fmt(r['value'])}; needed {r['direction']} "
                f"{_fmt(r['threshold'])}{ceil})")

    def sd_val(src: str, col: str) -> str:
        return _fmt(sd.loc[src, col]) if src in sd.index else "n/a"

    hr = feat[(feat["source"] == "model") & (feat["class"] == "all") & (feat["metric"] == "hr_50_150")]
    hr_n = int(hr["n_valid"].iloc[0]) if len(hr) else 0
    lines = [
        f"- Profile `{profile}`: {len(tables['conditions'])} test conditions, sampler `{sampler}` with {steps} steps, "
        f"guidance {guidance}; the model's signal metrics use n = "
        f"{int(sg.loc['model', 'n']) if 'model' in sg.index and np.isfinite(sg.loc['model', 'n']) else 0} per side.",
        f"- Macro recall over the morphology classes ≥ 0.80: {verdict('macro_recall_morphology')}; real test ECGs "
        f"{sd_val('real', 'macro_recall_morphology')}.",
        "- Per-class recall ≥ 0.60: " + "; ".join(f"{c} {verdict(f'recall_{c}')}" for c in KEY_CLASSES) + ".",
        f"- All-class macro recall ≥ 0.85 × the real ECGs' ({sd_val('real', 'macro_recall')}): "
        f"{verdict('macro_recall_vs_real')}.",
        f"- HR MAE ≤ 5 bpm for requested HR 50–150 ({hr_n} measurable ECGs): {verdict('hr_mae_50_150')}.",
        f"- rFID ≤ 2: {verdict('rfid')}; precision ≥ 0.7: {verdict('precision')}; recall ≥ 0.7: {verdict('recall')}.",
        f"- Physical consistency: frontal-lead identity error ≤ 5 µV {verdict('identity_uv')}; share beyond ±10 mV "
        f"{verdict('beyond_10mv')}.",
        f"- Rhythm: sinus RR variability ≤ 2 × the real sinus records' {verdict('sinus_rr_cv_vs_real')}; atrial "
        f"fibrillation ≥ 3 × generated sinus {verdict('af_rr_cv_vs_sinus')}.",
        f"- Beats the nearest-neighbour baseline on macro recall: {verdict('beats_nn_macro_recall')}; on coverage: "
        f"{verdict('beats_nn_coverage')}.",
    ]
    if "paraphrase_hr_mae_50_150" in tg.index:
        lines.append(f"- Reports as people write them (every statement reworded, same conditions and seeds): HR MAE ≤ 5 "
                     f"bpm {verdict('paraphrase_hr_mae_50_150')}; morphology macro recall "
                     f"{sd_val('paraphrased', 'macro_recall_morphology')} against {sd_val('model', 'macro_recall_morphology')} "
                     f"in distribution, gap ≤ 0.1 {verdict('paraphrase_morphology_gap')}.")
    un = tables.get("unseen_combinations")
    if un is not None and len(un):
        lines.append(f"- {len(un)} statement combinations the training set never pairs ({int(un['n'].iloc[0])} ECGs each): "
                     f"every requested class found in {_fmt(un['recall_all_requested'].mean())} of the ECGs on average "
                     f"(from {_fmt(un['recall_all_requested'].min())} to {_fmt(un['recall_all_requested'].max())}).")
    if "deepfake" in sg.index:
        lines.append(f"- deepfake-ecg (unconditional): rFID {_fmt(sg.loc['deepfake', 'rfid'])}, coverage "
                     f"{_fmt(sg.loc['deepfake', 'coverage'])}, macro recall {sd_val('deepfake', 'macro_recall')}.")
    if "ddpm" in sd.index and "model_subset" in sd.index:
        lines.append(f"- DDPM vs the fast sampler on the same {int(sd.loc['ddpm', 'n'])} conditions: macro recall "
                     f"{sd_val('ddpm', 'macro_recall')} vs {sd_val('model_subset', 'macro_recall')}.")
    if "noc" in sd.index:
        hr_noc = feat[(feat["source"] == "noc") & (feat["class"] == "all") & (feat["metric"] == "hr_50_150")]
        lines.append(f"- Text-only ablation (noc) vs the model: HR MAE "
                     f"{_fmt(hr_noc['mae'].iloc[0] if len(hr_noc) else np.nan, 1)} vs "
                     f"{_fmt(hr['mae'].iloc[0] if len(hr) else np.nan, 1)} bpm, rFID {_fmt(sg.loc['noc', 'rfid'])} vs "
                     f"{_fmt(sg.loc['model', 'rfid'])}, macro recall {sd_val('noc', 'macro_recall')} vs "
                     f"{sd_val('model', 'macro_recall')}.")
    if len(tables.get("tstr", [])):
        t = tables["tstr"].set_index("setting")["macro_auroc"]
        lines.append(f"- TSTR macro AUROC {_fmt(t['tstr'])} vs TRTR {_fmt(t['trtr'])} (ratio {_fmt(t['tstr_over_trtr'])}).")
    if profile == "smoke":
        lines.append("- Smoke profile: toy models trained for seconds; these numbers only show that every path runs.")
    return lines


def recall_table(tables: dict[str, pd.DataFrame], sources: Sequence[str] = ("real", "vae", "model")) -> pd.DataFrame:
    """Per-class recall with its 95 % Wilson interval, one column per source (``0.62 [0.45, 0.77] (n=30)``),
    morphology classes marked: the benchmark chapter's diagnostic table."""
    d = tables["diagnostic"]
    d = d[d["trained"] & d["source"].isin(sources)]
    cell = d.apply(lambda r: f"{_fmt(r['recall'])} [{_fmt(r['recall_lo'])}, {_fmt(r['recall_hi'])}] (n={int(r['support'])})",
                   axis=1)
    out = d.assign(cell=cell).pivot_table(index="class", columns="source", values="cell", aggfunc="first", sort=False)
    out = out[[s for s in sources if s in out.columns]]
    out.insert(0, "morphology", [c in MORPHOLOGY_CLASSES for c in out.index])
    return out
