"""Feature-level measurement on simulated ECGs (neurokit2.ecg_simulate) at the package's 102.4 Hz."""

import warnings

import numpy as np
import pytest

nk = pytest.importorskip("neurokit2")
from scipy.signal import resample  # noqa: E402

from diffusets_core.eval import features as Fe  # noqa: E402

GAINS = np.array([1.0, 1.2, 0.4, -1.0, 0.5, 0.8, -0.6, 0.3, 0.9, 1.3, 1.1, 0.9])
HRS = (60, 90, 120)


def _sim(hr: float, seed: int = 1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=hr, random_state=seed)
    x = resample(x, 1024)  # 10 s at 102.4 Hz
    return (GAINS[:, None] * x[None]).astype(np.float32)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    sigs = [_sim(hr) for hr in HRS]
    sigs.append(np.zeros((12, 1024), np.float32))  # flat
    sigs.append(rng.normal(0, 0.3, (12, 1024)).astype(np.float32))  # pure noise
    return Fe.measure_features(np.stack(sigs))


@pytest.mark.parametrize("i,hr", list(enumerate(HRS)))
def test_hr_on_simulated(table, i, hr):
    row = table.iloc[i]
    assert row["reason"] == ""
    assert abs(row["hr_nk"] - hr) < 2.0
    assert abs(row["hr_xqrs"] - hr) < 2.0
    assert 60 <= row["qrs_ms"] <= 200
    assert 250 <= row["qt_ms"] <= 600
    assert 60 <= row["pr_ms"] <= 350
    assert 300 <= row["qtc_bazett_ms"] <= 700 and 300 <= row["qtc_fridericia_ms"] <= 700
    assert row["t_amp_II"] > 0.2 and np.isfinite(row["st_V1"])
    assert row["beat_corr"] > 0.9


def test_qt_shortens_with_rate(table):
    qt = table["qt_ms"].iloc[:3].to_numpy()
    assert qt[0] > qt[1] > qt[2]


def test_flat_and_noise_give_nan_with_reason(table):
    flat, noise = table.iloc[3], table.iloc[4]
    assert np.isnan(flat["hr_nk"]) and np.isnan(flat["qt_ms"]) and "flat" in flat["reason"]
    assert np.isnan(noise["hr_nk"]) and np.isnan(noise["hr_xqrs"]) and noise["reason"]


def test_bad_inputs_never_raise():
    r = Fe.measure_record(np.full((12, 1024), np.nan, np.float32))
    assert "non-finite" in r["reason"]
    r = Fe.measure_record(np.zeros((3, 100)))
    assert r["reason"].startswith("error")
    r = Fe.measure_record(np.ones((12, 40), np.float32) * np.linspace(0, 1, 40))
    assert r["reason"] and np.isnan(r["qt_ms"])


def test_pool_matches_serial():
    sigs = np.stack([_sim(75, seed=s) for s in range(4)])
    a = Fe.measure_features(sigs, chunk=2)
    b = Fe.measure_features(sigs, chunk=2, workers=2)
    assert a.equals(b)


def test_hr_error_summary():
    m = np.array([60.0, 92.0, np.nan, 130.0])
    req = np.array([61.0, 90.0, 100.0, 120.0])
    e = Fe.hr_error(m, req)
    assert e["n"] == 4 and e["n_valid"] == 3 and e["frac_valid"] == 0.75
    assert e["mae"] == pytest.approx((1 + 2 + 10) / 3)
    assert e["bias"] == pytest.approx((-1 + 2 + 10) / 3)
    assert e["frac_within_5"] == pytest.approx(2 / 3)
