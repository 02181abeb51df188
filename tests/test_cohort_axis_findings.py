"""Frontal QRS axis, left anterior fascicular block and pathological Q waves in the embedded cohort: each edit is
read back by the interpreter from the finished 12-lead signal, the criteria stay quiet on normal records, and the
edits compose with other findings of the same record."""

import numpy as np
import pytest

from diffusets_core.data.cohort import findings as F
from diffusets_core.data.cohort.conditions import add_noise, derive_12, synthesize
from diffusets_core.data.cohort.interpreter import AXIS_LAFB_DEG, AXIS_LEFT_DEG, AXIS_RIGHT_DEG, interpret
from diffusets_core.data.cohort.plan import NORMAL_AXIS_DEG, plan_edit
from tests.helpers.cohort import gan_templates

MINE = ("lafb", "left_axis_deviation", "right_axis_deviation", "q_waves_inferior", "q_waves_anterior")


@pytest.fixture(scope="module")
def templates():
    return gan_templates(range(300, 316), 12)


def _records(templates, fids, n, seed=0):
    """(edit, interpretation) of n records with these findings, one template each (cycling)."""
    out = []
    for k in range(n):
        tpl = templates[k % len(templates)]
        rng = np.random.default_rng([seed, k])
        e = plan_edit(fids, tpl, rng, 40.0 + 3 * k, "M" if k % 2 else "F")
        sig = derive_12(add_noise(synthesize(tpl, e, rng), e, rng))
        out.append((e, interpret(sig)))
    return out


def _said(interp) -> set[str]:
    return {F.finding_of_statement(s) for s in interp.statements}


def test_findings_are_implemented_with_planners():
    from diffusets_core.data.cohort.plan import FINDING_PLANNERS

    for fid in MINE:
        assert F.finding(fid).implemented and fid in FINDING_PLANNERS
        assert fid in F.drawable()
    # LAFB with inferior Q waves is refused (the infarct's Q replaces LAFB's initial r)
    ok, why = F.compatible(["sinus_rhythm", "lafb", "q_waves_inferior"])
    assert not ok and "initial forces" in why
    # the bifascicular held-out combination stays held out, but the synthesiser can still make and read it
    assert F.is_held_out(["sinus_rhythm", "rbbb", "lafb"])


def test_axis_edits_move_the_measured_axis_into_their_class(templates):
    """Left / right axis deviation and LAFB are read back (>= 90 %) and the measured axis lies in the class."""
    for fid, lo, hi in (
        ("left_axis_deviation", -90.0, AXIS_LEFT_DEG),
        ("right_axis_deviation", AXIS_RIGHT_DEG, 180.0),
        ("lafb", -90.0, AXIS_LAFB_DEG),
    ):
        recs = _records(templates, ("sinus_rhythm", fid), 12)
        hits = [fid in _said(it) for _, it in recs]
        assert np.mean(hits) >= 0.9, (fid, [it.statements for _, it in recs])
        axes = [it.measurements["qrs_axis"] for _, it in recs]
        assert np.mean([lo <= a <= hi for a in axes]) >= 0.9, (fid, axes)
        # the measured axis follows the planned one
        err = [abs((a - e.axis_target_deg + 180) % 360 - 180) for a, (e, _) in zip(axes, recs)]
        assert np.median(err) < 5.0, (fid, err)


def test_lafb_and_left_axis_deviation_are_told_apart(templates):
    """LAFB records carry LAFB's initial forces (q in aVL, r in II, III, aVF) and are not also called left axis
    deviation; plain left axis deviation records lack them and are never called LAFB."""
    lafb = _records(templates, ("sinus_rhythm", "lafb"), 12, seed=1)
    lad = _records(templates, ("sinus_rhythm", "left_axis_deviation"), 12, seed=1)
    for _, it in lafb:
        assert "left_axis_deviation" not in _said(it), it.statements
    inits = [it.measurements["initial"] for _, it in lafb if "lafb" in _said(it)]
    assert inits and all(i["aVL"][1] < 0 and min(i[n][1] for n in ("II", "III", "aVF")) > 0 for i in inits)
    for _, it in lad:
        assert "lafb" not in _said(it), it.statements
    assert np.mean([it.measurements["initial"]["aVL"][1] > 0 for _, it in lad]) >= 0.9


def test_q_wave_edits_are_read_back(templates):
    """Inferior and anterior Q waves are read back (>= 90 %); the inferior ones are >= 30 ms and >= 0.1 mV deep in
    II, III or aVF, the anterior ones QS complexes or Q waves in V2 and V3."""
    inf = _records(templates, ("sinus_rhythm", "q_waves_inferior"), 12, seed=2)
    assert np.mean(["q_waves_inferior" in _said(it) for _, it in inf]) >= 0.9, [it.statements for _, it in inf]
    for _, it in inf:
        q = [it.measurements["initial"][n] for n in ("II", "III", "aVF")]
        assert sum(ms >= 30 and mv <= -0.1 for ms, mv in q) >= 2 or "q_waves_inferior" not in _said(it)
        # the axis stays normal: an inferior infarct alone is not called axis deviation
        assert not _said(it) & {"left_axis_deviation", "right_axis_deviation", "lafb"}, it.statements
    ant = _records(templates, ("sinus_rhythm", "q_waves_anterior"), 12, seed=2)
    assert np.mean(["q_waves_anterior" in _said(it) for _, it in ant]) >= 0.9, [it.statements for _, it in ant]
    for _, it in ant:
        v2 = it.measurements["initial"]["V2"]
        assert v2[1] < 0 and v2[0] >= 20, v2


def test_criteria_stay_quiet_on_normal_records(templates):
    """Sinus-rhythm records without an axis or Q-wave finding: none of these statements, and the axis within the
    planned normal range (give or take the measurement)."""
    recs = _records(templates, ("sinus_rhythm",), 16, seed=3)
    for _, it in recs:
        assert not _said(it) & set(MINE), it.statements
        assert NORMAL_AXIS_DEG[0] - 10 <= it.measurements["qrs_axis"] <= NORMAL_AXIS_DEG[1] + 10


@pytest.mark.parametrize(
    "fids",
    [
        ("sinus_rhythm", "left_axis_deviation", "q_waves_inferior"),  # an old inferior infarct with a left axis
        ("sinus_rhythm", "rbbb", "right_axis_deviation"),
        ("atrial_fibrillation", "lafb", "t_inversion_lateral"),
        ("sinus_rhythm", "q_waves_anterior", "t_inversion_anterior"),
        ("sinus_rhythm", "rbbb", "lafb"),  # bifascicular block: held out of the cohort, still readable
    ],
)
def test_composition_reads_every_finding(templates, fids):
    recs = _records(templates, fids, 8, seed=4)
    want = set(fids) - {"sinus_rhythm"}
    hits = [want <= _said(it) for _, it in recs]
    assert np.mean(hits) >= 0.75, [it.statements for _, it in recs]
