"""The finding catalogue of the cohort: its entries, the compatibility rules, the held-out combinations and the
planner that draws a record's findings under them (measured on a seeded 4,000-record draw)."""

from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusets_core.data.cohort import findings as F
from diffusets_core.data.cohort.plan import FINDING_PLANNERS

NEW = {
    "lvh",
    "lvh_strain",
    "lafb",
    "left_axis_deviation",
    "right_axis_deviation",
    "st_depression_lateral",
    "atrial_flutter",
    "av_block_2_mobitz1",
    "pac",
    "q_waves_inferior",
    "q_waves_anterior",
    "pre_excitation",
    "sinus_arrhythmia",
    "t_flat_u",
}
#: new findings whose edit and interpreter criterion exist (implemented)
NEW_IMPLEMENTED = {"lvh", "lvh_strain", "st_depression_lateral", "t_flat_u"}


def test_catalogue_entries():
    drawn = [f for f in F.FINDINGS if f.drawn]
    assert len(drawn) >= 21
    ids = [f.id for f in F.FINDINGS]
    assert len(ids) == len(set(ids))
    statements = [s for f in F.FINDINGS for s in f.statements]
    assert len(statements) == len(set(statements))
    for f in F.FINDINGS:
        assert f.family in F.FAMILIES and f.statement and f.criterion and f.source, f
    # the nine drawn families of the cohort, in report order
    assert [fam for fam in F.FAMILIES if any(f.family == fam for f in drawn)] == [
        "rhythm",
        "av_conduction",
        "ectopy",
        "intraventricular_conduction",
        "axis",
        "voltage",
        "q_wave",
        "st",
        "t",
        "qt",
    ]
    # the catalogue is in report order: families never interleave
    fams = [f.family for f in F.FINDINGS]
    assert fams == sorted(fams, key=F.FAMILIES.index)
    # every new finding is in; a drawn finding is implemented exactly when the planner has an edit for it
    assert NEW <= set(ids)
    assert {f.id for f in drawn if f.implemented} == set(FINDING_PLANNERS)
    assert F.finding("lvh").source.startswith("Sokolow & Lyon 1949; Casale et al. 1985 (Cornell)")
    assert "part III" in F.finding("lafb").source and "Mason et al. 2007" in F.finding("pac").source


def test_statements_map_to_findings():
    """Every canonical statement and variant maps back to its finding; other text (wordings, abbreviations) does
    not: the wording bank maps those."""
    for f in F.FINDINGS:
        assert all(F.finding_of_statement(s) == f.id for s in f.statements)
    with pytest.raises(KeyError, match="not a canonical statement"):
        F.finding_of_statement("RBBB")


def test_report_order_is_the_interpreters_order():
    order = F.report_order(
        [
            "abnormal_ecg",
            "long_qt",
            "peaked_t",
            "t_inversion_lateral",
            "st_elevation_inferior",
            "low_voltage",
            "rbbb",
            "pvc",
            "av_block_1",
            "sinus_rhythm",
        ]
    )
    assert order == (
        "sinus_rhythm",
        "av_block_1",
        "pvc",
        "rbbb",
        "low_voltage",
        "st_elevation_inferior",
        "t_inversion_lateral",
        "peaked_t",
        "long_qt",
        "abnormal_ecg",
    )
    with pytest.raises(KeyError, match="unknown finding"):
        F.report_order(["sinus_rhythm", "nonsense"])


@pytest.mark.parametrize(
    "findings, reason",
    [
        (["sinus_rhythm", "atrial_fibrillation"], "one rhythm"),
        (["rbbb", "lbbb"], "one bundle branch block"),
        (["atrial_fibrillation", "av_block_1"], "no PR interval"),
        (["atrial_flutter", "pre_excitation"], "no PR interval"),
        (["atrial_fibrillation", "pac"], "organised sinus P-wave rhythm"),
        (["sinus_tachycardia", "av_block_2_mobitz1"], "Wenckebach sequence fall on the preceding T waves"),
        (["av_block_2_mobitz1", "pac"], "mimic of AV block"),
        (["lbbb", "st_elevation_inferior"], "secondary ST-T"),
        (["lbbb", "st_depression_lateral"], "secondary ST-T"),
        (["lbbb", "lvh"], "not valid with LBBB"),
        (["lbbb", "lafb"], "both fascicles"),
        (["rbbb", "t_inversion_anterior"], "secondary change"),
        (["rbbb", "st_elevation_anterior"], "Brugada"),
        (["rbbb", "long_qt"], "QRS-adjusted"),
        (["peaked_t", "lbbb"], "hyperkalaemia"),
        (["t_flat_u", "st_depression_lateral"], "hypokalaemia"),
        (["lafb", "left_axis_deviation"], "axis"),
        (["lvh", "low_voltage"], "one voltage statement"),
        (["lvh_strain", "t_inversion_lateral"], "strain"),
        (["lvh", "st_depression_lateral"], "repolarization abnormality"),
        (["lvh", "t_inversion_lateral"], "repolarization abnormality"),
        (["lvh_strain", "st_elevation_lateral"], "cannot be acutely raised"),
        (["st_depression_lateral", "t_inversion_lateral"], "downslope"),
        (["t_flat_u", "sinus_tachycardia"], "T-U-P fusion"),
        (["st_elevation_inferior", "st_elevation_lateral"], "one ST elevation territory"),
        (["t_inversion_lateral", "t_inversion_anterior"], "one T inversion territory"),
        (["st_elevation_inferior", "q_waves_inferior"], "acute infarct"),
        (["lafb", "q_waves_inferior"], "initial forces"),
        (["peaked_t", "t_inversion_anterior"], "cannot be both"),
        (["sinus_rhythm", "brugada"], "never enters training"),
        (["hyperkalaemia"], "never enters training"),
        (["hypokalaemia", "long_qt"], "never enters training"),
    ],
)
def test_compatibility_rules_refuse_with_a_reason(findings, reason):
    ok, why = F.compatible(findings)
    assert not ok and reason in why, why


