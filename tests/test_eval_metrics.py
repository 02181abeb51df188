"""Known-answer tests for diffusets_core.eval.metrics."""

import numpy as np
import pytest

from diffusets_core.eval import metrics as M


@pytest.fixture(scope="module")
def gauss():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3000, 8)), rng


def test_identical_sets(gauss):
    x, _ = gauss
    assert abs(M.frechet_distance(x, x)) < 1e-8
    pr = M.precision_recall(x, x, k=3)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    dc = M.density_coverage(x, x, k=5)
    assert dc["coverage"] == pytest.approx(1.0)
    assert dc["density"] >= 1.0


def test_shifted_gaussians_fid_equals_squared_mean_shift():
    rng = np.random.default_rng(1)
    d, n = 8, 20000
    mu = np.linspace(-1, 1, d)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + mu
    fid = M.frechet_distance(a, b)
    assert fid == pytest.approx(float(mu @ mu), rel=0.03, abs=0.02)


def test_disjoint_far_sets_pr_zero(gauss):
    x, rng = gauss
    y = rng.normal(size=(2000, 8)) + 50.0
    pr = M.precision_recall(x, y)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0 and pr["f1"] == 0.0
    dc = M.density_coverage(x, y)
    assert dc["density"] == 0.0 and dc["coverage"] == 0.0


def test_chunking_does_not_change_results(gauss):
    x, rng = gauss
    y = rng.normal(size=(700, 8)) * 1.3
    a = M.precision_recall(x[:900], y, chunk=64)
    b = M.precision_recall(x[:900], y, chunk=4096)
    assert a == b


def test_fid_report_same_n_and_ci(gauss):
    x, rng = gauss
    gen = rng.normal(size=(900, 8)) + 0.5
    r = M.fid_report(x, gen, seed=3, n_boot=60)
    assert r["n"] == 900 and r["n_real"] == 3000 and r["n_gen"] == 900 and r["n_real_ref"] is None
    lo, hi = r["fid_ci"]
    assert lo <= r["fid"] <= hi
    assert r["floor_ci"][0] <= r["floor"] <= r["floor_ci"][1]
    assert r["rfid"] == pytest.approx(r["fid"] / r["floor"])
    assert r["rfid"] > 5  # shifted set is far above the real-vs-real floor
    # bigger generated set: subsampled to half of the real set
    r2 = M.fid_report(x, rng.normal(size=(5000, 8)), n_boot=0)
    assert r2["n"] == 1500 and r2["n_gen"] == 5000
    # separate real reference set and explicit n
    r3 = M.fid_report(x, gen, real_ref=rng.normal(size=(1000, 8)), n=400, n_boot=0)
    assert r3["n"] == 400 and r3["floor_kind"] == "real reference set"
    with pytest.raises(ValueError):
        M.fid_report(x, gen, n=2000)
    # deterministic for a seed
    assert M.fid_report(x, gen, seed=3, n_boot=60) == r


def test_signal_metrics_row(gauss):
    x, rng = gauss
    gen = rng.normal(size=(600, 8)) * 0.7
    text = rng.normal(size=(600, 8))
    row = M.signal_metrics(x, gen, n_boot=40, ecg_feat_for_clip=gen, text_feat=text, label="toy")
    for key in (
        "fid",
        "floor",
        "rfid",
        "precision",
        "recall",
        "density",
        "coverage",
        "precision_floor",
        "recall_floor",
        "clip",
        "clip_shuffled",
        "n",
        "n_real",
        "n_gen",
    ):
        assert key in row
    assert row["n"] == 600 and row["label"] == "toy"
    for key in ("precision", "recall", "coverage", "fid"):
        assert row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]
    # a narrower generated distribution: high precision, reduced recall vs the real floor
    assert row["precision"] > row["recall"]
    assert row["recall"] < row["recall_floor"]


def test_clip_score_aligned_vs_shuffled():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(500, 16))
    e = 3.0 * t + 0.3 * rng.normal(size=t.shape)  # scale does not matter after L2 normalisation
    assert M.clip_score(e, t) > 0.95
    rep = M.clip_score_report(e, t, seed=0)
    assert abs(rep["shuffled"]) < 0.05
    assert rep["gap"] > 0.9 and rep["n"] == 500
    assert rep["clip_ci"][0] <= rep["clip"] <= rep["clip_ci"][1]
    with pytest.raises(ValueError):
        M.clip_score(e[:10], t[:11])
