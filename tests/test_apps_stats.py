"""diffusets_core.apps.stats on known cases."""

import math

import numpy as np
import pytest

from diffusets_core.apps import stats


def test_identical_groups_give_zero_effect_and_ci_covering_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 60)
    r = stats.compare(a, a.copy(), expected="increase", n_boot=500)
    assert r["effect"] == pytest.approx(0.0, abs=1e-12)
    assert r["ci_lo"] < 0 < r["ci_hi"]
    assert r["verdict"] == stats.NOT_FOUND
    assert r["n_case"] == r["n_control"] == 60
    assert r["p"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("shift, sigma", [(1.0, 1.0), (3.0, 2.0)])
def test_shifted_normals_recover_d_and_exclude_zero(shift, sigma):
    rng = np.random.default_rng(1)
    ctrl = rng.normal(10, sigma, 400)
    case = rng.normal(10 + shift, sigma, 400)
    d = stats.cohens_d(case, ctrl)
    assert d == pytest.approx(shift / sigma, abs=0.15)
    g = stats.hedges_g(case, ctrl)
    assert abs(g) < abs(d) and g == pytest.approx(d * (1 - 3 / (4 * 800 - 9)))
    r = stats.compare(case, ctrl, expected="increase", n_boot=400, seed=3)
    assert r["ci_lo"] > 0 and r["diff"] == pytest.approx(case.mean() - ctrl.mean())
    assert r["verdict"] == stats.PRESENT and r["p"] < 1e-6
    assert stats.compare(case, ctrl, expected="decrease", n_boot=400)["verdict"] == stats.OPPOSITE
    assert stats.compare(ctrl, case, n_boot=400)["verdict"] == stats.SHIFT + " (decrease)"


def test_paired_statistics_use_the_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, 50)  # large between-pair spread ...
    case = base + 0.5 + rng.normal(0, 0.25, 50)  # ... small consistent within-pair shift
    r = stats.compare(case, base, paired=True, expected="increase", n_boot=500)
    assert r["effect_name"].startswith("d_z") and r["test"].startswith("Wilcoxon")
    assert r["effect"] == pytest.approx(2.0, abs=0.6) and r["verdict"] == stats.PRESENT
    # unpaired on the same data cannot see it
    assert stats.compare(case, base, expected="increase", n_boot=500)["verdict"] == stats.NOT_FOUND
    with pytest.raises(ValueError):
        stats.paired_d([1, 2, 3], [1, 2])


def test_nan_handling_and_not_measurable():
    r = stats.compare([1.0, np.nan, np.nan], [0.0, 1.0, 2.0], expected="increase", n_boot=100)
    assert r["n_case"] == 1 and math.isnan(r["effect"]) and r["verdict"] == stats.NOT_MEASURABLE
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([0.0, np.nan, 1.0, 2.0])
    rp = stats.compare(a, b, paired=True, n_boot=200)
    assert rp["n_case"] == rp["n_control"] == 2  # only complete pairs


def test_verdict_logic():
    assert stats.verdict(0.1, 0.5, "increase") == stats.PRESENT
    assert stats.verdict(-0.5, -0.1, "decrease") == stats.PRESENT
    assert stats.verdict(-0.5, -0.1, "increase") == stats.OPPOSITE
    assert stats.verdict(-0.1, 0.5, "increase") == stats.NOT_FOUND
    assert stats.verdict(float("nan"), 1.0, "increase") == stats.NOT_MEASURABLE
    assert stats.verdict(-0.1, 0.5) == stats.NO_SHIFT
    with pytest.raises(ValueError):
        stats.verdict(0, 1, "up")


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1, 1, 30), rng.normal(0, 1, 30)
    assert stats.bootstrap_ci(a, b, seed=5, n_boot=300) == stats.bootstrap_ci(a, b, seed=5, n_boot=300)
    assert stats.bootstrap_ci(a, b, seed=5, n_boot=300) != stats.bootstrap_ci(a, b, seed=6, n_boot=300)


def test_no_verdict_below_min_n():
    # 4 pairs with the same sign: every bootstrap resample is positive, yet 4 pairs prove nothing
    r = stats.compare([1.0, 2.0, 3.0, 4.5], [0.0, 0.5, 1.0, 2.0], paired=True, expected="increase", n_boot=200)
    assert r["ci_lo"] > 0 and r["verdict"] == stats.TOO_FEW.format(min_n=stats.MIN_N_VERDICT)
    r2 = stats.compare(
        [1.0, 2.0, 3.0, 4.5], [0.0, 0.5, 1.0, 2.0], paired=True, expected="increase", n_boot=200, min_n=2
    )
    assert r2["verdict"] == stats.PRESENT
