"""Diagnostic-level: report -> label mapping, tiny classifier on toy data, metrics, TSTR/TRTR."""

import numpy as np

from diffusets_core.eval import classifiers as K
from diffusets_core.train.loop import TrainConfig

TINY = dict(filters=[8, 16], blocks=[1, 1], kernel=5, group_width=8, stem=8, dropout=0.0)


def test_labels_from_reports_paper_map():
    reports = [
        "Sinus rhythm|Normal ECG",
        "Sinus rhythm|Abnormal ECG|Inferior infarct - age undetermined",
        ["Atrial fibrillation", "PVC(s)"],
        "Sinus tachycardia|ST elevation",
        "st-t changes",
        "1st degree A-V block",
        "WARNING: data quality",
        None,
    ]
    y, names = K.labels_from_reports(reports, exclude=("warning:",))
    assert names == list(K.PAPER_CLASSES)
    col = {n: i for i, n in enumerate(names)}

    def has(i):
        return {n for n in names if y[i, col[n]] == 1}

    assert has(0) == {"sn", "normal"}
    assert has(1) == {"sn", "mi"}  # "abnormal ecg" is not normal
    assert has(2) == {"af", "pvc"}
    assert has(3) == {"snt", "st"}
    assert has(4) == {"st"}
    assert has(5) == {"avbi"}
    assert np.isnan(y[6]).all()
    assert y[7].sum() == 0


def test_labels_custom_map():
    y, names = K.labels_from_reports(
        ["Left bundle branch block", "lbbb"],
        {"lbbb": ["left bundle branch", "lbbb"], "other": {"any": ["x"], "none": []}},
    )
    assert names == ["lbbb", "other"] and y.tolist() == [[1, 0], [1, 0]]


def _toy(n: int, seed: int, L: int = 256):
    """3 classes = sinusoid frequency 2, 5 or 9 cycles (+ noise); multi-hot labels with one class each."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 3, n)
    f = np.array([2, 5, 9])[c]
    t = np.linspace(0, 1, L, endpoint=False)
    x = np.sin(2 * np.pi * f[:, None, None] * t + rng.uniform(0, 6.3, (n, 1, 1)))
    x = (x * rng.uniform(0.5, 1.5, (n, 12, 1)) + 0.3 * rng.normal(size=(n, 12, L))).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[c]


def _tcfg(steps=50):
    return TrainConfig(
        max_steps=steps,
        batch_size=32,
        lr=1e-2,
        weight_decay=1e-4,
        ema_decay=0.9,
        val_every=25,
        checkpoint_every=1000,
        progress=False,
        seed=0,
    )


def test_tiny_classifier_auroc(tmp_path):
    xtr, ytr = _toy(256, 0)
    xva, yva = _toy(96, 1)
    xte, yte = _toy(96, 2)
    cfg = K.ClassifierConfig(n_classes=3, classes=["f2", "f5", "f9"], encoder=dict(TINY))
    model, res = K.train_classifier(xtr, ytr, xva, yva, tmp_path, cfg, _tcfg(120), pos_weight="balanced")
    assert (tmp_path / "best.pt").is_file()
    p = K.predict_proba(model, xte)
    assert p.shape == (96, 3) and ((p >= 0) & (p <= 1)).all()
    th = K.choose_thresholds(yva, K.predict_proba(model, xva))
    m = K.classification_metrics(yte, p, th, cfg.classes)
    assert m["macro_auroc"] > 0.9
    assert m["confusion"].shape == (3, 3) and m["confusion_n"] == 96
    assert np.trace(m["confusion"]) > 0.7 * 96, m["confusion"]
    assert set(m["per_class"].columns) >= {"class", "support", "auroc", "recall", "specificity", "precision"}
    again = K.load_classifier(tmp_path / "best.pt")
    assert np.allclose(K.predict_proba(again, xte[:5]), p[:5], atol=1e-5)


def test_thresholds_and_metrics_known_answer():
    y = np.array([[1], [1], [0], [0]], dtype=float)
    p = np.array([[0.9], [0.6], [0.4], [0.1]])
    th = K.choose_thresholds(y, p)
    assert 0.4 < th[0] <= 0.6
    m = K.classification_metrics(y, p, th, ["a"])
    assert m["macro_auroc"] == 1.0
    assert m["per_class"].loc[0, "recall"] == 1.0 and m["per_class"].loc[0, "specificity"] == 1.0


def test_tstr_trtr(tmp_path):
    real_tr, val, test = _toy(192, 0), _toy(64, 1), _toy(96, 2)
    # "synthetic" data with labels scrambled: TSTR must be clearly worse than TRTR
    xs, ys = _toy(192, 3)
    ys = ys[np.random.default_rng(0).permutation(len(ys))]
    cfg = K.ClassifierConfig(n_classes=3, encoder=dict(TINY))
    r = K.tstr_trtr(real_tr, (xs, ys), val, test, tmp_path, cfg=cfg, train_cfg=_tcfg(50))
    assert r["trtr_macro_auroc"] > 0.85
    assert r["tstr_macro_auroc"] < r["trtr_macro_auroc"] - 0.2
    assert r["n_test"] == 96 and r["n_train_tstr"] == 192
