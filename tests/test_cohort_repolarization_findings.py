"""The cohort's voltage and repolarization findings read back from their edits: left ventricular hypertrophy
(Sokolow-Lyon / Cornell voltage), LVH with strain, lateral ST depression and T flattening with U waves.

Each finding is synthesised on GAN templates (built once for the module), interpreted from the finished 12-lead
signal only, and checked for its statement, the measurement it rests on, silence on normal records, and
composition with other findings."""

import dataclasses

import numpy as np
import pytest

from diffusets_core.data.cohort import findings as F
from diffusets_core.data.cohort import interpreter as it
from diffusets_core.data.cohort.conditions import add_noise, derive_12, synthesize
from diffusets_core.data.cohort.plan import FINDING_PLANNERS, LVH_CAP_MARGIN, plan_edit, qrs_voltages
from tests.helpers.cohort import gan_templates

LVH = "Left ventricular hypertrophy"
STRAIN = "Left ventricular hypertrophy with repolarization abnormality"
STD = "ST depression in lateral leads"
TFU = "T wave flattening with U waves"
TWI_LAT = "T wave inversion in lateral leads"
LONG_QT = "Prolonged QT interval"
MINE = (LVH, STRAIN, STD, TFU)
N = 16  # records per finding


@pytest.fixture(scope="module")
def templates():
    return gan_templates(range(500, 532), N)[:N]


def _record(fids, tpl, seed, sex="M", age=55.0):
    """(statements, measurements, edit) of one record built with ``fids`` on ``tpl``."""
    rng = np.random.default_rng([seed, 17])
    e = plan_edit(fids, tpl, rng, age, sex)
    sig = derive_12(add_noise(synthesize(tpl, e, rng), e, rng))
    res = it.interpret(sig, sex=sex)
    return res.statements, res.measurements, e


def _sex(i):
    return "F" if i % 2 else "M"


def _share(reports, statement):
    return np.mean([statement in r for r in reports])


def test_findings_are_implemented_and_drawable():
    for fid in ("lvh", "lvh_strain", "st_depression_lateral", "t_flat_u"):
        assert F.finding(fid).implemented and fid in FINDING_PLANNERS and fid in F.drawable()
    assert [F.statement_of(f) for f in ("lvh", "lvh_strain", "st_depression_lateral", "t_flat_u")] == list(MINE)


def test_lvh_voltage_is_read_back(templates):
    reports, gains = [], []
    for i, tpl in enumerate(templates):
        st, m, e = _record(("sinus_rhythm", "lvh"), tpl, i, _sex(i))
        _, m0, _ = _record(("sinus_rhythm",), tpl, i, _sex(i))
        reports.append(st)
        gains.append(e.lvh_gain)
        # the voltage moves the right way, clearly across the Sokolow-Lyon limit
        assert m["sokolow_mv"] > m0["sokolow_mv"] + 0.5
        assert m["sokolow_mv"] >= it.SOKOLOW_LVH_MV
        assert STRAIN not in st and STD not in st and TWI_LAT not in st
    assert _share(reports, LVH) >= 0.9
    assert min(gains) > 1.0


def test_lvh_strain_is_read_back_and_subsumes_lateral_st_t(templates):
    reports = []
    for i, tpl in enumerate(templates):
        st, m, _ = _record(("sinus_rhythm", "lvh_strain"), tpl, i, _sex(i))
        _, m0, _ = _record(("sinus_rhythm",), tpl, i, _sex(i))
        reports.append(st)
        # ST depressed and T inverted in the lateral leads, against the same template without strain
        for lead in ("I", "V6"):
            assert m["st"][lead] < m0["st"][lead] - 0.05
            assert m["t_amp"][lead] < 0 < m0["t_amp"][lead] or m0["t_amp"][lead] <= 0
        # strain says it all: no separate lateral ST or T statement, no plain LVH statement
        assert STD not in st and TWI_LAT not in st and LVH not in st
    assert _share(reports, STRAIN) >= 0.9


def test_lateral_st_depression_is_read_back_with_upright_t(templates):
    reports = []
    for i, tpl in enumerate(templates):
        st, m, e = _record(("sinus_rhythm", "st_depression_lateral"), tpl, i, _sex(i))
        _, m0, _ = _record(("sinus_rhythm",), tpl, i, _sex(i))
        reports.append(st)
        assert e.std_group == "lateral" and 0.1 <= e.std_mv <= 0.2
        assert sum(m["st"][n] <= -it.ST_DEPR_MV for n in ("I", "aVL", "V5", "V6")) >= 2
        assert m["st"]["V6"] < m0["st"]["V6"] - 0.05
        assert TWI_LAT not in st and LVH not in st and STRAIN not in st  # the T wave stays upright
    assert _share(reports, STD) >= 0.9


