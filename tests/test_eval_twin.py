"""Personal-consistency measures (eval.twin) on synthetic 12-lead ECGs: Gaussian P, Q, R, S and T waves per lead at a
fixed RR (T delayed with RR^(1/3)), made at 500 Hz and resampled to the models' 102.4 Hz (10 s = 1024 samples)."""

import numpy as np
import pandas as pd
import pytest
from scipy.signal import resample

from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.eval import features as Fe
from diffusets_core.eval import twin as T

#: wave: (time after the R peak (s) at 60 bpm, width sd (s))
WAVES = {"P": (-0.16, 0.022), "Q": (-0.028, 0.008), "R": (0.0, 0.011), "S": (0.03, 0.011), "T": (0.27, 0.045)}
I, AVF = CANONICAL_LEADS.index("I"), CANONICAL_LEADS.index("aVF")


def _morphology(seed: int) -> dict[str, np.ndarray]:
    """Per-lead amplitudes (mV) of each wave: one 'subject'."""
    r = np.random.default_rng(seed)
    return {
        "P": r.uniform(0.05, 0.2, 12),
        "Q": -r.uniform(0.0, 0.3, 12),
        "R": r.uniform(-1.5, 1.5, 12),
        "S": -r.uniform(0.0, 0.8, 12),
        "T": r.uniform(-0.4, 0.5, 12),
    }


