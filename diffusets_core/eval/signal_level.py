"""Signal level of the benchmark: each set of ECGs as a distribution of CLIP features against the real test ECGs.

FID / rFID, precision / recall (k=3), density / coverage (k=5) and the CLIP score (:func:`.metrics.signal_metrics`)
on the 64-d ECG features of the benchmark's CLIP (:func:`.fit_judges.fit_clip`). Every set is compared with the real
TEST features at the same ``n``; the real-vs-real floor compares the real VALIDATION split with the same test
features. Also the CLIP's own retrieval accuracy on test, and the physical consistency of every set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .clip import ClipFeaturizer, retrieval_accuracy
from .conditions import EvaluatedConditions
from .metrics import clip_score_report, signal_metrics
from .reconstruction import physical_consistency
from .splits import EvalSplits

__all__ = [
    "MIN_SET",
    "SIGNAL_COLUMNS",
    "ClipReference",
    "clip_reference",
    "retrieval_table",
    "signal_row",
    "real_floor_row",
    "signal_table",
    "physical_table",
]

MIN_SET = 8  # smallest set for FID / k-NN metrics
SIGNAL_COLUMNS = (
    "n",
    "n_real",
    "n_gen",
    "fid",
    "floor",
    "rfid",
    "rfid_lo",
    "rfid_hi",
    "precision",
    "recall",
    "density",
    "coverage",
    "f1",
    "precision_floor",
    "recall_floor",
    "density_floor",
    "coverage_floor",
    "f1_floor",
    "clip",
    "clip_shuffled",
    "n_clip",
)


@dataclass
class ClipReference:
    """The real features every set is compared with."""

    featurizer: ClipFeaturizer
    val: np.ndarray  # (N_val, 64) ECG features of the real validation split (the floor's stand-in set)
    test: np.ndarray  # (N_test, 64) ECG features of the whole real test split
    text: np.ndarray  # (M, 64) text features of the evaluated conditions' reports


def clip_reference(featurizer: ClipFeaturizer, data: EvalSplits, conditions: EvaluatedConditions) -> ClipReference:
    """The real validation and test ECG features and the conditions' text features under ``featurizer``."""
    f_val = featurizer.ecg_features(data.signals["val"])
    f_test = featurizer.ecg_features(data.signals["test"])
    return ClipReference(featurizer, f_val, f_test, featurizer.text_features(conditions.vectors))


def retrieval_table(ref: ClipReference, data: EvalSplits) -> pd.DataFrame:
    """One row (``split`` = test): the CLIP's text->ECG and ECG->text top-k retrieval accuracy on the real test
    split, identical reports counted as one text (:func:`.clip.retrieval_accuracy`), with chance levels."""
    ret = retrieval_accuracy(
        ref.test, ref.featurizer.text_features(data.vectors["test"]), data.records["test"]["report"].tolist()
    )
    return pd.DataFrame([{"split": "test", **ret}])


def _too_small(source: str, n: int, n_real: int, n_gen: int) -> dict:
    # k-NN manifolds (k=5) and a 64-d covariance need more points: counts only
    return {
        "source": source,
        "n": n,
        "n_real": n_real,
        "n_gen": n_gen,
        "note": f"n < {MIN_SET}: set metrics not computed",
    }


def signal_row(ref: ClipReference, source: str, x: np.ndarray, *, seed: int, n_boot: int) -> dict:
    """Set metrics of ``x`` (N, 12, L) mV (row i generated for condition i) against the real test features, at
    ``n = min(N, N_test, N_val)``, with its CLIP score against the conditions' reports; counts only when
    ``n`` < :data:`MIN_SET`."""
    f = ref.featurizer.ecg_features(x)
    n = min(len(f), len(ref.test), len(ref.val))
    if n < MIN_SET:
        return _too_small(source, n, len(ref.test), len(f))
    row = signal_metrics(
        ref.test,
        f,
        real_ref=ref.val,
        n=n,
        seed=seed,
        n_boot=n_boot,
        ecg_feat_for_clip=f,
        text_feat=ref.text[: len(f)],
        label=source,
    )
    row["source"] = source
    return row


def real_floor_row(ref: ClipReference, x_real: np.ndarray, *, seed: int, n_boot: int) -> dict:
    """The ``real`` row, the floor: the real VALIDATION ECGs in place of generated ones (``fid == floor``); its
    CLIP score pairs the real TEST ECGs ``x_real`` (M, 12, L) of the conditions with their own reports."""
    n = min(len(ref.test), len(ref.val))
    if n < MIN_SET:
        return _too_small("real", n, len(ref.test), len(ref.val))
    row = signal_metrics(ref.test, ref.val, real_ref=ref.val, n=n, seed=seed, n_boot=n_boot, label="real")
    cs = clip_score_report(ref.featurizer.ecg_features(x_real), ref.text, seed=seed, n_boot=n_boot)
    row.update(
        {
            "source": "real",
            "clip": cs["clip"],
            "clip_lo": cs["clip_ci"][0],
            "clip_hi": cs["clip_ci"][1],
            "clip_shuffled": cs["shuffled"],
            "n_clip": cs["n"],
        }
    )
    return row


def signal_table(
    ref: ClipReference, sets: dict[str, np.ndarray], *, seed: int, n_boot: int, n_subset: int = 0
) -> pd.DataFrame:
    """The ``signal`` table: :func:`real_floor_row` for ``real``, :func:`signal_row` for every other set (in the
    order of ``sets``) and, when ``n_subset`` > 0, for the model's first ``n_subset`` ECGs (``model_subset``, the
    fast sampler on the ddpm conditions). Always has the :data:`SIGNAL_COLUMNS` (NaN where not computed)."""
    rows = [
        real_floor_row(ref, x, seed=seed, n_boot=n_boot)
        if src == "real"
        else signal_row(ref, src, x, seed=seed, n_boot=n_boot)
        for src, x in sets.items()
    ]
    if n_subset > 0:  # the fast sampler on the ddpm subset, for a like-for-like comparison
        rows.append(signal_row(ref, "model_subset", sets["model"][:n_subset], seed=seed, n_boot=n_boot))
    signal = pd.DataFrame(rows)
    for col in SIGNAL_COLUMNS:  # a table where every set was too small still has the metric columns
        if col not in signal:
            signal[col] = np.nan
    return signal[["source"] + [c for c in signal.columns if c not in ("source", "label")]]


def physical_table(sets: dict[str, np.ndarray], conditions: EvaluatedConditions, fs: float) -> pd.DataFrame:
    """:func:`.reconstruction.physical_consistency` of every set (the real-ECG sets count each ECG once)."""
    return pd.DataFrame(
        [{"source": src, "n": len(x), **physical_consistency(conditions.once(src, x), fs)} for src, x in sets.items()]
    )
