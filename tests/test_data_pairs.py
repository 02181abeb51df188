"""Pairs of one subject's records (earlier -> later, within one split) from prepared MIMIC-IV-ECG and PTB-XL trees,
and from records tables given directly."""

import itertools
import logging

import pandas as pd
import pytest
from data_trees import write_mimic_tree, write_ptbxl_tree

from diffusets_core.data.pairs import PAIR_COLUMNS, record_times, run_pairs, subject_pairs
from diffusets_core.data.prepare import prepare_dataset
from diffusets_core.data.store import SignalStore

# six subjects with three ECGs each; the study ids of subject k run against its times for odd k, so ordering by
# time and ordering by id disagree
MIMIC_TIMES = ["2181-03-02 08:00:00", "2183-07-15 12:30:00", "2186-01-20 23:59:00"]


def _mimic_records() -> list[dict]:
    out = []
    for k in range(6):
        for v in range(3):
            out.append(
                {
                    "subject_id": 10000032 + k,
                    "study_id": 40000000 + 10 * k + v,
                    "ecg_time": MIMIC_TIMES[v if k % 2 == 0 else 2 - v],
                    "hr": 60.0 + 10 * v,
                    "seed": 10 * k + v,
                }
            )
    return out


def _ptbxl_rows() -> list[dict]:
    # patients 15000..15004 with 1, 2, 3, 2, 2 records (ecg ids in one order, dates in another for 15002)
    layout = {15000: [1], 15001: [2, 3], 15002: [4, 5, 6], 15003: [7, 8], 15004: [9, 10]}
    dates = {4: "1995-06-01 10:00:00", 5: "1990-01-01 09:00:00", 6: "1992-03-04 11:11:11"}
    return [
        {"ecg_id": e, "patient_id": p, "recording_date": dates.get(e, f"19{80 + e}-05-0{1 + e % 9} 08:00:00")}
        for p, ids in layout.items()
        for e in ids
    ]


