"""The data chapter's tables (diffusets_core.data.overview) on a six-record frame."""

import pandas as pd

from diffusets_core.data import overview as O


def frames():
    ok = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(6)],
            "subject_id": [1, 1, 2, 3, 4, 4],
            "split": ["train", "train", "val", "test", "train", "test"],
            "report": [
                "Sinus rhythm|Normal ECG",
                "Sinus rhythm|Normal ECG",
                "Sinus tachycardia",
                "Sinus rhythm|LVH",
                "Sinus rhythm |Normal ECG",
                "Sinus bradycardia",
            ],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    manifest = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(7)],
            "source_path": ["p"] * 7,
            "status": ["ok"] * 6 + ["skipped"],
            "reason": [""] * 6 + ["too short"],
        }
    )
    return ok, manifest


def test_counts_splits_and_statements():
    ok, manifest = frames()
    assert O.record_counts(manifest)["records"].tolist() == [7, 6, 1]
    splits = O.split_table(ok)
    assert splits.index.tolist() == ["train", "val", "test"]
    assert splits["records"].tolist() == [3, 1, 2] and splits["subjects"].tolist() == [2, 1, 2]
    assert O.subjects_in_several_splits(ok) == 1  # subject 4: train and test
    top = O.statement_table(ok)
    assert top.index[0] == "Sinus rhythm" and top["records"].iloc[0] == 4
    assert top["share of records"].iloc[0] == round(4 / 6, 3)
    assert O.first_statements(ok).tolist()[4] == "Sinus rhythm"
    assert O.example_per_first_statement(ok, k=2) == [10, 12]
    assert O.skipped_records(manifest)["reason"].tolist() == ["too short"]
