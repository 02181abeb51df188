"""The cohort build's wording: by default (``wording="bank"``) each report is worded through the wording bank, with
the findings written beside it as labels; ``wording="fixed"`` writes the canonical statements, everything else
byte for byte the same."""

import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from diffusets_core.data.cohort import agreement_table, build_cohort, make_record
from diffusets_core.data.cohort import build as B
from diffusets_core.data.cohort import findings as F
from diffusets_core.data.cohort import wordings as W
from diffusets_core.data.mimic import REPORT_COLUMNS
from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
from diffusets_core.data.store import SignalStore

N, SEED = 24, 3


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wording")
    out = {"default": base / "fixed", "bank": base / "bank", "bank1": base / "bank1"}
    build_cohort(out["default"], n=N, seed=SEED, workers=1, progress=False, wording="fixed")
    build_cohort(out["bank"], n=N, seed=SEED, workers=2, progress=False)
    build_cohort(out["bank1"], n=N, seed=SEED, workers=1, progress=False, wording="bank")
    return out


def _same_files(a: Path, b: Path) -> list[str]:
    assert _files(a) == _files(b)
    return [f for f in _files(a) if not filecmp.cmp(a / f, b / f, shallow=False)]


def test_fixed_wording_changes_only_the_words(builds):
    """wording="fixed" has the same signals, records, patients, measurements and labels as the default bank build,
    and differs only in the report words and COHORT.json's wording."""
    differ = _same_files(builds["default"], builds["bank"])
    assert sorted(differ) == ["COHORT.json", "machine_measurements.csv"]
    d_mm = pd.read_csv(builds["default"] / "machine_measurements.csv")
    b_mm = pd.read_csv(builds["bank"] / "machine_measurements.csv")
    other = [c for c in d_mm.columns if c not in REPORT_COLUMNS]
    pd.testing.assert_frame_equal(d_mm[other], b_mm[other])
    d_meta = json.loads((builds["default"] / "COHORT.json").read_text())
    b_meta = json.loads((builds["bank"] / "COHORT.json").read_text())
    assert d_meta.pop("wording") == {"mode": "fixed"} and b_meta.pop("wording")["mode"] == "bank"
    assert b_meta == d_meta
    # the fixed record carries canonical statements, the findings beside them either way
    rec = make_record(SEED, 1, wording="fixed")
    assert [F.finding_of_statement(s) for s in rec["statements"]] == rec["findings"]
    assert make_record(SEED, 1)["findings"] == rec["findings"]


def test_bank_build_is_deterministic_for_a_seed(builds):
    assert _same_files(builds["bank"], builds["bank1"]) == []
    a, b = make_record(SEED, 5, wording="bank"), make_record(SEED, 5, wording="bank")
    assert a["statements"] == b["statements"] and a["findings"] == b["findings"]


def _bad_wordings() -> set[str]:
    held = {W.normalise(t) for st in W.statements() for t in W.wordings(st, "held_out")}
    table = yaml.safe_load((Path(W.__file__).parents[2] / "eval" / "paraphrases.yaml").read_text(encoding="utf-8"))
    para = {W.normalise(p) for options in table["paraphrases"].values() for p in options}
    return held | para


def test_bank_reports_use_train_wordings_only_and_carry_their_findings(builds):
    train = {W.normalise(t) for st in W.statements() for t in W.wordings(st)}
    bad = _bad_wordings()
    mm = pd.read_csv(builds["bank"] / "machine_measurements.csv")
    labels = pd.read_csv(builds["bank"] / "cohort_labels.csv").set_index("study_id")
    default = pd.read_csv(builds["default"] / "machine_measurements.csv").set_index("study_id")
    worded = 0
    for _, row in mm.iterrows():
        said = [s for s in row[REPORT_COLUMNS] if isinstance(s, str)]
        fids = labels.loc[row["study_id"], "findings"].split("|")
        canon = [s for s in default.loc[row["study_id"], REPORT_COLUMNS] if isinstance(s, str)]
        assert fids == [F.finding_of_statement(s) for s in canon]  # the labels are what the interpreter said
        assert [W.finding_of(s) for s in said] == fids  # the bank maps each wording back to its label
        assert tuple(fids) == F.report_order(fids)
        for s in said:
            assert W.normalise(s) in train and W.normalise(s) not in bad, s
        worded += said != canon
    assert worded >= N // 2  # most reports are worded otherwise than the canonical statements
    # agreement with the intended findings reads the labels, so it does not depend on the wording
    pd.testing.assert_frame_equal(agreement_table(builds["bank"]), agreement_table(builds["default"]))


def test_no_held_out_or_paraphrase_wording_in_any_split(builds, tmp_path):
    res = prepare_dataset(
        "cohort",
        builds["bank"],
        tmp_path / "run",
        PrepareConfig(fractions=(0.5, 0.25, 0.25)),
        workers=1,
        progress=False,
    )
    assert res.n_ok == N
    store = SignalStore(tmp_path / "run")
    bad = _bad_wordings()
    for split in ("train", "val", "test"):
        reports = store.records(split)["report"]
        assert len(reports), split
        for r in reports:
            for s in r.split("|"):
                assert W.normalise(s) not in bad, (split, s)
                W.finding_of(s)  # and every statement is a bank wording


def test_wording_option_is_checked_and_reuse_respects_it(tmp_path):
    with pytest.raises(ValueError, match="wording must be one of"):
        build_cohort(tmp_path / "never", n=2, wording="paraphrased")
    assert not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="wording must be one of"):
        make_record(0, 0, wording="Bank")
    # a cohort built with the bank is never reused for a fixed-wording build, nor the other way round
    summary = {"n": 8, "seed": 1, "version": B.COHORT_VERSION, "wording": {"mode": "fixed"}}
    (tmp_path / "fixed").mkdir()
    (tmp_path / "fixed" / "COHORT.json").write_text(json.dumps(summary))
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "COHORT.json").write_text(json.dumps({**summary, "wording": {"mode": "bank"}}))
    assert B.reusable_cohort(tmp_path / "fixed", 8, 1, "fixed") is not None
    assert B.reusable_cohort(tmp_path / "fixed", 8, 1) is None
    assert B.reusable_cohort(tmp_path / "bank", 8, 1, "fixed") is None
    assert B.reusable_cohort(tmp_path / "bank", 8, 1) is not None
