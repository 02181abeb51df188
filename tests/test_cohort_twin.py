"""The cohort's opt-in twin layout (``records_per_subject``): several records per subject from one morphology
template, findings and heart rate drawn per record, a subject's records in one split and paired by time; and the
default layout as it was."""

import json

import pandas as pd
import pytest

from diffusets_core.cli import build_parser
from diffusets_core.data.cohort import build as B
from diffusets_core.data.cohort import build_cohort, make_record
from diffusets_core.data.cohort.plan import patient
from diffusets_core.data.pairs import run_pairs
from diffusets_core.data.prepare import prepare_dataset
from diffusets_core.data.store import SignalStore

N, SEED, RPS = 10, 0, (3, 4)

# the default layout's first six records for seed 0, as built before the twin layout existed: (subject_id,
# intended findings, target heart rate, age, sex, ecg_time)
DEFAULT_SEED0 = [
    (10000000, "sinus_rhythm", 62.5, 36.0, "F", "2186-05-13 21:50:00"),
    (10000000, "sinus_bradycardia|lafb|peaked_t", 42.8, 36.0, "F", "2189-07-23 06:36:00"),
    (10000001, "sinus_rhythm|av_block_2_mobitz1", 66.8, 70.0, "F", "2185-08-29 01:30:00"),
    (10000002, "atrial_fibrillation|peaked_t", 87.4, 44.0, "M", "2185-02-25 04:25:00"),
    (10000002, "sinus_rhythm|peaked_t", 76.7, 44.0, "M", "2187-10-02 06:12:00"),
    (10000003, "sinus_bradycardia|left_axis_deviation", 47.2, 86.0, "M", "2189-11-20 08:57:00"),
]
DEFAULT_LABEL_COLUMNS = ["subject_id", "study_id", "intended", "findings", "target_hr", "age", "sex", "seed"]
DEFAULT_SUMMARY_KEYS = [
    "n",
    "seed",
    "version",
    "layout",
    "fs",
    "finding_counts",
    "said_counts",
    "statements",
    "planner",
    "generation",
    "wording",
]


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("twin") / "cohort"
    build_cohort(out, n=N, seed=SEED, workers=1, progress=False, records_per_subject=RPS)
    return out


@pytest.mark.stored_numbers
def test_the_default_layout_is_the_one_built_before(tmp_path):
    out = tmp_path / "default"
    build_cohort(out, n=6, seed=0, workers=1, progress=False)
    labels = pd.read_csv(out / "cohort_labels.csv")
    times = pd.read_csv(out / "record_list.csv")
    assert list(labels.columns) == DEFAULT_LABEL_COLUMNS
    got = list(
        zip(
            labels["subject_id"],
            labels["intended"],
            labels["target_hr"],
            labels["age"],
            labels["sex"],
            times["ecg_time"],
        )
    )
    assert got == DEFAULT_SEED0
    assert list(json.loads((out / "COHORT.json").read_text())) == DEFAULT_SUMMARY_KEYS
    explicit = tmp_path / "explicit"
    build_cohort(explicit, n=6, seed=0, workers=1, progress=False, records_per_subject=None)
    for name in ("record_list.csv", "machine_measurements.csv", "patients.csv", "cohort_labels.csv", "COHORT.json"):
        assert (explicit / name).read_bytes() == (out / name).read_bytes()


def test_a_subjects_records_share_template_and_traits_and_differ_in_findings_and_rate(twin):
    labels = pd.read_csv(twin / "cohort_labels.csv")
    assert list(labels.columns) == DEFAULT_LABEL_COLUMNS + ["template", "visit"]
    groups = labels.groupby("subject_id")
    sizes = groups.size()
    assert (sizes.iloc[:-1].between(*RPS)).all() and 1 <= sizes.iloc[-1] <= RPS[1]  # the last subject is cut to N
    assert (groups["template"].nunique() == 1).all()  # one GAN morphology per subject ...
    assert labels.drop_duplicates("subject_id")["template"].is_unique  # ... its own
    assert (groups["age"].nunique() == 1).all() and (groups["sex"].nunique() == 1).all()
    for sid, g in groups:
        assert (g["age"].iloc[0], g["sex"].iloc[0]) == patient(SEED, int(sid))
        assert list(g["visit"]) == list(range(len(g)))
        assert g["target_hr"].is_unique
    assert (groups["intended"].nunique() > 1).any()
    patients = pd.read_csv(twin / "patients.csv")
    assert list(patients["subject_id"]) == list(sizes.index)


