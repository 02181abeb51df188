"""Diagnostic-level evaluation: a 12-lead multi-label ECG classifier and train-on-synthetic / test-on-real.

Fixes relative to the paper's classification scripts (the authors' ``classification/classifier_train.py``;
book/reference_implementation.md#classifiers-and-augmentation):

* multi-label sigmoid outputs trained with ``BCEWithLogitsLoss`` (the paper applied softmax and then
  ``CrossEntropyLoss`` — a double softmax);
* model selection (``best.pt``) on the VALIDATION split, never the test split;
* decision thresholds chosen on validation, metrics reported on test: per-class recall/precision/specificity,
  macro AUROC (sklearn), a single-label confusion matrix.

Labels come from report statements by substring matching (:func:`labels_from_reports`); the class -> pattern
map is a parameter, :data:`PAPER_CLASSES` reproduces the paper's 15 disease categories (the substrings of the
authors' ``test_scripts/batch_disease_gen.py``; book/reference_implementation.md#disease-categories).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve
from torch import nn

from ..checkpoint import load_trained
from ..train.loop import TensorSource, Trainer, build_seeded
from .clip import CPU_NET1D, Net1D, as_float_tensor
from .judge_training import judge_train_config

__all__ = [
    "PAPER_CLASSES",
    "labels_from_reports",
    "labels_for_reports",
    "findings_of_text",
    "ClassifierConfig",
    "ECGClassifier",
    "train_classifier",
    "load_classifier",
    "predict_proba",
    "choose_thresholds",
    "classification_metrics",
    "tstr_trtr",
]

# class -> patterns. A pattern set is either a list of substrings (any matches) or a dict with "any" (at least
# one must match) and "none" (none may match). Matching is on the lower-cased report with statements joined by
# " | " and padded with spaces, so " st " also matches at the start or end of a statement.
Patterns = Union[Sequence[str], Mapping[str, Sequence[str]]]
PAPER_CLASSES: dict[str, Patterns] = {
    "pac": ["atrial premature contraction", "pac(s)"],
    "pvc": ["pvc", "ventricular premature", "premature ventricular"],
    "lbbb": ["left bundle branch block"],
    "rbbb": ["right bundle branch block"],
    "sn": ["sinus rhythm"],
    "snt": ["sinus tachycardia"],
    "snb": ["sinus bradycardia"],
    "sna": ["sinus arrhythmia"],
    "afl": ["atrial flutter"],
    "af": ["atrial fibrillation"],
    "pacing": ["pacing", "pace"],
    "mi": ["infarct"],
    "st": ["st junctional", " st ", "st-"],
    "avbi": ["degree"],
    "normal": {"any": ["normal ecg"], "none": ["abnormal ecg"]},
}


def _norm_report(r: Any) -> str:
    if r is None or (isinstance(r, float) and np.isnan(r)):
        return " "
    if isinstance(r, (list, tuple)):
        r = " | ".join(str(s) for s in r)
    return " " + " ".join(str(r).lower().replace("|", " | ").split()) + " "


def labels_from_reports(
    reports: Sequence[Any], classes: Mapping[str, Patterns] | None = None, exclude: Sequence[str] = ()
) -> tuple[np.ndarray, list[str]]:
    """Multi-hot labels ``(N, C)`` float32 and the class names, by substring matching on each report.

    ``reports``: strings (statements joined by ``|`` as in the manifest) or lists of statements.
    ``exclude``: substrings that blank a whole report (e.g. ``("warning:",)`` as in the paper) — its row is NaN
    so the caller can drop it.
    """
    classes = dict(PAPER_CLASSES if classes is None else classes)
    names = list(classes)
    out = np.zeros((len(reports), len(names)), dtype=np.float32)
    for i, r in enumerate(reports):
        text = _norm_report(r)
        if any(x.lower() in text for x in exclude):
            out[i] = np.nan
            continue
        for j, c in enumerate(names):
            pat = classes[c]
            if isinstance(pat, Mapping):
                hit = any(p.lower() in text for p in pat.get("any", ())) and not any(
                    p.lower() in text for p in pat.get("none", ())
                )
            else:
                hit = any(p.lower() in text for p in pat)
            out[i, j] = float(hit)
    return out, names


def findings_of_text(report: Any) -> list[str] | None:
    """The finding ids of a report whose every statement is a wording of the bank (or a canonical statement), else
    ``None``: the bank is the one place that maps a wording to its finding."""
    from ..data.cohort import wordings as W

    items = report if isinstance(report, (list, tuple)) else str(report).split("|")
    items = [s for s in (str(x).strip() for x in items) if s]
    if not items:
        return None
    try:
        return [W.finding_of(s) for s in items]
    except KeyError:
        return None


def labels_for_reports(
    reports: Sequence[Any], findings: Sequence[Any] | None = None, classes: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Multi-hot labels ``(N, C)`` float32 and the class names (:data:`.taxonomy.EVAL_CLASSES` by default).

    Per row, in this order: the structured ``findings`` when given and non-empty (finding ids joined by ``|``, or a
    list: the manifest's ``findings`` column); else the wording bank, when every statement of the report is a
    bank wording (a requested report built from the bank, train or held-out part); else the class's substring
    patterns on the report (:func:`labels_from_reports`: real machine statements). A class without a ``findings``
    entry is always labelled by its patterns.
    """
    from .taxonomy import EVAL_CLASSES

    classes = dict(EVAL_CLASSES if classes is None else classes)
    names = list(classes)
    out, _ = labels_from_reports(reports, classes)
    for i, r in enumerate(reports):
        f = findings[i] if findings is not None else None
        if isinstance(f, str):
            f = [x for x in f.split("|") if x]
        fids = list(f) if f else findings_of_text(r)
        if not fids:
            continue
        for j, c in enumerate(names):
            spec = classes[c]
            if isinstance(spec, Mapping) and "findings" in spec:
                out[i, j] = float(any(x in spec["findings"] for x in fids))
    return out, names


