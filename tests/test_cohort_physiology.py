"""Physiology of every cohort class, with the class's real edit parameters, and the interpreter's calibration.

Each class is drawn through ``plan.make_edit`` (the parameter ranges the cohort uses) on a few GAN
templates, synthesised with the cohort's noise model, and measured by the interpreter.
"""

import numpy as np
import pytest

from diffusets_core.data.cohort.calibration import edit_recovery
from diffusets_core.data.cohort.conditions import CLASSES, add_noise, derive_12, synthesize
from diffusets_core.data.cohort.interpreter import ST_GROUPS, interpret, matches, measure
from diffusets_core.data.cohort.morphology import gan_records, make_template
from diffusets_core.data.cohort.plan import make_edit

LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")


@pytest.fixture(scope="module")
def templates():
    out = []
    for raw in gan_records([101, 202, 303, 404]):
        try:
            out.append(make_template(raw))
        except ValueError:
            pass
    assert len(out) >= 3
    return out[:3]


def _build(tpl, cls, seed):
    rng = np.random.default_rng(seed)
    classes, e = make_edit(cls, tpl, rng, 55.0, "M")
    sig = derive_12(add_noise(synthesize(tpl, e, rng), e, rng))
    return classes, e, sig


@pytest.fixture(scope="module")
def built(templates):
    """{class: [(classes, edit, measurements, statements), ...]} over the templates."""
    out = {}
    for cls in CLASSES:
        rows = []
        for k, tpl in enumerate(templates):
            classes, e, sig = _build(tpl, cls, 1000 * k + CLASSES.index(cls))
            it = interpret(sig)
            rows.append((classes, e, it.measurements, it.statements))
        out[cls] = rows
    return out


def _st_hit(m, group):
    from diffusets_core.data.cohort.interpreter import ST_ELEV_MV

    return sum(m["st"][n] >= ST_ELEV_MV[group] for n in ST_GROUPS[group]) >= 2


CHECKS = {
    "normal": lambda m, e: 60 <= m["hr"] <= 100 and m["qrs_ms"] < 120 and m["p_present"] and m["qtcf_ms"] < 480,
    "sinus_bradycardia": lambda m, e: m["hr"] < 60 and m["p_present"],
    # at ~150 bpm the P wave merges into the preceding T and may go undetected: the rhythm is then called
    # sinus from its regularity, so only rate and regularity are checked here
    "sinus_tachycardia": lambda m, e: m["hr"] > 100 and m["rr_cv"] < 0.12,
    "atrial_fibrillation": lambda m, e: m["rr_cv"] > 0.12 and abs(m["p_amp"]) < 0.07,
    "av_block_1": lambda m, e: m["pr_ms"] > 210,
    "rbbb": lambda m, e: m["qrs_ms"] >= 120 and m["v1_terminal"] > 0.25,
    "lbbb": lambda m, e: m["qrs_ms"] >= 120 and m["v1_terminal"] <= 0.25,
    "st_elevation": lambda m, e: _st_hit(m, e.ste_group),
    "t_inversion": lambda m, e: (
        sum(
            m["t_amp"][n] <= -0.1
            for n in (("I", "aVL", "V5", "V6") if e.twi_group == "lateral" else ("V2", "V3", "V4"))
        )
        >= 2
    ),
    "peaked_t": lambda m, e: sum(m["t_amp"][n] >= 1.0 for n in ("V2", "V3", "V4")) >= 2,
    "long_qt": lambda m, e: m["qtcf_ms"] > 480,
    "pvc": lambda m, e: m["n_pvc"] >= 1,
    "low_voltage": lambda m, e: max(m["qrs_p2p"][n] for n in LIMB) < 0.5,
}


@pytest.mark.parametrize("cls", CLASSES)
def test_measured_physiology_of_each_class(built, cls):
    ok = [CHECKS[cls](m, e) for _, e, m, _ in built[cls]]
    assert all(ok), (cls, [(round(m["hr"]), round(m["qrs_ms"]), round(m["qtcf_ms"])) for _, _, m, _ in built[cls]])


def test_st_elevation_is_in_the_edited_group_with_reciprocal_depression(templates):
    for group, recip in (("inferior", "aVL"), ("lateral", "III"), ("anterior", "III")):
        tpl = templates[0]
        rng = np.random.default_rng(5)
        _, e = make_edit("normal", tpl, rng, 55.0, "M")
        base = measure(derive_12(add_noise(synthesize(tpl, e, np.random.default_rng(6)), e, np.random.default_rng(7))))
        e.ste_group, e.ste_mv = group, 0.3
        m = measure(derive_12(add_noise(synthesize(tpl, e, np.random.default_rng(6)), e, np.random.default_rng(7))))
        rise = {n: m["st"][n] - base["st"][n] for n in m["st"]}
        assert min(rise[n] for n in ST_GROUPS[group] if n != "V1") > 0.1, (group, rise)
        assert rise[recip] < -0.05, (group, recip, rise[recip])


def test_reports_agree_with_intended_classes(built):
    hits = [matches(st, c) for cls in CLASSES for classes, _, _, st in built[cls] for c in classes]
    assert np.mean(hits) >= 0.85


def test_calibration_edit_recovery_errors_are_small():
    """Measured minus edit-implied values on 4 templates: the documented measurement error."""
    df = edit_recovery(n=4, seed=0)
    err = df.groupby("quantity")["error"]
    worst = err.apply(lambda x: float(np.abs(x).max()))
    assert worst[[q for q in worst.index if q.startswith("HR")]].max() < 4.0  # bpm
    assert worst["ΔPR (+120 ms gap)"] < 30.0  # ms
    assert worst["QRS ×1.6 (RBBB)"] < 20.0  # ms
    assert worst["QT with ST-T ×1.4"] < 30.0  # ms
    assert worst["ΔST II (+0.30 mV plateau)"] < 0.05  # mV
