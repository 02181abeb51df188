"""Header comment conventions of the public 12-lead databases on PhysioNet, and records refused for a false reason.

Each tree is written here in the database's own header layout (comment lines appended to a wfdb-written header,
exactly as the database spells them), and the values the reader must take from it are asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from data_trees import synthetic_ecg, write_folder_record, write_wfdb

from diffusets_core.data.folder import read_folder
from diffusets_core.data.headers import HEADER_CONVENTIONS, parse_header_comments, parse_header_field_map
from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.data.prepare import list_records, prepare_dataset
from diffusets_core.data.preprocess import PreprocessConfig, format_duration, process_ref
from diffusets_core.data.records import RecordRef
from diffusets_core.data.subjects import NoUsableRecordsError, SplitError
from diffusets_core.data.wfdb_io import TruncatedSignalError, read_record

CFG = PreprocessConfig()
LUDB_LEADS = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
INCART_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _record_with_raw_comments(
    dir_: Path, name: str, comment_lines: list[str], *, fs: int = 500, seconds: float = 10.0, names=CANONICAL_LEADS
) -> Path:
    """A format-16 record whose header ends with ``comment_lines`` written verbatim (``#`` included)."""
    write_wfdb(dir_, name, synthetic_ecg(70, fs, seconds, len(name)), fs, names, gain=1000.0)
    hea = dir_ / f"{name}.hea"
    hea.write_text(hea.read_text() + "".join(line + "\n" for line in comment_lines))
    return dir_ / name


LUDB_COMMENTS = [
    ["#<age>: 51", "#<sex>: F", "#<diagnoses>:", "#Rhythm: Sinus rhythm.", "#Left ventricular hypertrophy."],
    ["#<age>: 64", "#<sex>: M", "#<diagnoses>:", "#Rhythm: Sinus bradycardia.", "#Electric axis of the heart: normal."],
    ["#<age>: 39", "#<sex>: F", "#<diagnoses>:", "#Rhythm: Sinus rhythm."],
    [
        "#<age>: 70",
        "#<sex>: M",
        "#<diagnoses>:",
        "#Rhythm: Atrial fibrillation.",
        "#Incomplete right bundle branch block.",
    ],
    [
        "#<age>: 45",
        "#<sex>: M",
        "#<diagnoses>:",
        "#Rhythm: Sinus rhythm.",
        "#Non-specific repolarization abnormalities: anterior wall.",
    ],
]


def _ludb_tree(root: Path) -> Path:
    for i, lines in enumerate(LUDB_COMMENTS, start=1):  # LUDB: data/1.hea ... data/200.hea, lower-case leads
        _record_with_raw_comments(root / "data", str(i), lines, names=LUDB_LEADS)
    return root


# ------------------------------------------------------------------ LUDB
def test_ludb_headers_give_age_sex_statements_and_record_subjects(tmp_path):
    root = _ludb_tree(tmp_path / "ludb")
    refs = {r.record_id: r for r in read_folder(root)}
    one = refs["data/1"]
    assert (one.age, one.sex) == (51.0, "F")  # was: age and sex unknown
    assert one.report == "Rhythm: Sinus rhythm.|Left ventricular hypertrophy."  # one statement a comment line
    assert refs["data/5"].report == "Rhythm: Sinus rhythm.|Non-specific repolarization abnormalities: anterior wall."
    # LUDB names no patient in its headers and holds one record per patient: the record is the subject
    assert all(r.subject_id == r.record_id for r in refs.values())
    res = prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    assert res.n_ok == 5 and res.splits == {"train": 3, "val": 1, "test": 1}  # was: 0 usable records, exit 0


def test_ludb_block_ends_at_the_next_bracketed_key():
    meta = parse_header_comments(["<diagnoses>:", "Rhythm: Sinus rhythm.", "", "<age>: 51", "<sex>: M"])
    assert (meta["report"], meta["age"], meta["sex"]) == ("Rhythm: Sinus rhythm.", 51.0, "M")
    # a statement line of the block is never read as a key of its own ("Rhythm" is not a field)
    assert "rhythm" not in meta["fields"] and meta["fields"]["diagnoses"] == "Rhythm: Sinus rhythm."


# ------------------------------------------------------------------ INCART
def _incart_tree(root: Path) -> Path:
    headers = {
        "I01": [
            "#<age>: 65 <sex>: F <diagnoses> Coronary artery disease, arterial hypertension",
            "# patient 1",
            "# PVCs, noise",
        ],
        "I02": [
            "#<age>: 65 <sex>: F <diagnoses> Coronary artery disease, arterial hypertension",
            "# patient 1",
            "# PVCs",
        ],
        "I08": ["#<age>: 51 <sex>: F ", "# patient 4", "# ventricular bigeminy, ventricular couplets"],
        "I20": ["#<age>: 59 <sex>: M <diagnoses> Acute MI", "# patient 11", "# sinus rhythm, PVCs"],
        "I30": ["#<age>: 72 <sex>: M <diagnoses> Transient ischemic attack", "# patient 15", "# APCs"],
    }
    for name, lines in headers.items():  # 257 Hz, upper-case leads as in incartdb (records cut to 12 s here)
        _record_with_raw_comments(root, name, lines, fs=257, seconds=12.0, names=INCART_LEADS)
    return root


def test_incart_headers_give_age_sex_report_and_the_patient(tmp_path):
    root = _incart_tree(tmp_path / "incartdb")
    refs = {r.record_id: r for r in read_folder(root)}
    i01, i08 = refs["I01"], refs["I08"]
    assert (i01.age, i01.sex, i08.age, i08.sex) == (65.0, "F", 51.0, "F")
    # the patient's diagnoses, then the findings of this record
    assert i01.report == "Coronary artery disease, arterial hypertension|PVCs, noise"
    assert i08.report == "ventricular bigeminy, ventricular couplets"  # no <diagnoses> token in 34 of 75 headers
    # '# patient N' names the Holter recording the record was cut from: records of one patient share a subject
    assert refs["I01"].subject_id == refs["I02"].subject_id == "1" and i08.subject_id == "4"
    assert i01.extra["subject_from"] == "auto: header field"
    res = prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    m = pd.read_csv(tmp_path / "run/data/manifest.csv", dtype=str, keep_default_na=False).set_index("record_id")
    assert res.n_ok == 5 and m.loc["I01", "split"] == m.loc["I02", "split"]
    assert refs["I01"].extra["header_fields"]["patient"] == "1"  # so 'header:patient' names it too
    assert [r.subject_id for r in list_records("wfdb", root, subject_id="header:patient")][:2] == ["1", "1"]


# ------------------------------------------------------------------ the conventions table
def test_every_convention_in_the_table_reads_its_own_example():
    names = [c.database for c in HEADER_CONVENTIONS]
    for needed in ("LUDB", "INCART", "PTB Diagnostic", "PhysioNet/CinC Challenge 2020/2021", "MIMIC-IV-ECG"):
        assert needed in names
    for conv in HEADER_CONVENTIONS:
        meta = parse_header_comments(list(conv.example))
        for field, expected in conv.example_reads.items():
            assert meta.get(field) == expected, (conv.database, field)
        assert conv.subject_otherwise, conv.database


def test_ptb_and_challenge_and_own_headers_read_as_before():
    ptb = parse_header_comments(
        ["age: 81", "sex: female", "Diagnose:", "Reason for admission: Myocardial infarction", "Smoker: no"]
    )
    assert (ptb["age"], ptb["sex"], ptb["report"]) == (81.0, "F", "Myocardial infarction")
    ch = parse_header_comments(["Age: 74", "Sex: Male", "Dx: 426783006,164865005", "Rx: Unknown"])
    assert (ch["age"], ch["sex"], ch["report"], ch["dx_codes"]) == (74.0, "M", "", ["426783006", "164865005"])
    # free text in a header that uses no bracketed keys is not a statement (as before)
    assert parse_header_comments(["age: 50", "sex: M", "recorded on device X"])["report"] == ""


def test_age_above_89_is_90_with_a_note():
    meta = parse_header_comments(["<age>: >89", "<sex>: F"])
    assert meta["age"] == 90.0 and "set to 90" in meta["age_note"]


# ------------------------------------------------------------------ the user names the fields
def test_header_field_map_names_age_sex_and_report_keys(tmp_path):
    root = tmp_path / "clinic"
    for i in range(4):
        write_folder_record(
            root, f"r{i}", seed=i, comments=[f"patient_age: {40 + i}", "gender_code: female", "findings: Sinus rhythm"]
        )
    (ref,) = read_folder(root)[:1]
    assert ref.age is None and "--header-field age=KEY" in ref.extra["demographics_missing"]
    mapping = parse_header_field_map(["age=Patient_Age", "sex=gender_code", "report=findings"])
    assert mapping == {"age": "patient_age", "sex": "gender_code", "report": ("findings",)}
    refs = list_records("wfdb", root, header_fields=mapping)
    assert [(r.age, r.sex, r.report) for r in refs][:2] == [(40.0, "F", "Sinus rhythm"), (41.0, "F", "Sinus rhythm")]
    with pytest.raises(ValueError, match="expected FIELD=KEY with FIELD one of age, sex, report"):
        parse_header_field_map(["height=h"])
    with pytest.raises(ValueError, match="applies to source 'wfdb'"):
        list_records("mimic", root, header_fields=mapping)

    from diffusets_core.cli import main

    args = ["prepare", str(tmp_path / "run"), "--source", "wfdb", "--data-dir", str(root), "--workers", "1"]
    flags = [
        "--header-field",
        "age=patient_age",
        "--header-field",
        "sex=gender_code",
        "--header-field",
        "report=findings",
    ]
    assert main([*args, "--quiet", *flags]) == 0
    info = json.loads((tmp_path / "run/data/prepare.json").read_text())
    assert info["counts"]["ok"] == 4 and info["fingerprint"]["header_fields"] == {
        "age": "patient_age",
        "sex": "gender_code",
        "report": ["findings"],
    }


def test_a_mapped_key_missing_from_a_header_is_the_reason(tmp_path):
    write_folder_record(tmp_path, "r", comments=["age: 50", "sex: M", "report: Sinus rhythm"])
    (ref,) = read_folder(tmp_path, header_fields={"age": "years"})
    assert (
        ref.age is None and "no 'years: ...' comment (header field map age=years)" in ref.extra["demographics_missing"]
    )


# ------------------------------------------------------------------ nothing usable is an error
def test_prepare_with_no_usable_record_fails_naming_the_commonest_reason(tmp_path):
    root = tmp_path / "unknown"
    for i in range(4):
        _record_with_raw_comments(root, f"r{i}", ["#Age of patient = 51", "#Findings: Sinus rhythm"])
    _record_with_raw_comments(root, "short", ["#age: 50", "#sex: M", "#report: Sinus rhythm"], seconds=6.0)
    with pytest.raises(NoUsableRecordsError) as e:
        prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    msg = str(e.value)
    assert "none of the 5 records is usable" in msg and "demographics (4 of 5)" in msg and "too_short (1)" in msg
    assert "--header-field" in msg  # the reason's own advice is in the example
    assert not (tmp_path / "run/data/manifest.csv").exists()

    from diffusets_core.cli import main

    rc = main(
        ["prepare", str(tmp_path / "run"), "--source", "wfdb", "--data-dir", str(root), "--quiet", "--workers", "1"]
    )
    assert rc != 0  # was 0, with 0 usable records


def test_an_empty_split_names_the_commonest_skip_reason(tmp_path):
    root = tmp_path / "few"
    write_folder_record(root, "patient1/a", seed=1)
    write_folder_record(root, "patient1/b", seed=2)
    write_folder_record(root, "patient2/a", seed=3)
    flat = synthetic_ecg(70, 500, 10.0, 4)
    flat[:, 3] = 0.0
    for k in (3, 4, 5):
        write_folder_record(root, f"patient{k}/a", flat)
    with pytest.raises(SplitError, match=r"skipped: flat_lead \(3 of 6\), e\.g\. flat_lead: lead aVR is constant"):
        prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)