def test_t_flattening_with_u_waves_is_read_back(templates):
    reports = []
    for i, tpl in enumerate(templates):
        st, m, e = _record(("sinus_rhythm", "t_flat_u"), tpl, i, _sex(i))
        reports.append(st)
        assert e.t_flat < 1.0 and 0.12 <= e.u_wave_mv <= 0.2
        if TFU in st:
            assert sum(m["u_amp"][n] >= it.U_WAVE_MV for n in ("V2", "V3", "V4")) >= 2
        # the U wave makes the T end unreliable: no QT statement on it
        assert LONG_QT not in st
    assert _share(reports, TFU) >= 0.9


def test_normal_records_read_none_of_them(templates):
    for i, tpl in enumerate(templates):
        for sex, age in (("M", 30.0), ("F", 75.0)):
            st, m, e = _record(("sinus_rhythm",), tpl, 100 + i, sex, age)
            assert not set(MINE) & set(st), (i, sex, st)
            assert m["sokolow_mv"] < it.SOKOLOW_LVH_MV and m["cornell_mv"] <= it.CORNELL_LVH_MV[sex]


def test_high_voltage_template_is_capped_unless_lvh(templates):
    """A template whose precordial QRS would cross the Sokolow-Lyon limit is scaled below it in a record without
    LVH (the plan's cap), and still reads as LVH when LVH is drawn."""
    tpl = templates[0]
    amp = plan_edit(("sinus_rhythm",), tpl, np.random.default_rng(0), 55.0, "M").amplitude
    sok0 = qrs_voltages(tpl.beat * amp, tpl.qrs_on, tpl.qrs_off)[0]
    beat = tpl.beat.copy()
    q = slice(tpl.qrs_on, tpl.qrs_off + 1)
    base = np.linspace(beat[2:, tpl.qrs_on], beat[2:, tpl.qrs_off], tpl.qrs_off - tpl.qrs_on + 1).T
    beat[2:, q] = base + (beat[2:, q] - base) * (4.2 / sok0)  # precordial QRS: Sokolow-Lyon 4.2 mV
    big = dataclasses.replace(tpl, beat=beat)
    assert qrs_voltages(big.beat * amp, big.qrs_on, big.qrs_off)[0] == pytest.approx(4.2, rel=0.01)
    e = plan_edit(("sinus_rhythm",), big, np.random.default_rng(0), 55.0, "M")
    assert e.lvh_gain == pytest.approx((it.SOKOLOW_LVH_MV - LVH_CAP_MARGIN) / 4.2, rel=0.02)
    st, m, _ = _record(("sinus_rhythm",), big, 0)
    assert LVH not in st and m["sokolow_mv"] < it.SOKOLOW_LVH_MV
    st, m, e = _record(("sinus_rhythm", "lvh"), big, 0)
    assert LVH in st and e.lvh_gain > 0.8


def test_cornell_limit_follows_sex():
    with pytest.raises(ValueError, match="sex must be"):
        it.interpret(np.zeros((12, 5000)), sex="X")
    assert it.CORNELL_LVH_MV["F"] < it.CORNELL_LVH_MV["M"]


@pytest.mark.parametrize(
    "fids, expected",
    [
        (("sinus_rhythm", "rbbb", "lvh"), ("Right bundle branch block", LVH)),
        (("sinus_bradycardia", "lvh", "t_inversion_anterior"), (LVH, "T wave inversion in anterior leads")),
        # inferior injury depresses aVL (reciprocal): lateral ST depression is still read from I, V5, V6
        (
            ("sinus_rhythm", "st_elevation_inferior", "st_depression_lateral"),
            ("ST elevation, consider inferior injury", STD),
        ),
        (("sinus_rhythm", "av_block_1", "t_flat_u"), ("1st degree A-V block", TFU)),
        (("sinus_rhythm", "st_elevation_anterior", "t_flat_u"), ("ST elevation, consider anterior injury", TFU)),
        (("sinus_rhythm", "lvh_strain", "peaked_t"), (STRAIN, "Peaked T waves")),
    ],
)
def test_composition_reads_both(templates, fids, expected):
    reports = [_record(fids, tpl, 200 + i, _sex(i))[0] for i, tpl in enumerate(templates[:10])]
    for statement in expected:
        assert _share(reports, statement) >= 0.9, (statement, reports)


@pytest.mark.parametrize(
    "fids, expected, absent",
    [
        # the reciprocal depression of an inferior injury current alone is not lateral ST depression
        (("sinus_rhythm", "st_elevation_inferior"), "ST elevation, consider inferior injury", STD),
        # a mirrored lateral T wave (its downslope depresses the ST) reads as T inversion, not ST depression
        (("sinus_rhythm", "t_inversion_lateral"), TWI_LAT, STD),
        # a long QT is one late T wave, not a T wave and a U wave: its QT is still called
        (("sinus_bradycardia", "long_qt"), LONG_QT, TFU),
    ],
)
def test_neighbours_do_not_cross_fire(templates, fids, expected, absent):
    reports = [_record(fids, tpl, 300 + i, _sex(i))[0] for i, tpl in enumerate(templates[:12])]
    assert _share(reports, expected) >= 0.9
    assert _share(reports, absent) == 0.0, reports
