"""Counterpart records (data.cohort.counterpart): the requested findings at the requested heart rate on a given
subject's morphology template."""

import numpy as np
import pytest

from diffusets_core.data.cohort import counterpart as C
from diffusets_core.data.cohort.conditions import Edit
from diffusets_core.eval.twin import beat_correlation, median_beats

TA, TB = 1234, 98765  # two GAN seeds: two subjects' templates


def _make(index, findings, hr, template=TA, seed=0, **kw):
    return C.make_counterpart_record(
        seed, index, template_seed=template, findings=findings, hr=hr, age=60, sex="M", **kw
    )


@pytest.mark.parametrize(
    "findings, hr",
    [
        (["sinus_rhythm"], 72),
        (["sinus_rhythm", "lvh"], 70),
        (["atrial_fibrillation", "rbbb"], 95),
        (["av_block_1"], 65),
    ],
)
def test_the_requested_findings_are_said_at_the_requested_rate(findings, hr):
    rec = _make(3, findings, hr)
    assert rec["complete"] and rec["findings_match"] and rec["hr_match"]
    said = {f for f in rec["findings"] if not f.endswith("_ecg")}
    assert said == set(findings) | ({"sinus_rhythm"} if findings == ["av_block_1"] else set())
    assert abs(rec["measured_hr"] - hr) <= C.HR_TOLERANCE_BPM
    assert rec["measured_hr"] == rec["measurements"]["hr"] and rec["requested_hr"] == hr
    assert rec["signal"].shape == (12, 5000) and rec["signal"].dtype == np.float32
    assert rec["template"] == TA and rec["requested"] == findings and (rec["age"], rec["sex"]) == (60.0, "M")


def test_deterministic_for_a_seed():
    a, b = _make(5, ["sinus_rhythm"], 80), _make(5, ["sinus_rhythm"], 80)
    assert np.array_equal(a["signal"], b["signal"]) and a["statements"] == b["statements"]
    assert not np.array_equal(a["signal"], _make(5, ["sinus_rhythm"], 80, seed=1)["signal"])
    fixed = _make(5, ["sinus_rhythm"], 80, wording="fixed")
    assert np.array_equal(fixed["signal"], a["signal"]) and fixed["statements"][0] == "Sinus rhythm"


def test_the_template_is_the_one_asked():
    # the same template under other findings keeps its beat; another template at the same findings does not
    sinus_a = _make(1, ["sinus_rhythm"], 75)["signal"]
    lvh_a = _make(2, ["sinus_rhythm", "lvh"], 75)["signal"]
    sinus_b = _make(1, ["sinus_rhythm"], 75, template=TB)["signal"]
    beats = median_beats(np.stack([sinus_a, sinus_a, lvh_a, sinus_b]), fs=500.0)
    corr = beat_correlation(beats.beats[[0, 0]], beats.beats[[2, 3]], fs=beats.fs)
    assert corr[0] > corr[1] + 0.1, corr


def test_rates_derived_from_other_edit_fields():
    flutter = _make(4, ["atrial_flutter"], 75)
    assert flutter["complete"] and "flutter" in flutter["rate_note"] and flutter["target_hr"] == 75.0
    # Wenckebach: the edit's rate is the P-wave rate, n P waves conduct n - 1
    wenck = _make(4, ["sinus_rhythm", "av_block_2_mobitz1"], 45)
    assert wenck["complete"] and "Wenckebach" in wenck["rate_note"]
    assert any(wenck["target_hr"] == pytest.approx(45 * n / (n - 1), abs=0.06) for n in C.WENCKEBACH_GROUPS)
    # a planner's rate cap (1st degree AV block <= 82 /min) gives way to the requested rate, and says so
    fast = _make(4, ["av_block_1"], 92)
    assert fast["target_hr"] == 92.0 and "cap of 82" in fast["rate_note"] and fast["hr_match"]
    # ... unless the request lies just above it: planned at the cap, still within the tolerance
    near = _make(4, ["av_block_1"], 82.0 + C.CAP_SLACK_BPM)
    assert near["target_hr"] == 82.0 and near["rate_note"].startswith("planned at") and near["complete"]


def test_flutter_conduction_ratio_for_a_rate():
    e = Edit(hr=140.0, rhythm="flutter", flutter_rate=280.0, flutter_conduction=2)
    assert "4:1" in C._flutter_rate(e, 75.0) and (e.flutter_conduction, e.flutter_rate, e.hr) == (4, 300.0, 75.0)
    e = Edit(hr=70.0, rhythm="flutter", flutter_rate=280.0, flutter_conduction=4)
    C._flutter_rate(e, 70.0)  # the planned ratio is kept when it fits
    assert (e.flutter_conduction, e.flutter_rate) == (4, 280.0)
    note = C._flutter_rate(e, 200.0)  # no ratio reaches 200 bpm within 250-320 F waves /min: the nearest, clipped
    assert (e.flutter_conduction, e.flutter_rate, e.hr) == (2, 320.0, 160.0) and "no ratio" in note


def test_an_impossible_request_is_incomplete_after_the_redraws(monkeypatch):
    monkeypatch.setattr(C, "MAX_REDRAWS", 3)
    rec = _make(6, ["sinus_bradycardia"], 90)  # bradycardia at 90 bpm: the report says sinus rhythm
    assert not rec["complete"] and not rec["findings_match"] and rec["draws"] == 3
    assert "sinus_rhythm" in rec["findings"] and rec["hr_match"]


def test_overall_statements_may_be_given():
    rec = _make(7, ["sinus_rhythm", "normal_ecg"], 70)
    assert rec["requested"] == ["sinus_rhythm"] and rec["complete"] and "normal_ecg" in rec["findings"]


@pytest.mark.parametrize(
    "findings, named",
    [
        (["sinus_rhythm", "no_such_finding"], "no_such_finding"),
        (["brugada"], "brugada"),
        (["unreadable_ecg"], "unreadable_ecg"),
        (["sinus_rhythm", "atrial_fibrillation"], "atrial_fibrillation"),
        (["rbbb", "lbbb"], "lbbb"),
        ("sinus_rhythm", "sinus_rhythm"),
    ],
)
def test_bad_findings_raise_naming_them(findings, named):
    with pytest.raises(ValueError, match=named):
        _make(0, findings, 70)


def test_bad_rate_sex_or_wording_raise():
    with pytest.raises(ValueError, match="hr"):
        _make(0, ["sinus_rhythm"], -3)
    with pytest.raises(ValueError, match="hr"):
        _make(0, ["sinus_rhythm"], float("nan"))
    with pytest.raises(ValueError, match="sex"):
        C.make_counterpart_record(0, 0, template_seed=TA, findings=["sinus_rhythm"], hr=70, age=60, sex="X")
    with pytest.raises(ValueError, match="wording"):
        _make(0, ["sinus_rhythm"], 70, wording="poetic")
