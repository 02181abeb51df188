"""Preprocessing rules: window, resampling, gaps, heart rate paths, demographics; splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_trees import synthetic_ecg, write_wfdb
from scipy.signal import resample

from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.data.preprocess import (
    PreprocessConfig,
    SkipRecord,
    heart_rate_from_rpeaks,
    heart_rate_from_rr,
    interpolate_gaps,
    process_ref,
)
from diffusets_core.data.records import RecordRef
from diffusets_core.data.splits import assign_splits, split_records

PTB_DIAG = Path(__file__).parent / "fixtures" / "ptb-diagnostic"
CFG = PreprocessConfig()


def _ref(path, **kw) -> RecordRef:
    base = dict(
        record_id="r",
        subject_id="s",
        path=str(path),
        report="Sinus rhythm",
        age=60.0,
        sex="M",
        rr_interval_ms=1000.0,
        source="test",
    )
    base.update(kw)
    return RecordRef(**base)


@pytest.fixture
def rec70(tmp_path):
    write_wfdb(tmp_path, "r70", synthetic_ecg(70, 500, 10.0, 5), 500, CANONICAL_LEADS, gain=200.0)
    return tmp_path / "r70"


def test_rr_rule_boundaries():
    assert heart_rate_from_rr(1000) == 60.0
    # the accepted RR range is the HR range 20-300 bpm: 200-3000 ms (rates above 200 bpm are real)
    assert heart_rate_from_rr(200) == 300.0 and heart_rate_from_rr(3000) == 20.0
    assert heart_rate_from_rr(261) == pytest.approx(229.885, abs=1e-3)
    # the reference's unit bug: 0.857 (seconds) must NOT pass as plausible ms
    for bad in (0.857, 199, 3001, 0, None, float("nan")):
        assert heart_rate_from_rr(bad) is None


def test_hr_from_rr_vs_rpeaks(rec70):
    ok = process_ref(_ref(rec70, rr_interval_ms=857.0), CFG)
    assert ok.status == "ok" and ok.hr_source == "rr_interval" and ok.hr == pytest.approx(60000 / 857)
    # implausible RR (as the reference's seconds/ms mix-up) -> R peaks on the signal, simulated at 70 bpm
    rp = process_ref(_ref(rec70, rr_interval_ms=0.857), CFG)
    assert rp.status == "ok" and rp.hr_source == "rpeaks" and rp.notes["hr_lead"] == "II"
    assert rp.hr == pytest.approx(70, abs=3)
    np.testing.assert_array_equal(ok.signal, rp.signal)


@pytest.mark.parametrize("hr", [50, 110])
def test_rpeaks_hr_at_known_rate(hr):
    sig = synthetic_ecg(hr, 500, 10.0, 1)
    est, lead = heart_rate_from_rpeaks(sig, 500)
    assert lead == "II" and est == pytest.approx(hr, rel=0.05)


def test_rpeaks_fall_back_over_leads():
    sig = synthetic_ecg(80, 500, 10.0, 1)
    sig[:, 1] = 0.0  # lead II flat
    est, lead = heart_rate_from_rpeaks(sig, 500)
    assert lead == "I" and est == pytest.approx(80, rel=0.05)


def test_no_heart_rate_is_skipped(tmp_path):
    noise = 0.2 * np.random.default_rng(0).standard_normal((5000, 12))  # no QRS complexes at all
    write_wfdb(tmp_path, "noise", noise, 500, CANONICAL_LEADS, gain=200.0)
    res = process_ref(_ref(tmp_path / "noise", rr_interval_ms=None), CFG)
    assert res.status == "skipped" and res.reason.startswith("heart_rate:"), res.reason
    # an all-zero record is refused earlier, for what it is
    write_wfdb(tmp_path, "zeros", np.zeros((5000, 12)), 500, CANONICAL_LEADS, gain=200.0)
    res = process_ref(_ref(tmp_path / "zeros", rr_interval_ms=None), CFG)
    assert res.reason.startswith("flat_lead: lead I is constant (0.000 mV) for the whole 10 s window")


def test_output_shape_dtype_and_fft_resampling(rec70):
    res = process_ref(_ref(rec70), CFG)
    assert res.signal.shape == (12, 1024) and res.signal.dtype == np.float32
    from diffusets_core.data.wfdb_io import read_record

    x = read_record(rec70).signal
    np.testing.assert_allclose(res.signal, resample(x, 1024, axis=0).T, atol=1e-5)
    assert CFG.out_fs == 102.4


def test_long_record_uses_first_window_and_short_is_refused(tmp_path):
    res = process_ref(_ref(PTB_DIAG / "s0010_re", rr_interval_ms=None, age=81, sex="F"), CFG)
    assert res.status == "ok" and res.hr_source == "rpeaks" and 40 < res.hr < 120
    from diffusets_core.data.wfdb_io import read_record

    first10 = read_record(PTB_DIAG / "s0010_re").signal[:10000]
    np.testing.assert_allclose(res.signal, resample(first10, 1024, axis=0).T, atol=1e-5)
    write_wfdb(tmp_path, "short", synthetic_ecg(70, 500, 5.0, 1), 500, CANONICAL_LEADS, gain=200.0)
    short = process_ref(_ref(tmp_path / "short"), CFG)
    assert short.status == "skipped" and "5.00 s long, shorter than the 10 s window" in short.reason


def test_expected_fs_refuses_other_rates():
    res = process_ref(_ref(PTB_DIAG / "s0010_re"), PreprocessConfig(expected_fs=500))
    assert res.status == "skipped" and res.reason.startswith("sampling_rate:") and "1000 Hz" in res.reason


def test_short_gap_interpolated_long_gap_refused():
    x = np.tile(np.linspace(0, 1, 5000)[:, None], (1, 12))
    g = x.copy()
    g[1000:1050, 3] = np.nan  # 0.1 s
    np.testing.assert_allclose(interpolate_gaps(g, 500, 0.2, 0.05), x, atol=1e-12)
    g[2000:2200, 4] = np.nan  # 0.4 s
    with pytest.raises(SkipRecord, match="lead aVL has a gap of 0.400 s"):
        interpolate_gaps(g, 500, 0.2, 0.05)
    m = x.copy()
    m[::10, 0] = np.nan  # 10 % missing in tiny gaps
    with pytest.raises(SkipRecord, match="lead I is 10% missing"):
        interpolate_gaps(m, 500, 0.2, 0.05)


def test_baseline_removal_removes_wander(rec70, tmp_path):
    sig = synthetic_ecg(70, 500, 10.0, 5)
    t = np.arange(5000) / 500
    write_wfdb(
        tmp_path, "wander", sig + 0.8 * np.sin(2 * np.pi * 0.1 * t)[:, None] + 0.5, 500, CANONICAL_LEADS, gain=200.0
    )
    raw = process_ref(_ref(tmp_path / "wander"), CFG).signal
    flt = process_ref(_ref(tmp_path / "wander"), PreprocessConfig(baseline_removal=True)).signal
    assert abs(np.median(raw[1])) > 0.3 and abs(np.median(flt[1])) < 0.1


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"age": None}, "age unknown"),
        ({"sex": None}, "sex unknown"),
        ({"age": 150.0}, "age 150.0 outside 0-120"),
        ({"sex": "X"}, "sex 'X' is not M/F"),
        ({"report": ""}, "no_report:"),
        ({"skip_reason": "malformed row"}, "metadata: malformed row"),
        (
            {"age": None, "extra": {"demographics_missing": "subject not in patients.csv"}},
            "subject not in patients.csv",
        ),
    ],
)
def test_metadata_refusals(rec70, kw, reason):
    res = process_ref(_ref(rec70, **kw), CFG)
    assert res.status == "skipped" and reason in res.reason and res.signal is None


def test_bad_records_become_skips_not_exceptions(rec70):
    dat = rec70.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:1000])
    res = process_ref(_ref(rec70), CFG)
    assert res.status == "skipped" and res.reason.startswith("truncated:") and "r70.dat" in res.reason


# ---------------------------------------------------------------- splits


def test_split_is_subject_level_deterministic_and_order_free():
    subjects = [f"p{i}" for i in range(1000)]
    a = assign_splits(subjects, seed=3)
    b = assign_splits(list(reversed(subjects)) + subjects[:10], seed=3)
    assert a == b
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 800, "val": 100, "test": 100}
    assert assign_splits(subjects, seed=4) != a


def test_split_records_never_leaks_a_subject():
    rec_subject = {f"r{i}": f"s{i % 37}" for i in range(500)}
    split = split_records(rec_subject, seed=0)
    by_subject: dict[str, set] = {}
    for rid, sid in rec_subject.items():
        by_subject.setdefault(sid, set()).add(split[rid])
    assert all(len(v) == 1 for v in by_subject.values())
    assert set(split.values()) == {"train", "val", "test"}


def test_split_small_and_invalid():
    assert sorted(assign_splits(["a", "b", "c"]).values()) == ["test", "train", "val"]
    with pytest.raises(ValueError):
        assign_splits(["a"], fractions=(0.5, 0.5, 0.5))