# ------------------------------------------------------------------ a longer signal file is read as wfdb reads it
def test_padded_signal_file_is_read_like_the_unpadded_one(tmp_path):
    sig = synthetic_ecg(70, 500, 10.0, 1)
    write_wfdb(tmp_path, "r", sig, 500, CANONICAL_LEADS, gain=200.0)
    plain = read_record(tmp_path / "r")
    dat = tmp_path / "r.dat"
    size = dat.stat().st_size
    dat.write_bytes(dat.read_bytes() + b"\0" * (1024 - size % 1024))  # padded to whole 1 KiB blocks
    assert wfdb.rdrecord(str(tmp_path / "r")).p_signal.shape == (5000, 12)  # wfdb reads it
    padded = read_record(tmp_path / "r")  # was: "signal file larger than its header says"
    np.testing.assert_array_equal(padded.signal, plain.signal)
    assert padded.notes == [
        f"signal file r.dat holds {1024 - size % 1024} byte(s) after the {size} the header describes (not read)"
    ]
    ref = RecordRef(record_id="r", subject_id="s", path=str(tmp_path / "r"), report="Sinus rhythm", age=50.0, sex="M")
    res = process_ref(ref, CFG)
    assert res.status == "ok" and res.manifest_notes == padded.notes
    # a file shorter than the header says is still refused, by name
    dat.write_bytes(dat.read_bytes()[: size - 24])
    with pytest.raises(TruncatedSignalError, match=rf"r\.dat: truncated signal file: holds {size - 24} bytes"):
        read_record(tmp_path / "r")


