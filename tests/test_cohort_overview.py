"""The data chapter's views of the cohort's world, on a small build: counts from the structured labels, the
held-out checks (which must be able to fail), pair coverage, wordings and the per-finding agreement."""

import pandas as pd
import pytest

from diffusets_core.apps.summaries import summarize_cohort_world
from diffusets_core.data.cohort import build_cohort
from diffusets_core.data.cohort import overview as O
from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
from diffusets_core.data.store import SignalStore


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_cohort(root / "cohort", n=48, seed=11, workers=2, progress=False)
    prepare_dataset(
        "cohort", root / "cohort", root / "run", PrepareConfig(fractions=(0.6, 0.2, 0.2)), workers=1, progress=False
    )
    return root / "cohort", SignalStore(root / "run").records()


def test_counts_come_from_the_structured_labels(world):
    cohort, ok = world
    counts = O.finding_split_table(ok)
    labels = pd.read_csv(cohort / "cohort_labels.csv", dtype=str)
    said = labels["findings"].str.split("|").explode().value_counts()
    assert counts["all"].to_dict() == {f: int(said[f]) for f in counts.index}
    assert (counts[["train", "val", "test"]].sum(axis=1) == counts["all"]).all()
    per = O.findings_per_record(ok, cohort)
    assert per["records (said)"].sum() == len(ok) == per["records (intended)"].sum()
    co = O.cooccurrence(ok)
    assert (co.to_numpy() == co.to_numpy().T).all()
    assert all(co.loc[f, f] == counts.loc[f, "all"] for f in co.index)


def test_held_out_checks_are_zero_and_can_fail(world, tmp_path):
    cohort, ok = world
    assert int(O.held_out_check(ok, cohort).to_numpy().sum()) == 0
    # a record whose labels hold a held-out combination is counted (the check is not vacuous)
    bad = ok.copy()
    bad.loc[bad.index[0], "findings"] = "atrial_fibrillation|rbbb|abnormal_ecg"
    table = O.held_out_check(bad, cohort)
    split = bad.loc[bad.index[0], "split"]
    assert table.loc["Atrial fibrillation + Right bundle branch block", f"said ({split})"] == 1
    wording = O.wording_summary(ok)["value"]
    assert wording["statements that are held-out wordings"] == 0
    assert wording["statements that are train wordings of the bank"] == wording["statements in all reports"]
    assert wording["bank wordings per statement, train part (min)"] >= 6


def test_pairs_agreement_and_summary(world):
    cohort, ok = world
    pairs = O.pair_coverage(ok, cohort)["value"]
    assert 0 < pairs["allowed pairs built (intended)"] <= pairs["allowed pairs"]
    agreement = O.agreement_view(cohort)
    assert {"agreement", "false_positive", "meets target", "misread as"} <= set(agreement.columns)
    assert agreement["agreement"].between(0, 1).all()
    w = O.cohort_world(ok, cohort)
    text = summarize_cohort_world(w)
    assert "findings are said in the reports" in text and "absent from every split" in text
    assert f"lowest {agreement['agreement'].min():.2f}" in text


def test_bad_inputs_are_named(world, tmp_path):
    """An older cohort without structured labels, a labels table without study ids, and a finding set without
    one rhythm or with an unbuilt finding are refused with messages that name the file or the findings."""
    import numpy as np

    from diffusets_core.data.cohort import agreement_table
    from diffusets_core.data.cohort.labels import read_cohort
    from diffusets_core.data.cohort.morphology import gan_record, make_template
    from diffusets_core.data.cohort.plan import plan_edit

    cohort, _ = world
    old = tmp_path / "old"
    old.mkdir()
    pd.read_csv(cohort / "cohort_labels.csv").drop(columns=["intended", "findings"]).to_csv(
        old / "cohort_labels.csv", index=False
    )
    with pytest.raises(ValueError, match=r"cohort_labels\.csv: columns \['findings', 'intended'\] missing"):
        agreement_table(old)
    bad = tmp_path / "bad"
    (bad / "files").mkdir(parents=True)  # the layout check only; no signal is read
    for name in ("record_list.csv", "machine_measurements.csv", "patients.csv"):
        (bad / name).write_bytes((cohort / name).read_bytes())
    pd.read_csv(cohort / "cohort_labels.csv").drop(columns=["study_id"]).to_csv(bad / "cohort_labels.csv", index=False)
    with pytest.raises(ValueError, match=r"cohort_labels\.csv: a findings column without a study_id"):
        read_cohort(bad)
    tpl = make_template(gan_record(11))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exactly one rhythm"):
        plan_edit(("rbbb",), tpl, rng, 50.0, "M")
    with pytest.raises(ValueError, match="exactly one rhythm"):
        plan_edit(("sinus_rhythm", "atrial_fibrillation"), tpl, rng, 50.0, "M")
    with pytest.raises(ValueError, match=r"no synthesiser edit for \['normal_ecg'\]"):
        plan_edit(("sinus_rhythm", "normal_ecg"), tpl, rng, 50.0, "M")