def test_the_template_seed_is_the_morphology_each_record_is_built_from(twin):
    labels = pd.read_csv(twin / "cohort_labels.csv")
    slots = B.twin_slots(SEED, N, RPS)
    assert [s.gan_seed for s in slots] == list(labels["template"])
    assert [s.subject_id for s in slots] == list(labels["subject_id"])
    # a record rebuilt alone (its GAN draw made here, not in the build's batch) is the one in the cohort
    rec = make_record(SEED, 4, slot=slots[4])
    row = labels.iloc[4]
    assert "|".join(rec["intended"]) == row["intended"] and rec["target_hr"] == row["target_hr"]
    assert (rec["template"], rec["visit"], rec["subject_id"]) == (row["template"], row["visit"], row["subject_id"])
    # the morphology template itself: the same normal beat for every record of the subject
    a = B.subject_template(slots[0].gan_seed, None, "a")
    b = B.subject_template(labels["template"].iloc[1], None, "b")
    assert (a.beat == b.beat).all() and (a.qrs_on, a.t_end) == (b.qrs_on, b.t_end)


def test_the_setting_is_recorded_and_decides_reuse(twin):
    meta = json.loads((twin / "COHORT.json").read_text())
    assert meta["records_per_subject"] == list(RPS)
    assert meta["subjects"]["n"] == pd.read_csv(twin / "cohort_labels.csv")["subject_id"].nunique()
    assert B.reusable_cohort(twin, N, SEED, "bank", RPS) == meta
    assert B.reusable_cohort(twin, N, SEED, "bank", "3-4") == meta
    assert B.reusable_cohort(twin, N, SEED, "bank") is None
    assert B.reusable_cohort(twin, N, SEED, "bank", 3) is None


def test_a_subjects_records_land_in_one_split_and_pair_by_time(twin, tmp_path):
    prepare_dataset("cohort", twin, tmp_path / "run", workers=1, progress=False)
    records = SignalStore(tmp_path / "run").records()
    assert len(records) == N
    assert (records.groupby("subject_id")["split"].nunique() == 1).all()
    pairs = run_pairs(tmp_path / "run")
    sizes = records.groupby("subject_id").size()
    assert len(pairs) == int((sizes * (sizes - 1) // 2).sum())
    template = pd.read_csv(twin / "cohort_labels.csv", dtype=str).set_index("study_id")["template"]
    assert (template.loc[pairs["reference_record"]].to_numpy() == template.loc[pairs["target_record"]].to_numpy()).all()
    assert (pairs["reference_time"] <= pairs["target_time"]).all()


def test_twin_slots_are_seeded_and_fill_n():
    slots = B.twin_slots(5, 40, (3, 5))
    assert slots == B.twin_slots(5, 40, "3-5") and len(slots) == 40
    assert slots != B.twin_slots(6, 40, (3, 5))
    ids = [s.subject_id for s in slots]
    assert ids == sorted(ids) and ids[0] == B.FIRST_SUBJECT
    counts = pd.Series(ids).value_counts().sort_index()
    assert counts.iloc[:-1].between(3, 5).all() and counts.nunique() > 1
    one = B.twin_slots(5, 12, 1)
    assert [(s.subject_id, s.visit) for s in one] == [(B.FIRST_SUBJECT + k, 0) for k in range(12)]
    with pytest.raises(ValueError, match="records_per_subject"):
        B.twin_slots(0, 4, None)


@pytest.mark.parametrize(
    "value, expected", [(None, None), (3, (3, 3)), ("3", (3, 3)), ("3-5", (3, 5)), ([2, 4], (2, 4)), ((1, 1), (1, 1))]
)
def test_records_per_subject_forms(value, expected):
    assert B.parse_records_per_subject(value) == expected


@pytest.mark.parametrize("value", [0, "5-3", "a", [1, 2, 3], True, 2.5, "0-2"])
def test_records_per_subject_refused(value, tmp_path):
    with pytest.raises(ValueError, match="records_per_subject"):
        B.parse_records_per_subject(value)
    with pytest.raises(ValueError, match="records_per_subject"):
        build_cohort(tmp_path / "never", n=2, records_per_subject=value)
    assert not (tmp_path / "never").exists()


def test_cli_option(tmp_path):
    args = build_parser().parse_args(["cohort", "--out", str(tmp_path), "--records-per-subject", "3-5"])
    assert args.records_per_subject == (3, 5)
    assert build_parser().parse_args(["cohort", "--out", str(tmp_path)]).records_per_subject is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["cohort", "--out", str(tmp_path), "--records-per-subject", "5-3"])


def test_records_per_subject_is_for_the_cohort_only(tmp_path):
    with pytest.raises(ValueError, match="cohort source only"):
        B.source_data_dir("mimic", tmp_path, tmp_path / "run", n=4, seed=0, records_per_subject=3)


def test_the_data_chapter_builds_and_reuses_a_twin_cohort(tmp_path):
    path, built = B.source_data_dir("cohort", None, tmp_path, n=4, seed=0, records_per_subject=[2, 2])
    assert not built.reused and built.summary["records_per_subject"] == [2, 2]
    assert pd.read_csv(path / "cohort_labels.csv")["subject_id"].nunique() == 2
    _, again = B.source_data_dir("cohort", None, tmp_path, n=4, seed=0, records_per_subject="2")
    assert again.reused
    _, default = B.source_data_dir("cohort", None, tmp_path, n=4, seed=0)
    assert not default.reused and "records_per_subject" not in default.summary