# ------------------------------------------------------------------ lengths are printed as they are
def test_a_4999_sample_record_is_reported_with_its_real_length(tmp_path):
    write_wfdb(tmp_path, "r", synthetic_ecg(70, 500, 10.0, 1)[:4999], 500, CANONICAL_LEADS, gain=200.0)
    ref = RecordRef(record_id="r", subject_id="s", path=str(tmp_path / "r"), report="Sinus rhythm", age=50.0, sex="M")
    res = process_ref(ref, CFG)
    assert res.reason == (
        "too_short: record is 9.998 s long, shorter than the 10 s window: 4999 samples at 500 Hz, the window needs 5000"
    )  # was "record is 10.00 s long, shorter than the 10 s window"


def test_flat_run_and_gap_lengths_are_not_rounded_onto_their_limit(tmp_path):
    sig = synthetic_ecg(70, 500, 10.0, 2)
    sig[1000:1501, 1] = 2.5  # 501 equal samples = 1.002 s, limit 1 s
    write_wfdb(tmp_path, "flat", sig, 500, CANONICAL_LEADS, gain=200.0)
    ref = RecordRef(record_id="f", subject_id="s", path=str(tmp_path / "flat"), report="x", age=50.0, sex="M")
    assert (
        "constant (" in process_ref(ref, CFG).reason
        and "for 1.002 s (501 samples at 500 Hz)" in process_ref(ref, CFG).reason
    )  # was "for 1.00 s (max 1 s)"
    assert format_duration(2000, 1000) == "2.00 s (2000 samples at 1000 Hz)"  # plain values keep two decimals
    assert format_duration(2569, 257) == "9.996109 s (2569 samples at 257 Hz)"
    gap = synthetic_ecg(70, 500, 10.0, 3)
    gap[2000:2101, 4] = np.nan  # 101 missing samples = 0.202 s, limit 0.2 s
    write_wfdb(tmp_path, "gap", gap, 500, CANONICAL_LEADS, gain=200.0)
    ref = RecordRef(record_id="g", subject_id="s", path=str(tmp_path / "gap"), report="x", age=50.0, sex="M")
    assert process_ref(ref, CFG).reason == (
        "missing_samples: lead aVL has a gap of 0.202 s (101 samples at 500 Hz) of missing samples (max 0.2 s)"
    )


def test_an_unreadable_value_under_a_known_key_is_not_sent_to_header_field(tmp_path):
    # the Challenge writes "Age: NaN" when the age is unknown: the key is read, so naming it again cannot help
    root = tmp_path / "challenge"
    write_folder_record(root, "A0001", seed=1, comments=["Age: NaN", "Sex: Female", "Dx: 426783006"])
    (ref,) = read_folder(root)
    assert ref.age is None and "--header-field" not in ref.extra["demographics_missing"]
    assert "age unknown" in ref.extra["demographics_missing"]


def test_an_empty_report_names_the_option_that_maps_the_report_key(tmp_path):
    from diffusets_core.data.preprocess import PreprocessConfig, SkipRecord, check_report

    with pytest.raises(SkipRecord, match=r"empty report .*--header-field report=KEY"):
        check_report("  ", PreprocessConfig())