@pytest.fixture(scope="module")
def mimic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs_mimic")
    write_mimic_tree(root / "mimic", _mimic_records())
    prepare_dataset("mimic", root / "mimic", root / "run", workers=1, progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def ptbxl_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs_ptbxl")
    write_ptbxl_tree(root / "ptbxl", _ptbxl_rows())
    prepare_dataset("ptbxl", root / "ptbxl", root / "run", workers=1, progress=False)
    return root / "run"


def _check_pairs(pairs: pd.DataFrame, records: pd.DataFrame) -> None:
    """Every pair joins two records of one subject in one split, earlier -> later; every such pair is there."""
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    by_id = records.set_index("record_id")
    ref, tgt = by_id.loc[pairs["reference_record"]], by_id.loc[pairs["target_record"]]
    assert (ref["subject_id"].to_numpy() == tgt["subject_id"].to_numpy()).all()
    assert (ref["subject_id"].to_numpy() == pairs["subject_id"].to_numpy()).all()
    assert (ref["split"].to_numpy() == tgt["split"].to_numpy()).all()
    assert (pairs["split"].to_numpy() == ref["split"].to_numpy()).all()
    assert (pairs["reference_time"] <= pairs["target_time"]).all() and (pairs["days_between"] >= 0).all()
    assert (pairs["reference_record"] != pairs["target_record"]).all()
    expected = sum(len(g) * (len(g) - 1) // 2 for _, g in records.groupby(["subject_id", "split"]))
    assert len(pairs) == expected
    assert not pairs.duplicated(["reference_record", "target_record"]).any()


def test_mimic_pairs_within_subject_and_split_earlier_to_later(mimic_run):
    records = SignalStore(mimic_run).records()
    assert len(records) == 18 and records["split"].nunique() == 3
    pairs = run_pairs(mimic_run)
    _check_pairs(pairs, records)
    assert len(pairs) == 6 * 3
    # subject 10000033's study ids run against its times: its earliest record is its last study
    one = pairs[pairs["subject_id"] == "10000033"]
    assert list(zip(one["reference_record"], one["target_record"])) == [
        ("40000012", "40000011"),
        ("40000012", "40000010"),
        ("40000011", "40000010"),
    ]
    first = one.iloc[0]
    assert first["reference_time"] == pd.Timestamp(MIMIC_TIMES[0])
    assert first["days_between"] == pytest.approx(
        (pd.Timestamp(MIMIC_TIMES[1]) - pd.Timestamp(MIMIC_TIMES[0])) / pd.Timedelta(days=1)
    )
    assert list(one["reference_order"]) == [0, 0, 1] and list(one["target_order"]) == [1, 2, 2]


def test_pairs_of_one_split_and_consecutive_pairs(mimic_run):
    for split in ("train", "val", "test"):
        pairs = run_pairs(mimic_run, split)
        assert (pairs["split"] == split).all()
        _check_pairs(pairs, SignalStore(mimic_run).records(split))
    adjacent = run_pairs(mimic_run, consecutive=True)
    assert len(adjacent) == 6 * 2 and (adjacent["target_order"] == adjacent["reference_order"] + 1).all()


def test_ptbxl_pairs_by_recording_date(ptbxl_run):
    records = SignalStore(ptbxl_run).records()
    pairs = run_pairs(ptbxl_run)
    _check_pairs(pairs, records)
    # patient 15000 has one record (no pair); 15002's records in date order are 5, 6, 4
    assert "15000" not in set(pairs["subject_id"])
    p2 = pairs[pairs["subject_id"] == "15002"]
    assert list(zip(p2["reference_record"], p2["target_record"])) == [("5", "6"), ("5", "4"), ("6", "4")]
    times = record_times("ptbxl", SignalStore(ptbxl_run).info["data_dir"])
    assert list(times.columns) == ["record_id", "subject_id", "time"] and times["time"].notna().all()
    assert times.set_index("record_id").loc["5", "subject_id"] == "15002"


def test_no_pairs_across_splits():
    records = pd.DataFrame(
        {
            "record_id": ["a", "b", "c", "d"],
            "subject_id": ["1", "1", "1", "2"],
            "split": ["train", "test", "train", "val"],
            "time": pd.to_datetime(["2000-01-03", "2000-01-01", "2000-01-02", "2000-01-01"]),
        }
    )
    pairs = subject_pairs(records)
    assert list(zip(pairs["reference_record"], pairs["target_record"])) == [("c", "a")]
    assert pairs.iloc[0]["days_between"] == 1.0


def test_times_joined_by_record_id_and_untimed_records_left_out(caplog):
    records = pd.DataFrame({"record_id": ["1", "2", "3", "4"], "subject_id": ["7", "7", "7", "7"]})
    times = pd.DataFrame({"record_id": ["3", "1", "2"], "time": ["2001-01-01", "2002-01-01", ""]})
    with caplog.at_level(logging.WARNING, logger="diffusets_core.data.pairs"):
        pairs = subject_pairs(records, times)
    assert list(zip(pairs["reference_record"], pairs["target_record"])) == [("3", "1")]
    assert (pairs["split"] == "").all()
    assert "2 of 4 record(s) without an acquisition time" in caplog.text


def test_equal_times_order_by_record_id_numerically():
    records = pd.DataFrame(
        {"record_id": ["10", "9", "100"], "subject_id": ["1"] * 3, "time": ["2000-01-01 00:00:00"] * 3}
    )
    pairs = subject_pairs(records)
    assert list(zip(pairs["reference_record"], pairs["target_record"])) == list(
        itertools.combinations(["9", "10", "100"], 2)
    )
    assert (pairs["days_between"] == 0).all()


def test_a_records_table_without_subject_ids_is_refused_by_name():
    with pytest.raises(ValueError, match="subject_id"):
        subject_pairs(pd.DataFrame({"record_id": ["1"], "time": ["2000-01-01"]}))
    with pytest.raises(ValueError, match="record_id"):
        subject_pairs(pd.DataFrame({"subject_id": ["1"], "time": ["2000-01-01"]}))
    with pytest.raises(ValueError, match="'time'"):
        subject_pairs(pd.DataFrame({"record_id": ["1"], "subject_id": ["1"]}))
    with pytest.raises(ValueError, match=r"times table.*'time'"):
        subject_pairs(pd.DataFrame({"record_id": ["1"], "subject_id": ["1"]}), pd.DataFrame({"record_id": ["1"]}))


def test_a_source_without_times_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keeps no acquisition times"):
        record_times("wfdb", tmp_path)
    with pytest.raises(FileNotFoundError, match="record_list.csv"):
        record_times("mimic", tmp_path)
    (tmp_path / "record_list.csv").write_text("subject_id,study_id,path\n1,2,files/x\n")
    with pytest.raises(KeyError, match="ecg_time"):
        record_times("mimic", tmp_path)


def test_empty_pairs_have_the_columns():
    pairs = subject_pairs(pd.DataFrame({"record_id": ["1"], "subject_id": ["1"], "time": ["2000-01-01"]}))
    assert list(pairs.columns) == list(PAIR_COLUMNS) and pairs.empty