@dataclass
class ClassifierConfig:
    n_classes: int
    classes: list = field(default_factory=list)
    encoder: dict = field(default_factory=lambda: dict(CPU_NET1D))
    dropout: float = 0.1


class ECGClassifier(nn.Module):
    """Net1D encoder + linear head -> logits ``(B, C)`` (no softmax/sigmoid inside)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Net1D(**cfg.encoder)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(self.encoder.out_dim, cfg.n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _make_loss(pos_weight: torch.Tensor | None):
    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        logits = model(batch["x"]).float()
        pw = pos_weight.to(logits.device) if pos_weight is not None else None
        return F.binary_cross_entropy_with_logits(logits, batch["y"].float(), pos_weight=pw)

    return loss_fn


def train_classifier(
    signals_train: Any,
    y_train: Any,
    signals_val: Any,
    y_val: Any,
    out_dir: str | os.PathLike,
    cfg: ClassifierConfig | None = None,
    train_cfg: Any = None,
    *,
    pos_weight: None | str | Sequence[float] = None,
    classes: Sequence[str] = (),
    meta: dict | None = None,
) -> tuple[ECGClassifier, Any]:
    """Train a multi-label classifier with BCE-with-logits via the shared Trainer; ``best.pt`` = lowest
    VALIDATION loss. ``pos_weight``: None, ``"balanced"`` (neg/pos per class from the training labels, capped
    at 50) or explicit per-class weights. Returns ``(model loaded from best.pt, TrainResult)``.
    """
    ytr = as_float_tensor(y_train)
    if ytr.ndim == 1:
        ytr = ytr[:, None]
    yva = as_float_tensor(y_val)
    if yva.ndim == 1:
        yva = yva[:, None]
    C = ytr.shape[1]
    cfg = cfg or ClassifierConfig(n_classes=C, classes=list(classes))
    if cfg.n_classes != C:
        raise ValueError(f"ClassifierConfig.n_classes={cfg.n_classes} but labels have {C} columns")
    pw = None
    if isinstance(pos_weight, str):
        if pos_weight != "balanced":
            raise ValueError("pos_weight must be None, 'balanced' or a sequence")
        pos = ytr.sum(0).clamp_min(1)
        pw = ((len(ytr) - pos) / pos).clamp(max=50.0)
    elif pos_weight is not None:
        pw = torch.as_tensor(pos_weight, dtype=torch.float32)
    train_cfg = train_cfg or judge_train_config(weight_decay=3e-4)
    model = build_seeded(lambda: ECGClassifier(cfg), train_cfg.seed)
    src = TensorSource({"x": as_float_tensor(signals_train), "y": ytr})
    vsrc = TensorSource({"x": as_float_tensor(signals_val), "y": yva})
    m = {
        "kind": "ecg_classifier",
        "classifier_config": asdict(cfg),
        "pos_weight": None if pw is None else pw.tolist(),
        "n_train": len(src),
        "n_val": len(vsrc),
        **(meta or {}),
    }
    result = Trainer(model, _make_loss(pw), src, out_dir, train_cfg, val=vsrc, meta=m).fit()
    return load_classifier(Path(out_dir) / "best.pt"), result


def load_classifier(path: str | os.PathLike) -> ECGClassifier:
    cfg, state = load_trained(path, "classifier_config", "an ECG classifier")
    model = ECGClassifier(ClassifierConfig(**cfg))
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def predict_proba(model: ECGClassifier, x: Any, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Sigmoid probabilities ``(N, C)``."""
    model = model.to(device).eval()
    x = as_float_tensor(x)
    outs = [torch.sigmoid(model(x[i : i + batch_size].to(device)).float()).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, model.cfg.n_classes), np.float32)


