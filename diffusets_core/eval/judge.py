"""The judges of generated ECGs: the benchmark's ECG-text CLIP (features for FID / precision / recall) and its
multi-label classifier (recall of the requested class), both trained on a run's real TRAINING split
(:func:`.fit_judges.fit_clip`, :func:`.fit_judges.fit_classifier`), and :class:`BenchmarkJudge`, which fits them once and then scores any
number of generated sets for the same conditions — what ablations and sweeps need to compare models side by side
with the same yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .classifiers import predict_proba
from .diagnostic_level import diagnostic_rows, diagnostic_summary_row
from .feature_level import feature_rows, rhythm_rows
from .features import measure_features
from .fit_judges import fit_classifier, fit_clip
from .metrics import signal_metrics
from .reconstruction import physical_consistency
from .request_level import all_requested
from .signal_level import MIN_SET
from .splits import load_eval_splits

__all__ = ["BenchmarkJudge"]


@dataclass
class BenchmarkJudge:
    """Built by :meth:`fit`; :meth:`score` reads a generated set against the real ECGs of ``split``."""

    split: str
    conditions: pd.DataFrame  # the evaluated records of ``split`` (report, age, sex, hr, ...)
    labels: np.ndarray  # (N, n_classes) requested classes of those records
    real: np.ndarray  # (N, 12, L) their real ECGs
    fs: float
    classes: list[str]
    _feat: Any = None
    _clf: Any = None
    _th: np.ndarray | None = None
    _valid: np.ndarray | None = None
    _f_real: np.ndarray | None = None
    _f_ref: np.ndarray | None = None
    seed: int = 0

    @classmethod
    def fit(
        cls,
        run_dir,
        out_dir,
        *,
        split: str = "test",
        n: int | None = None,
        seed: int = 0,
        clip_steps: int = 200,
        clf_steps: int = 200,
        train_batch: int = 64,
    ) -> BenchmarkJudge:
        """Train the CLIP and the classifier on ``run_dir``'s training split (thresholds from validation), and
        select ``n`` records of ``split`` (seeded; all when None) as the conditions to judge."""
        run_dir, out = Path(run_dir), Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = load_eval_splits(run_dir)
        recs, sigs, labs, classes = data.records, data.signals, data.labels, data.classes
        feat = fit_clip(run_dir, out, sigs, data.vectors, seed=seed, steps=clip_steps, train_batch=train_batch)
        clf, thresholds, valid = fit_classifier(
            run_dir, out, sigs, labs, classes, seed=seed, steps=clf_steps, train_batch=train_batch
        )
        sel = np.arange(len(recs[split]))
        if n is not None and n < len(sel):
            sel = np.sort(np.random.default_rng(seed).permutation(len(sel))[:n])
        ref_split = "val" if split == "test" else "train"
        j = cls(
            split,
            recs[split].iloc[sel].reset_index(drop=True),
            labs[split][sel],
            sigs[split][sel],
            data.fs,
            classes,
            seed=seed,
        )
        j._feat, j._clf, j._th, j._valid = feat, clf, thresholds, valid
        j._f_real = feat.ecg_features(sigs[split])
        j._f_ref = feat.ecg_features(
            sigs[ref_split][np.random.default_rng(seed + 1).permutation(len(sigs[ref_split]))[: len(sigs[split])]]
        )
        return j

    def score(
        self,
        x: np.ndarray,
        *,
        labels: np.ndarray | None = None,
        requested_hr: np.ndarray | None = None,
        set_metrics: bool = True,
        workers: int = 0,
    ) -> dict[str, Any]:
        """Metrics of a generated set ``x`` (N, 12, L) mV for :attr:`conditions` (row i for condition i), or for
        other conditions given as ``labels`` (N, n_classes) and ``requested_hr`` (N,) bpm:
        HR MAE (requested 50-150 bpm), macro recall (all classes / morphology classes) and per-class recall, the
        share showing every requested class (``all_requested``),
        FID / rFID / precision / recall / coverage of CLIP features against the real ECGs of the split, the
        frontal-lead identity error and the share beyond ±10 mV, and the median RR variability of sinus and AF
        requests. ``set_metrics=False`` skips the CLIP set metrics (for sets that are not drawn like the real ones)."""
        own = labels is None
        labels = self.labels if own else np.asarray(labels)
        req_hr = self.conditions["hr"].to_numpy(float) if requested_hr is None else np.asarray(requested_hr, float)
        if len(x) != len(labels) or len(x) != len(req_hr):
            raise ValueError(f"expected {len(labels)} ECGs (one per condition), got {len(x)}")
        meas = measure_features(x, fs=self.fs, workers=workers)
        hr = next(
            r
            for r in feature_rows("x", meas, None, req_hr, labels, self.classes)
            if r["class"] == "all" and r["metric"] == "hr_50_150"
        )
        proba = predict_proba(self._clf, x)
        rows = diagnostic_rows("x", proba, self._th, labels, self.classes, self._valid)
        summary = diagnostic_summary_row("x", rows, len(x))
        out: dict[str, Any] = {
            "n": len(x),
            "hr_mae_50_150": hr["mae"],
            "macro_recall": summary["macro_recall"],
            "macro_recall_morphology": summary["macro_recall_morphology"],
            "all_requested": float(all_requested(proba, self._th, labels, self._valid).mean()),
        }
        out.update({f"recall_{r['class']}": r["recall"] for r in rows if r["trained"]})
        f = self._feat.ecg_features(x)
        m = min(len(f), len(self._f_real), len(self._f_ref))
        if set_metrics and m >= MIN_SET:
            sm = signal_metrics(self._f_real, f, real_ref=self._f_ref, n=m, seed=self.seed, n_boot=20)
            out.update({k: sm[k] for k in ("fid", "rfid", "precision", "recall", "coverage")})
        out.update(physical_consistency(x, self.fs))
        for r in rhythm_rows("x", meas, labels, self.classes):
            out[f"rr_cv_{r['rhythm']}"] = r["rr_cv_median"]
        return out

    def score_real(self) -> dict[str, Any]:
        """:meth:`score` of the real ECGs themselves (the reference every generated set is read against)."""
        return self.score(self.real)