def _ecg(m: dict[str, np.ndarray], hr: float, fs: float = 500.0, seconds: float = 10.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    rr = 60.0 / hr
    x = np.zeros((12, len(t)))
    for r0 in np.arange(0.3, seconds + rr, rr):
        for wave, (offset, sd) in WAVES.items():
            at = r0 + (offset * rr ** (1 / 3) if wave == "T" else offset)
            x += m[wave][:, None] * np.exp(-0.5 * ((t - at) / sd) ** 2)[None]
    return resample(x, 1024, axis=-1).astype(np.float32)


A, B = _morphology(1), _morphology(2)


@pytest.fixture(scope="module")
def sigs():
    noise = np.random.default_rng(0).normal(0, 0.3, (12, 1024)).astype(np.float32)
    return np.stack([_ecg(A, 60), _ecg(A, 90), _ecg(B, 60), np.zeros((12, 1024), np.float32), noise])


@pytest.fixture(scope="module")
def beats(sigs):
    return T.median_beats(sigs)


def test_median_beats_shape_window_and_reasons(beats):
    assert beats.beats.shape == (5, 12, 350) and beats.fs == 500.0 and beats.r_index == 125  # 0.25 + 0.45 s
    assert beats.reason[:3] == ["", "", ""] and beats.readable.tolist() == [True, True, True, False, False]
    assert beats.reason[3] == "flat signal" and "inconsistent" in beats.reason[4]
    assert np.isnan(beats.beats[3:]).all() and np.isfinite(beats.beats[:3]).all()
    assert np.allclose(beats.hr[:3], [60, 90, 60], atol=1.0) and np.isnan(beats.hr[3:]).all()
    assert (beats.qrs_on[:3] < beats.r_index).all() and (beats.qrs_off[:3] > beats.r_index).all()
    # the R peak sits at r_index: the largest |deflection| of the lead with the tallest R
    lead = int(np.argmax(np.abs(A["R"])))
    assert abs(int(np.argmax(np.abs(beats.beats[0, lead]))) - beats.r_index) <= 3


def test_intervals_are_those_of_the_benchmarks_measure_record(sigs, beats):
    for i in range(3):
        row = Fe.measure_record(sigs[i], xqrs=False)
        assert beats.qt_ms[i] == pytest.approx(row["qt_ms"]) and beats.qrs_ms[i] == pytest.approx(row["qrs_ms"])
        assert Fe.find_r_peaks(sigs[i]).lead == row["detect_lead"]
    assert beats.qt_ms[0] > beats.qt_ms[1]  # QT shortens with rate


def test_same_morphology_at_two_rates_correlates_higher_than_two_morphologies(beats):
    same, other = beats.beats[[0, 0]], beats.beats[[1, 2]]
    corr = T.beat_correlation(same, other, fs=beats.fs)
    assert corr[0] > 0.9 and corr[1] < 0.5 and corr[0] > corr[1] + 0.4
    assert T.beat_correlation(beats, beats)[:3] == pytest.approx(1.0)
    assert np.isnan(T.beat_correlation(beats, beats)[3:]).all()


def test_per_lead_correlations_average_to_the_mean(beats):
    a = T.MedianBeats(**{**beats.__dict__, "beats": beats.beats[[0, 0, 3]]})
    b = T.MedianBeats(**{**beats.__dict__, "beats": beats.beats[[1, 2, 0]]})
    by_lead = T.beat_correlation_by_lead(a, b)
    assert list(by_lead.columns) == list(CANONICAL_LEADS) and by_lead.shape == (3, 12)
    assert np.allclose(by_lead.mean(axis=1).to_numpy()[:2], T.beat_correlation(a, b)[:2])
    assert by_lead.iloc[2].isna().all()


def test_a_time_shift_is_found_within_max_lag(beats):
    x = beats.beats[:1]
    shifted = np.roll(x, 8, axis=-1)  # 16 ms at 500 Hz
    assert T.beat_correlation(x, shifted, max_lag_s=0.0)[0] < 0.95
    assert T.beat_correlation(x, shifted, fs=beats.fs)[0] > 0.99
    with pytest.raises(ValueError, match="same shape"):
        T.beat_correlation(x, beats.beats[:1, :, :100])


def test_qrs_axis_follows_leads_i_and_avf():
    m = {k: v.copy() for k, v in A.items()}
    m["Q"][:] = m["S"][:] = 0.0
    left = {**m, "R": m["R"].copy()}
    left["R"][I], left["R"][AVF] = 1.0, -0.8  # positive I, negative aVF: a leftward, superior axis
    down = {**m, "R": m["R"].copy()}
    down["R"][I], down["R"][AVF] = 0.6, 1.0  # both positive: between 0 and +90 degrees
    axes = T.qrs_axis_deg(T.median_beats(np.stack([_ecg(left, 70), _ecg(down, 70)])))
    assert -60 < axes[0] < -20  # atan2(-0.8, 1) = -39 degrees
    assert 45 < axes[1] < 75  # atan2(1, 0.6) = 59 degrees


def test_axis_difference_wraps():
    d = T.axis_difference_deg(np.array([170.0, 0.0, -90.0, np.nan]), np.array([-170.0, 180.0, 80.0, 0.0]))
    assert d[:3] == pytest.approx([20.0, 180.0, 170.0]) and np.isnan(d[3])


def test_personal_consistency_rows(sigs):
    gen = sigs[[0, 2, 3, 0]]
    own = sigs[[0, 2, 0, 4]]
    other = sigs[[2, 0, 2, 2]]
    tab = T.personal_consistency(gen, own, other)
    assert list(tab.columns) == T.TABLE_COLUMNS and len(tab) == 4
    assert tab["closer"].iloc[:2].tolist() == [True, True]  # generated == own
    assert tab["corr_own"].iloc[:2].tolist() == pytest.approx([1.0, 1.0])
    assert tab["axis_err_own"].iloc[0] == 0.0 and tab["qt_err_own"].iloc[0] == 0.0
    assert tab["axis_err_other"].iloc[0] > 30
    assert tab["closer"].isna().tolist() == [False, False, True, True] and tab["readable"].tolist() == [1, 1, 0, 0]
    assert tab["reason"].iloc[2] == "generated: flat signal" and tab["reason"].iloc[3].startswith("own: beats")
    assert tab["reason"].iloc[:2].tolist() == ["", ""]
    # the beats can be made once and passed in
    pre = T.personal_consistency(T.median_beats(gen), own, T.median_beats(other))
    pd.testing.assert_frame_equal(pre, tab)
    with pytest.raises(ValueError, match="as many records"):
        T.personal_consistency(gen, own[:2], other)


def test_summary_leaves_unreadable_rows_out(sigs):
    tab = T.personal_consistency(sigs[[0, 1, 2, 3]], sigs[[1, 0, 2, 0]], sigs[[2, 2, 0, 1]])
    s = T.consistency_summary(tab, n_boot=200)
    assert (s["n_total"], s["n_readable"]) == (4, 3)
    assert s["share_closer"] == 1.0 and s["share_closer_ci"] == (1.0, 1.0)
    assert s["median_corr_own"] > 0.9 > 0.5 > s["median_corr_other"]
    assert s["n_axis"] == 3 and s["share_closer_axis"] == 1.0
    mixed = tab.copy()
    mixed.loc[[0, 1, 2], "corr_own"] = [0.2, 0.9, 0.1]
    mixed["closer"] = pd.array([False, True, False, pd.NA], dtype="boolean")
    m = T.consistency_summary(mixed, n_boot=500, seed=3)
    assert m["share_closer"] == pytest.approx(1 / 3) and m["share_closer_ci"][0] < 1 / 3 < m["share_closer_ci"][1]
    assert m == T.consistency_summary(mixed, n_boot=500, seed=3)
    none = T.consistency_summary(tab.iloc[3:])
    assert none["n_readable"] == 0 and np.isnan(none["share_closer"]) and np.isnan(none["share_closer_axis"])
    with pytest.raises(ValueError, match="closer"):
        T.consistency_summary(tab.drop(columns="closer"))


def test_bad_input_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(N, 12, L\)"):
        T.median_beats(np.zeros((2, 8, 1024)))
    with pytest.raises(ValueError, match="pre_s"):
        T.median_beats(np.zeros((1, 12, 1024)), pre_s=0)


@pytest.mark.stored_numbers
def test_stored_numbers(beats):
    # morphology A at 60 bpm against morphology B at 60 bpm, and A's QRS axis: fixed synthetic inputs, so a change
    # of the R peaks, the median beat, the alignment or the axis rule shows here
    corr = T.beat_correlation(beats.beats[[0]], beats.beats[[2]], fs=beats.fs)[0]
    axis = T.qrs_axis_deg(beats)[0]
    assert corr == pytest.approx(0.2104994, abs=1e-5)
    assert axis == pytest.approx(26.45384, abs=1e-3)