def choose_thresholds(y_val: Any, p_val: Any, method: str = "youden") -> np.ndarray:
    """Per-class threshold from VALIDATION predictions: ``youden`` (max sensitivity + specificity - 1) or ``f1``.
    Classes without both labels in validation get 0.5."""
    y, p = np.atleast_2d(np.asarray(y_val)), np.atleast_2d(np.asarray(p_val))
    if y.shape[0] == 1 and p.shape[0] != 1:
        y, p = y.T, p.T
    thresholds = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        yc = y[:, c]
        if len(np.unique(yc[np.isfinite(yc)])) < 2:
            continue
        if method == "youden":
            fpr, tpr, t = roc_curve(yc, p[:, c])
            k = int(np.argmax(tpr - fpr))
            thresholds[c] = float(min(t[k], 1.0))
        elif method == "f1":
            pr, rc, t = precision_recall_curve(yc, p[:, c])
            f1 = 2 * pr[:-1] * rc[:-1] / np.maximum(pr[:-1] + rc[:-1], 1e-12)
            thresholds[c] = float(t[int(np.argmax(f1))])
        else:
            raise ValueError(f"unknown method {method!r}")
    return thresholds


def classification_metrics(
    y_true: Any, proba: Any, thresholds: Sequence[float] | None = None, classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Per-class AUROC / recall / precision / specificity / support at ``thresholds`` (choose them on
    validation), macro AUROC over classes with both labels present, and a single-label confusion matrix
    (rows with exactly one positive class; prediction = argmax probability)."""
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(proba, dtype=np.float64)
    if y.ndim == 1:
        y, p = y[:, None], p[:, None] if p.ndim == 1 else p
    C = y.shape[1]
    classes = list(classes) if classes else [str(i) for i in range(C)]
    thresholds = np.full(C, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    rows = []
    for c in range(C):
        yc, pc = y[:, c], p[:, c]
        pred = pc >= thresholds[c]
        pos, neg = yc == 1, yc == 0
        auroc = float(roc_auc_score(yc, pc)) if pos.any() and neg.any() else np.nan
        rows.append(
            {
                "class": classes[c],
                "support": int(pos.sum()),
                "auroc": auroc,
                "threshold": float(thresholds[c]),
                "recall": float(pred[pos].mean()) if pos.any() else np.nan,
                "specificity": float((~pred[neg]).mean()) if neg.any() else np.nan,
                "precision": float(pos[pred].mean()) if pred.any() else np.nan,
            }
        )
    per_class = pd.DataFrame(rows)
    single = y.sum(axis=1) == 1
    cm = None
    if single.any() and C > 1:
        cm = confusion_matrix(np.argmax(y[single], axis=1), np.argmax(p[single], axis=1), labels=list(range(C)))
    return {
        "macro_auroc": float(np.nanmean(per_class["auroc"])) if per_class["auroc"].notna().any() else np.nan,
        "per_class": per_class,
        "confusion": cm,
        "confusion_n": int(single.sum()),
        "classes": classes,
        "n": int(len(y)),
    }


def tstr_trtr(
    real_train: tuple[Any, Any],
    syn_train: tuple[Any, Any],
    real_val: tuple[Any, Any],
    real_test: tuple[Any, Any],
    out_dir: str | os.PathLike,
    *,
    cfg: ClassifierConfig | None = None,
    train_cfg: Any = None,
    pos_weight: None | str | Sequence[float] = None,
    classes: Sequence[str] = (),
    syn_val: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Train-on-real/test-on-real vs train-on-synthetic/test-on-real, same architecture and budget.

    Each argument is ``(signals, labels)``. Model selection uses ``real_val`` for both (pass ``syn_val`` to
    select the TSTR model on synthetic data only, the strict variant). Returns macro AUROC for both, their
    ratio, and the per-class tables.
    """
    out = Path(out_dir)
    res: dict[str, Any] = {}
    for tag, (xtr, ytr), val in (("trtr", real_train, real_val), ("tstr", syn_train, syn_val or real_val)):
        model, tr = train_classifier(
            xtr, ytr, val[0], val[1], out / tag, cfg, train_cfg, pos_weight=pos_weight, classes=classes
        )
        m = classification_metrics(
            real_test[1],
            predict_proba(model, real_test[0]),
            choose_thresholds(val[1], predict_proba(model, val[0])),
            classes,
        )
        res[f"{tag}_macro_auroc"] = m["macro_auroc"]
        res[f"{tag}_per_class"] = m["per_class"]
        res[f"n_train_{tag}"] = int(len(ytr))
    res["n_test"] = int(len(real_test[1]))
    res["tstr_over_trtr"] = res["tstr_macro_auroc"] / res["trtr_macro_auroc"] if res["trtr_macro_auroc"] else np.nan
    return res
