"""PTB-XL, MIMIC-IV-ECG and folder readers on trees in the real layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from data_trees import PTBXL_COLUMNS, write_mimic_tree, write_ptbxl_tree

from diffusets_core.data.folder import parse_header_comments, read_folder
from diffusets_core.data.mimic import read_mimic
from diffusets_core.data.ptbxl import read_ptbxl
from diffusets_core.data.records import DatasetLayoutError

PTB_DIAG_DIR = Path(__file__).parent / "fixtures" / "ptb-diagnostic"


def _no_signals(rows):
    return [dict(r, write=False) for r in rows]


def test_ptbxl_reader_report_age_sex(tmp_path):
    rows = [
        {
            "ecg_id": 2,
            "patient_id": 13243,
            "age": 19,
            "sex": 0,
            "report": "sinusbradykardie sonst normales ekg",
            "scp_codes": "{'NORM': 80.0, 'SBRAD': 0.0}",
        },
        {
            "ecg_id": 1,
            "patient_id": 15709,
            "age": 300,
            "sex": 1,
            "report": "",
            "scp_codes": "{'IMI': 100.0, 'LVOLT': 0.0, 'SR': 0.0}",
        },
    ]
    root = write_ptbxl_tree(tmp_path / "ptbxl", _no_signals(rows))
    refs = read_ptbxl(root)
    assert [r.record_id for r in refs] == ["1", "2"]  # ordered by ecg_id
    r1, r2 = refs
    assert r1.subject_id == "15709" and r1.sex == "F" and r2.sex == "M"
    assert r1.age == 90 and "300" in r1.extra["age_note"]
    assert (
        r1.report == "inferior myocardial infarction|low QRS voltages in the frontal and horizontal leads|sinus rhythm"
    )
    # unknown code SBRAD falls back to the code; free text first
    assert r2.report == "sinusbradykardie sonst normales ekg|normal ECG|SBRAD"
    assert r1.path.endswith("records500/00000/00001_hr") and r1.extra["strat_fold"] == "3"
    assert all(r.skip_reason is None and r.source == "ptbxl" for r in refs)


def test_ptbxl_malformed_rows_are_skipped_with_reason(tmp_path):
    rows = [
        {"ecg_id": 1},
        {"ecg_id": 2, "scp_codes": "{'NORM': 100.0"},  # truncated literal
        {"ecg_id": 3, "scp_codes": "__import__('os').system('echo pwned')"},  # must never be evaluated
        {"ecg_id": 4, "age": "sixty"},
    ]
    short_line = "5,123.0,60,1"  # too few fields: padded by the parser, then refused
    long_line = "6," + ",".join(["x"] * 40)  # too many fields: the parser's "bad line"
    root = write_ptbxl_tree(tmp_path / "ptbxl", _no_signals(rows), raw_extra_lines=[short_line, long_line])
    refs = {r.record_id: r for r in read_ptbxl(root)}
    assert refs["1"].skip_reason is None
    assert "scp_codes" in refs["2"].skip_reason and "malformed" in refs["2"].skip_reason
    assert "scp_codes" in refs["3"].skip_reason
    assert "age 'sixty'" in refs["4"].skip_reason
    assert "filename_hr is empty" in refs["5"].skip_reason
    assert "41 fields, expected 28" in refs["6"].skip_reason
    assert len(refs) == 6  # nothing dropped


def test_mimic_reader_join_report_demographics(tmp_path):
    recs = [
        {
            "subject_id": 10000032,
            "study_id": 40689238,
            "reports": ["Sinus rhythm", "Possible right atrial abnormality", "Borderline ECG"],
            "rr_interval": 857,
        },
        {
            "subject_id": 10000032,
            "study_id": 40000001,
            "reports": ["Atrial fibrillation", None, "  ", "Abnormal ECG"],
            "rr_interval": 0,
        },
        {"subject_id": 10000099, "study_id": 40000002, "measurements": False},
        {"subject_id": 10000500, "study_id": 40000003},  # not in patients
    ]
    root = write_mimic_tree(tmp_path / "mimic", _no_signals(recs), patients={10000032: (52, "F"), 10000099: (70, "M")})
    refs = read_mimic(root)
    assert [(r.subject_id, r.record_id) for r in refs] == [
        ("10000032", "40000001"),
        ("10000032", "40689238"),
        ("10000099", "40000002"),
        ("10000500", "40000003"),
    ]
    a, b, c, d = refs
    assert b.report == "Sinus rhythm|Possible right atrial abnormality|Borderline ECG"
    assert a.report == "Atrial fibrillation|Abnormal ECG"  # NaN and blank statements dropped, order kept
    assert b.rr_interval_ms == 857 and a.rr_interval_ms == 0
    assert (b.age, b.sex) == (52, "F")
    assert b.path.endswith("files/p1000/p10000032/s40689238/40689238")
    assert c.skip_reason and "machine_measurements" in c.skip_reason
    assert d.age is None and d.sex is None and "patients.csv" in d.extra["demographics_missing"]


def test_mimic_without_patients_table(tmp_path):
    root = write_mimic_tree(tmp_path / "m", _no_signals([{"subject_id": 1, "study_id": 2}]), write_patients=False)
    (ref,) = read_mimic(root)
    assert ref.age is None and "no patients table" in ref.extra["demographics_missing"]
    # MIMIC-IV's own hosp/patients.csv.gz is accepted too
    (root / "hosp").mkdir()
    pd.DataFrame(
        {
            "subject_id": [1],
            "gender": ["M"],
            "anchor_age": [91],
            "anchor_year": [2150],
            "anchor_year_group": ["2008 - 2010"],
            "dod": [None],
        }
    ).to_csv(root / "hosp/patients.csv.gz", index=False)
    (ref,) = read_mimic(root)
    assert (ref.age, ref.sex) == (91, "M")


def test_folder_reader_on_real_ptb_diagnostic(tmp_path):
    dst = tmp_path / "ptbdb" / "patient001"
    shutil.copytree(PTB_DIAG_DIR, dst, ignore=shutil.ignore_patterns("*.md"))
    (ref,) = read_folder(tmp_path / "ptbdb")
    assert ref.record_id == "patient001/s0010_re" and ref.subject_id == "patient001"
    assert ref.age == 81 and ref.sex == "F"
    assert ref.report == "Myocardial infarction|Acute infarction: infero-latera|Diabetes mellitus"


def test_header_comment_parsing():
    meta = parse_header_comments(
        ["Age: 74", "Sex: Male", "Dx: 426783006|164889003", "subject_id: 77", "Former infarction (localization): no"]
    )
    # numeric Dx values are codes (Challenge SNOMED CT), never report text
    assert {k: meta[k] for k in ("age", "sex", "report", "subject_id", "dx_codes")} == {
        "age": 74.0,
        "sex": "M",
        "report": "",
        "subject_id": "77",
        "dx_codes": ["426783006", "164889003"],
    }
    assert meta["fields"]["subject_id"] == "77"
    assert parse_header_comments(["age: n/a", "sex: unknown"])["age"] is None


@pytest.mark.parametrize(
    "reader, expected",
    [
        (read_ptbxl, "ptbxl_database.csv and records500/ (PTB-XL 1.0.x layout)"),
        (read_mimic, "record_list.csv, machine_measurements.csv and files/ (MIMIC-IV-ECG 1.0 layout)"),
        (read_folder, "a folder containing WFDB records"),
    ],
)
def test_wrong_dataset_path(tmp_path, reader, expected):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    for path in (tmp_path / "empty", tmp_path / "does-not-exist"):
        with pytest.raises(DatasetLayoutError) as e:
            reader(path)
        assert str(path) in str(e.value) and expected in str(e.value)


def test_mimic_tree_given_to_ptbxl_reader_is_refused(tmp_path):
    root = write_mimic_tree(tmp_path / "mimic", _no_signals([{"subject_id": 1, "study_id": 2}]))
    with pytest.raises(DatasetLayoutError, match="missing ptbxl_database.csv, records500"):
        read_ptbxl(root)


def test_ptbxl_csv_columns_checked(tmp_path):
    root = write_ptbxl_tree(tmp_path / "p", _no_signals([{"ecg_id": 1}]))
    df = pd.read_csv(root / "ptbxl_database.csv").drop(columns=["scp_codes"])
    df.to_csv(root / "ptbxl_database.csv", index=False)
    with pytest.raises(DatasetLayoutError, match="scp_codes"):
        read_ptbxl(root)
    assert "scp_codes" in PTBXL_COLUMNS