@pytest.mark.parametrize(
    "findings",
    [
        ["sinus_rhythm"],
        ["sinus_tachycardia", "rbbb", "st_elevation_inferior"],
        ["sinus_rhythm", "rbbb", "lafb", "av_block_1"],  # trifascicular picture
        ["atrial_fibrillation", "pvc", "low_voltage"],
        ["sinus_rhythm", "lbbb", "left_axis_deviation", "av_block_1"],
        ["sinus_rhythm", "st_elevation_inferior", "st_depression_lateral"],  # reciprocal depression
        ["sinus_bradycardia", "lvh_strain", "left_axis_deviation"],
        ["sinus_rhythm", "q_waves_inferior", "t_inversion_anterior", "long_qt"],
        ["sinus_arrhythmia", "av_block_2_mobitz1", "pvc"],  # both vagal
        ["sinus_tachycardia", "pac", "pvc"],
        ["atrial_flutter", "pvc", "rbbb"],
    ],
)
def test_compatible_combinations(findings):
    assert F.compatible(findings) == (True, "")


def test_every_rule_names_known_findings_and_gives_a_reason():
    known = {f.id for f in F.FINDINGS}
    for name, members, reason in F.EXCLUSIVE:
        assert set(members) <= known and len(members) >= 2 and name and len(reason) > 20
    for left, right, reason in F.EXCLUDES:
        assert set(left) <= known and set(right) <= known and len(reason) > 20
        assert not set(left) & set(right)
    with pytest.raises(KeyError, match="unknown finding"):
        F.compatible(["sinus_rhythm", "nonsense"])


def test_held_out_combinations():
    combos = F.HELD_OUT_COMBINATIONS
    assert len(combos) >= 10 and len(set(map(frozenset, combos))) == len(combos)
    for c in combos:
        assert 2 <= len(c) <= 3 and F.compatible(c) == (True, ""), c
        assert F.is_held_out(c) and F.held_out_in([*c, "sinus_rhythm"]) == c
    assert sum(all(F.finding(f).implemented for f in c) for c in combos) >= 10
    assert not F.is_held_out(["atrial_fibrillation", "pvc"]) and F.held_out_in(["sinus_rhythm"]) is None
    # eval/paraphrases.yaml's unseen combinations are held out whenever they are compatible
    table = yaml.safe_load((Path(F.__file__).parents[2] / "eval" / "paraphrases.yaml").read_text(encoding="utf-8"))
    n_compatible = 0
    for combo in table["unseen_combinations"]:
        fids = [F.finding_of_statement(s) for s in combo.split("|")]
        fids = [f for f in fids if F.finding(f).family != "overall"]
        if F.compatible(fids)[0]:
            n_compatible += 1
            assert F.is_held_out(fids), combo
    assert n_compatible >= 3


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(2024)
    return [F.draw_findings(rng) for _ in range(4000)]


def _non_rate(d):
    return [f for f in d if not F.finding(f).rate]


def test_planner_draw_statistics(draws):
    """Over a seeded 4,000-record draw: one rhythm each, every record compatible and free of held-out
    combinations, >= 30 % with two or more non-rate findings, every reachable pair present."""
    for d in draws:
        assert sum(F.finding(f).family == "rhythm" for f in d) == 1
        assert F.compatible(d) == (True, "") and not F.is_held_out(d), d
        assert d == F.report_order(d) and all(F.finding(f).implemented for f in d)
    multi = np.mean([len(_non_rate(d)) >= 2 for d in draws])
    assert multi >= 0.30, multi
    pairs = Counter(frozenset(p) for d in draws for p in combinations(_non_rate(d), 2))
    reach = F.reachable_pairs()
    assert len(reach) >= 40
    assert {frozenset(("rbbb", "st_elevation_inferior")), frozenset(("atrial_fibrillation", "pvc"))} <= reach
    assert frozenset(("lbbb", "st_elevation_inferior")) not in reach  # incompatible
    assert frozenset(("atrial_fibrillation", "rbbb")) not in reach  # held out
    missing = [tuple(p) for p in reach if p not in pairs]
    assert not missing, missing
    # no pair outside the reachable set is ever drawn
    assert set(pairs) <= reach
    # every implemented drawn finding occurs often enough to learn
    counts = Counter(f for d in draws for f in d)
    assert min(counts[f] for f in F.drawable()) >= 100, counts


def test_planner_is_deterministic_and_draws_new_findings_on_request():
    a = [F.draw_findings(np.random.default_rng(7)) for _ in range(3)]
    b = [F.draw_findings(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(1)
    wide = [F.draw_findings(rng, implemented_only=False) for _ in range(4000)]
    seen = {f for d in wide for f in d}
    assert NEW <= seen
    for d in wide:
        assert F.compatible(d)[0] and not F.is_held_out(d), d
    assert np.mean([len(_non_rate(d)) >= 2 for d in wide]) >= 0.30
