"""Real ECG data as people have it. Each quirk on a small input written here, the right value asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from data_trees import beat_train, synthetic_ecg, write_folder_record, write_multisegment, write_ptbxl_tree, write_wfdb
from scipy.signal import resample

from diffusets_core.data.folder import parse_header_comments, read_folder
from diffusets_core.data.leads import (
    CANONICAL_LEADS,
    LeadMappingError,
    canonical_lead_name,
    map_leads,
    parse_lead_label,
)
from diffusets_core.data.prepare import PrepareConfig, list_records, prepare_dataset
from diffusets_core.data.preprocess import PreprocessConfig, heart_rate_from_rpeaks, process_ref
from diffusets_core.data.records import DatasetLayoutError, RecordRef
from diffusets_core.data.subjects import SplitError, check_subjects
from diffusets_core.data.wfdb_io import (
    HeaderError,
    MissingLeadError,
    decode_comment_value,
    encode_comment_value,
    header_comments,
    read_record,
)

CFG = PreprocessConfig()
AVR = CANONICAL_LEADS.index("aVR")
II = CANONICAL_LEADS.index("II")


def _ref(path, **kw) -> RecordRef:
    base = dict(
        record_id="r",
        subject_id="s",
        path=str(path),
        report="Sinus tachycardia",
        age=60.0,
        sex="M",
        rr_interval_ms=None,
        source="test",
    )
    base.update(kw)
    return RecordRef(**base)


def _manifest(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "data" / "manifest.csv", dtype=str, keep_default_na=False)


# ------------------------------------------------------------------ 1. heart rates above 200 bpm (and below 40)
def test_230_bpm_from_machine_rr_and_from_r_peaks(tmp_path):
    write_wfdb(tmp_path, "tachy", beat_train(60000 / 261), 500, CANONICAL_LEADS, gain=200.0)
    rr = process_ref(_ref(tmp_path / "tachy", rr_interval_ms=261.0), CFG)
    assert rr.status == "ok" and rr.hr_source == "rr_interval" and rr.hr == pytest.approx(229.885, abs=0.01)
    rp = process_ref(_ref(tmp_path / "tachy", rr_interval_ms=None), CFG)
    assert rp.status == "ok" and rp.hr_source == "rpeaks" and rp.hr == pytest.approx(229.9, abs=1.0)


@pytest.mark.parametrize("bpm", [24, 40, 210, 260, 290])
def test_r_peak_rate_is_right_over_the_whole_range(bpm):
    # before: 210 -> 105, 260 -> 130 (neurokit2's 0.3 s refractory period), 24 -> 47 and 40 -> 48 (T waves counted)
    hr, lead = heart_rate_from_rpeaks(beat_train(bpm), 500)
    assert lead == "II" and hr == pytest.approx(bpm, rel=0.01)


def test_hr_nk_feature_never_scores_a_halved_rate():
    from diffusets_core.eval.features import measure_features

    sigs = [resample(beat_train(bpm), 1024, axis=0).T.astype(np.float32) for bpm in (230, 60, 24)]
    table = measure_features(np.stack(sigs), xqrs=True)
    assert table["hr_nk"].iloc[0] == pytest.approx(229.9, abs=1.5)  # was 115
    assert table["hr_xqrs"].iloc[0] == pytest.approx(229.9, abs=2.5)
    assert table["hr_nk"].iloc[1] == pytest.approx(60.0, abs=1.0)
    slow = table["hr_nk"].iloc[2]  # neurokit2 alone says ~43 at 102.4 Hz: either right or refused, never 43
    assert math.isnan(slow) or slow == pytest.approx(24.0, rel=0.02)
    assert math.isnan(slow) == bool(table["reason"].iloc[2])


# ------------------------------------------------------------------ 2. subject ids and splits
def _ptbxl_style_tree(root: Path, n: int = 6) -> Path:
    for eid in range(1, n + 1):
        write_folder_record(
            root,
            f"records500/00000/{eid:05d}_hr",
            seed=eid,
            comments=[f"age: {40 + eid}", "sex: M", "report: sinus rhythm"],
        )
    return root


def _challenge_tree(root: Path, dx: list[str]) -> Path:
    for i, codes in enumerate(dx, start=1):
        write_folder_record(
            root,
            f"training/cpsc_2018/g1/A{i:04d}",
            seed=i,
            comments=[f"Age: {50 + i}", "Sex: Female", f"Dx: {codes}", "Rx: Unknown", "Hx: Unknown"],
        )
    return root


def test_ptbxl_style_folder_gives_one_subject_per_record_and_real_splits(tmp_path):
    root = _ptbxl_style_tree(tmp_path / "ptbxl")
    refs = read_folder(root)
    assert [r.subject_id for r in refs] == [f"records500/00000/{i:05d}_hr" for i in range(1, 7)]  # was "records500"
    res = prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    assert res.n_ok == 6 and res.splits == {"train": 4, "val": 1, "test": 1}  # was 6 / 0 / 0
    info = json.loads((tmp_path / "run/data/prepare.json").read_text())
    assert info["subjects"]["n_ok"] == 6


def test_challenge_style_folder_splits(tmp_path):
    root = _challenge_tree(tmp_path / "ch", ["426783006"] * 6)
    (tmp_path / "map.csv").write_text("code,text\n426783006,Sinus rhythm\n")
    res = prepare_dataset(
        "wfdb", root, tmp_path / "run", PrepareConfig(code_map=tmp_path / "map.csv"), workers=1, progress=False
    )
    assert res.splits == {"train": 4, "val": 1, "test": 1}  # was train 6 ("training" as the only subject)


def test_collapsed_subject_ids_are_an_error_that_says_why(tmp_path):
    root = tmp_path / "mine"
    for i in range(5):  # every header names the same patient
        write_folder_record(root, f"r{i}", seed=i, comments=["age: 50", "sex: M", "report: Sinus rhythm", "patient: 7"])
    with pytest.raises(SplitError) as e:
        prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    msg = str(e.value)
    assert "5 records but only 1 subject id(s) ['7']" in msg and "auto: header field" in msg and "--subject-id" in msg
    assert not (tmp_path / "run/data/manifest.csv").exists()
    # naming the id elsewhere works: each record its own subject
    res = prepare_dataset("wfdb", root, tmp_path / "run", PrepareConfig(subject_id="record"), workers=1, progress=False)
    assert res.splits == {"train": 3, "val": 1, "test": 1}


def test_implausibly_few_subjects_for_many_records():
    refs = [RecordRef(record_id=f"r{i}", subject_id=f"g{i % 3}", path="") for i in range(153)]
    with pytest.raises(SplitError, match=r"153 records from only 3 subject ids \(51 per subject"):
        check_subjects(refs)
    check_subjects(refs[:150])  # 50 per subject is still accepted


def test_subject_id_from_path_pattern_csv_and_header(tmp_path):
    root = tmp_path / "by_patient"
    names = ["alice/visit1/r", "alice/visit2/r", "bob/r", "carol/r", "dave/r", "loose"]
    for i, rel in enumerate(names):
        write_folder_record(
            root, rel, seed=i, comments=["age: 50", "sex: F", "report: Sinus rhythm", f"mrn: M{i // 2}"]
        )
    refs = {r.record_id: r for r in list_records("wfdb", root, subject_id=r"path:^(?P<subject>[^/]+)/")}
    assert refs["alice/visit1/r"].subject_id == refs["alice/visit2/r"].subject_id == "alice"
    assert refs["bob/r"].subject_id == "bob" and refs["loose"].skip_reason.startswith(
        "record path 'loose' does not match"
    )
    res = prepare_dataset(
        "wfdb", root, tmp_path / "run", PrepareConfig(subject_id=r"path:^([^/]+)/"), workers=1, progress=False
    )
    m = _manifest(tmp_path / "run")
    loose = m.set_index("record_id").loc["loose"]
    assert loose.status == "skipped" and loose.reason.startswith("subject_id: record path 'loose'")
    assert res.n_ok == 5 and m[m.status == "ok"].groupby("subject_id").split.nunique().max() == 1

    table = tmp_path / "subjects.csv"
    pd.DataFrame({"record_id": names[:5], "subject_id": ["A", "A", "B", "C", "D"]}).to_csv(table, index=False)
    refs = {r.record_id: r for r in list_records("wfdb", root, subject_id=f"csv:{table}")}
    assert refs["alice/visit2/r"].subject_id == "A" and f"has no subject_id in {table}" in refs["loose"].skip_reason
    refs = {r.record_id: r for r in list_records("wfdb", root, subject_id="header:MRN")}
    assert [refs[n].subject_id for n in names] == ["M0", "M0", "M1", "M1", "M2", "M2"]
    with pytest.raises(ValueError, match="expected 'auto', 'record'"):
        list_records("wfdb", root, subject_id="folder")


def test_empty_split_after_skips_is_an_error(tmp_path):
    root = tmp_path / "few"
    write_folder_record(root, "patient1/a", seed=1)
    write_folder_record(root, "patient1/b", seed=2)
    write_folder_record(root, "patient2/a", seed=3)
    flat = synthetic_ecg(70, 500, 10.0, 4)
    flat[:, 3] = 0.0
    write_folder_record(root, "patient3/a", flat)
    write_folder_record(root, "patient4/a", flat)
    with pytest.raises(SplitError, match=r"3 usable records from 2 subject\(s\) give an empty"):
        prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)


# ------------------------------------------------------------------ 3. numeric diagnosis codes
def test_snomed_codes_are_mapped_or_the_record_is_skipped(tmp_path):
    root = _challenge_tree(
        tmp_path / "ch", ["426783006,164865005", "426783006", "164889003", "426783006", "426783006,999999999"]
    )
    # the Challenge's own dx_mapping_scored.csv layout is accepted as the mapping
    (tmp_path / "dx_mapping_scored.csv").write_text(
        "Dx,SNOMEDCTCode,Abbreviation,CPSC,Total,Notes\n"
        "sinus rhythm,426783006,SNR,918,28971,\n"
        "myocardial infarction,164865005,MI,0,5261,\n"
        "atrial fibrillation,164889003,AF,1221,5255,\n"
    )
    run = tmp_path / "run"
    prepare_dataset(
        "wfdb", root, run, PrepareConfig(code_map=tmp_path / "dx_mapping_scored.csv"), workers=1, progress=False
    )
    m = _manifest(run).set_index("record_id")
    assert m.loc["training/cpsc_2018/g1/A0001", "report"] == "sinus rhythm|myocardial infarction"
    assert m.loc["training/cpsc_2018/g1/A0003", "report"] == "atrial fibrillation"
    bad = m.loc["training/cpsc_2018/g1/A0005"]
    assert bad.status == "skipped" and bad.reason == (
        f"dx_codes: diagnosis code(s) 999999999 not in the code mapping {tmp_path / 'dx_mapping_scored.csv'}"
    )
    assert not m.report.str.contains(r"\d{5,}").any()  # no code text reaches the manifest (or an embedder)


def test_codes_without_a_mapping_and_coded_reports_are_skipped(tmp_path):
    root = _challenge_tree(tmp_path / "ch", ["426783006"])
    (ref,) = read_folder(root)
    assert ref.report == "" and ref.skip_reason.startswith("header holds diagnosis codes 426783006 and no code mapping")
    assert process_ref(ref, CFG).reason.startswith("dx_codes: header holds diagnosis codes 426783006")
    # any reader: a statement made only of codes never passes
    write_wfdb(tmp_path, "r", synthetic_ecg(70, 500, 10.0, 1), 500, CANONICAL_LEADS, gain=200.0)
    res = process_ref(_ref(tmp_path / "r", report="Sinus rhythm|164889003, 426783006", rr_interval_ms=850.0), CFG)
    assert (
        res.reason == "coded_report: statement '164889003, 426783006' is a diagnosis code, not text "
        "(give a code -> text mapping: prepare --code-map CSV)"
    )


# ------------------------------------------------------------------ 4. implausible signals
def test_flat_lead_and_wrong_units_are_refused_and_counted(tmp_path):
    root = tmp_path / "sig"
    for i in range(3):
        write_folder_record(root, f"good{i}", seed=i)
    flat = synthetic_ecg(70, 500, 10.0, 5)
    flat[:, CANONICAL_LEADS.index("V3")] = 0.0  # disconnected electrode
    write_folder_record(root, "flat", flat)
    lead_off = synthetic_ecg(70, 500, 10.0, 6)
    lead_off[2000:3000, II] = lead_off[2000, II]  # 2 s lead off
    write_folder_record(root, "lead_off", lead_off)
    uv = synthetic_ecg(70, 500, 10.0, 7) * 1000.0  # microvolts under an "mV" label
    write_folder_record(root, "microvolts", uv, gain=10.0)
    write_folder_record(root, "volts", synthetic_ecg(70, 500, 10.0, 8) / 1000.0, gain=20000.0)
    run = tmp_path / "run"
    prepare_dataset("wfdb", root, run, PrepareConfig(subject_id="record"), workers=1, progress=False)
    m = _manifest(run).set_index("record_id")
    assert (
        m.loc["flat", "reason"] == "flat_lead: lead V3 is constant (0.000 mV) for the whole 10 s window "
        "(disconnected electrode?)"
    )
    assert (
        m.loc["lead_off", "reason"].startswith("flat_lead: lead II is constant")
        and "for 2.00 s" in m.loc["lead_off", "reason"]
    )
    peak = float(np.ptp(uv[:, 0:12], axis=0).max())
    assert (
        m.loc["microvolts", "reason"].startswith("amplitude: lead")
        and f"{peak:.4g} mV peak to peak" in m.loc["microvolts", "reason"]
    )
    assert m.loc["volts", "reason"].startswith("amplitude: the largest lead")
    info = json.loads((run / "data/prepare.json").read_text())
    assert info["skip_reasons"] == {"amplitude": 2, "flat_lead": 2} and info["counts"]["ok"] == 3


# ------------------------------------------------------------------ 5. lead labels
@pytest.mark.parametrize(
    "label, expected",
    [
        ("-aVR", ("aVR", -1)),
        ("Lead -aVR", ("aVR", -1)),
        ("\u2212aVR", ("aVR", -1)),
        ("aVRneg", ("aVR", -1)),
        ("aVR (inverted)", ("aVR", -1)),
        ("MDC_ECG_LEAD_-aVR", ("aVR", -1)),
        ("MDC_ECG_LEAD_AVR", ("aVR", 1)),
        ("ECG-II", ("II", 1)),
        ("EKG_V1", ("V1", 1)),
        ("II (mV)", ("II", 1)),
        ("Lead I (Einthoven)", ("I", 1)),
        ("DIII", ("III", 1)),
        ("C3", ("V3", 1)),
        ("avf", ("aVF", 1)),
        ("V 1", ("V1", 1)),
        ("+V2", ("V2", 1)),
        ("Derivación DII", ("II", 1)),
        ("I_mV", ("I", 1)),
        ("V4R", None),
        ("VR", None),
        ("MLII", None),
        ("vx", None),
        ("V1-V2", None),
        ("aVR-", None),
    ],
)
def test_lead_labels(label, expected):
    assert parse_lead_label(label) == expected


def test_inverted_label_is_read_with_its_polarity_and_near_misses_are_named(tmp_path):
    truth = synthetic_ecg(70, 500, 10.0, 2)
    disk = truth.copy()
    disk[:, AVR] *= -1
    names = list(CANONICAL_LEADS)
    names[AVR] = "-aVR"  # Cabrera systems write inverted aVR
    write_wfdb(tmp_path, "cab", disk, 500, names, gain=200.0)
    rec = read_record(tmp_path / "cab")
    np.testing.assert_allclose(rec.signal[:, AVR], truth[:, AVR], atol=0.003)  # was -aVR, silently
    assert rec.notes == ["lead aVR taken from inverted channel '-aVR' (multiplied by -1)"]
    assert canonical_lead_name("-aVR") is None  # sign-blind callers cannot mis-map it
    names[AVR] = "VR"
    write_wfdb(tmp_path, "wilson", truth, 500, names, gain=200.0)
    with pytest.raises(MissingLeadError, match="channel 'VR': Wilson's unaugmented VR is not aVR"):
        read_record(tmp_path / "wilson")
    with pytest.raises(LeadMappingError, match="channel 'aVR-' looks like aVR but its sign or spelling"):
        map_leads([*CANONICAL_LEADS[:3], "aVR-", *CANONICAL_LEADS[4:]])


# ------------------------------------------------------------------ 6. multi-segment records
def test_multisegment_record_is_read_whole(tmp_path):
    root = tmp_path / "ms"
    truth = synthetic_ecg(70, 500, 10.0, 3)
    write_multisegment(root, "rec", truth, 500, CANONICAL_LEADS, comments=["age: 60", "sex: M", "report: Sinus rhythm"])
    for i in range(2):
        write_folder_record(root, f"other{i}", seed=i)
    rec = read_record(root / "rec")
    assert rec.n_samples == 5000
    np.testing.assert_allclose(rec.signal, truth, atol=0.003)
    refs = read_folder(root)
    assert [r.record_id for r in refs] == ["other0", "other1", "rec"]  # segments are not records of their own
    prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    m = _manifest(tmp_path / "run").set_index("record_id")
    assert m.loc["rec", "status"] == "ok" and len(m) == 3  # was "header lists no signals" + 2x "too short"


def test_variable_layout_multisegment_with_a_gap(tmp_path):
    truth = synthetic_ecg(70, 500, 10.0, 1)
    write_wfdb(tmp_path, "v_0001", truth[:2000], 500, CANONICAL_LEADS, gain=200.0)
    write_wfdb(tmp_path, "v_0002", truth[2500:], 500, CANONICAL_LEADS, gain=200.0)
    layout = ["v_layout 12 500 0"] + [f"~ 16 200/mV 16 0 0 0 0 {n}" for n in CANONICAL_LEADS]
    (tmp_path / "v_layout.hea").write_text("\n".join(layout) + "\n")
    (tmp_path / "v.hea").write_text("v/4 12 500 5000\nv_layout 0\nv_0001 2000\n~ 500\nv_0002 2500\n")
    rec = read_record(tmp_path / "v")
    assert rec.n_samples == 5000 and np.isnan(rec.signal[2000:2500]).all()
    np.testing.assert_allclose(rec.signal[2500:], truth[2500:], atol=0.003)
    assert [r.record_id for r in read_folder(tmp_path)] == ["v"]
    res = process_ref(_ref(tmp_path / "v", rr_interval_ms=850.0), CFG)  # the 1 s gap is the real failure
    assert res.reason == "missing_samples: lead I is 10% missing (max 5%)"


# ------------------------------------------------------------------ 7. duplicated lead
def test_duplicated_lead_keeps_the_first_complete_channel(tmp_path):
    truth = synthetic_ecg(70, 500, 10.0, 4)
    short_ii = truth[:, II].copy()
    short_ii[1250:] = np.nan  # the 2.5 s print-out column; the 13th channel is the full rhythm strip
    disk = np.concatenate([truth[:, :II], short_ii[:, None], truth[:, II + 1 :], truth[:, II : II + 1]], axis=1)
    names = [*CANONICAL_LEADS, "II"]
    root = tmp_path / "dup"
    path = write_folder_record(root, "r13", disk, sig_names=[*CANONICAL_LEADS, "II_rhythm"])
    hea = path.with_suffix(".hea")  # wfdb.wrsamp refuses duplicate names; real carts write them
    hea.write_text(hea.read_text().replace(" II_rhythm\n", " II\n"))
    assert wfdb.rdheader(str(path)).sig_name == names
    for i in range(2):
        write_folder_record(root, f"ok{i}", seed=i)
    rec = read_record(root / "r13")
    np.testing.assert_allclose(rec.signal[:, II], truth[:, II], atol=0.003)
    assert rec.notes == [
        "lead II appears in 2 channels: kept channel 13 ('II', the first complete one), dropped channel(s) 2 ('II')"
    ]
    prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    row = _manifest(tmp_path / "run").set_index("record_id").loc["r13"]
    assert row.status == "ok" and row.notes == rec.notes[0]  # was refused: "lead(s) II appear more than once"
    assert map_leads(names).indices[II] == 1  # no completeness known: the first one
    with pytest.raises(LeadMappingError, match="missing lead"):
        map_leads(names[:-2])


# ------------------------------------------------------------------ 8. skip reasons name the real cause
def test_unparseable_header_is_reported_as_such(tmp_path):
    root = tmp_path / "bad"
    for i in range(3):
        write_folder_record(root, f"ok{i}", seed=i)
    p = write_folder_record(root, "broken", seed=5)
    hea = p.with_suffix(".hea")
    lines = hea.read_text().splitlines()
    lines[3] = lines[3].replace(" 16 ", " sixteen ", 1)  # a signal line wfdb cannot parse
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(HeaderError, match=r"broken.hea: line 4: 'broken.dat sixteen .*' is not a WFDB signal line"):
        read_record(p)
    prepare_dataset("wfdb", root, tmp_path / "run", workers=1, progress=False)
    reason = _manifest(tmp_path / "run").set_index("record_id").loc["broken", "reason"]
    assert reason.startswith(f"bad_header: {hea}: line 4:")  # was "demographics: age and sex unknown"


# ------------------------------------------------------------------ 9. exclusion list
def test_exclusion_list(tmp_path):
    root = write_ptbxl_tree(tmp_path / "ptbxl", [{"ecg_id": i, "patient_id": 100 + i} for i in range(1, 6)])
    excl = tmp_path / "excluded.txt"
    excl.write_text("# records the authors dropped\n2\n\n4  # noisy\n99\n")
    prepare_dataset("ptbxl", root, tmp_path / "run", PrepareConfig(exclude=excl), workers=1, progress=False)
    m = _manifest(tmp_path / "run").set_index("record_id")
    assert list(m.status) == ["ok", "skipped", "ok", "skipped", "ok"]
    assert m.loc["2", "reason"] == m.loc["4", "reason"] == f"excluded: excluded by {excl}"
    info = json.loads((tmp_path / "run/data/prepare.json").read_text())
    assert info["exclude"] == {"file": str(excl), "listed": 3, "excluded_records": 2}
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.txt")):
        prepare_dataset("ptbxl", root, tmp_path / "run2", PrepareConfig(exclude=tmp_path / "nope.txt"), progress=False)


def test_cli_prepare_wires_the_options(tmp_path):
    from diffusets_core.cli import main

    root = _challenge_tree(tmp_path / "ch", ["426783006", "164889003", "426783006", "426783006"])
    (tmp_path / "map.csv").write_text("code,text\n426783006,Sinus rhythm\n164889003,Atrial fibrillation\n")
    (tmp_path / "ex.txt").write_text("training/cpsc_2018/g1/A0004\n")
    rc = main(
        [
            "prepare",
            str(tmp_path / "run"),
            "--source",
            "wfdb",
            "--data-dir",
            str(root),
            "--workers",
            "1",
            "--quiet",
            "--code-map",
            str(tmp_path / "map.csv"),
            "--exclude",
            str(tmp_path / "ex.txt"),
            "--subject-id",
            "record",
        ]
    )
    assert rc == 0
    m = _manifest(tmp_path / "run")
    assert list(m.report[:3]) == ["Sinus rhythm", "Atrial fibrillation", "Sinus rhythm"]
    assert m.reason[3] == f"excluded: excluded by {tmp_path / 'ex.txt'}"


# ------------------------------------------------------------------ 10. what we write into a header reads back
AWKWARD = [
    "ST elevation\nconsider anterior injury",
    "Fibrillation auriculaire \u2013 rapide (\u00e9)",
    "QRS 50% wider",
    "tab\there",
    "#leading hash",
    "trailing hash #",
    "  padded  ",
    "%41 is not an escape here",
]


def test_header_comments_round_trip(tmp_path):
    lines = header_comments(AWKWARD, age=63, sex="F", hr=115.0)
    write_wfdb(tmp_path, "gen", synthetic_ecg(70, 500, 10.0, 1), 500, CANONICAL_LEADS, gain=200.0, comments=lines)
    assert wfdb.rdheader(str(tmp_path / "gen")).comments == lines  # wfdb reads it
    rec = read_record(tmp_path / "gen")  # our reader reads it
    meta = parse_header_comments(rec.comments)
    assert meta["report"] == "|".join(s.strip() for s in AWKWARD)  # the same statements, in order
    assert (meta["age"], meta["sex"], meta["fields"]["hr"]) == (63.0, "F", "115.0")
    (ref,) = read_folder(tmp_path)
    assert ref.report.split("|") == [s.strip() for s in AWKWARD]
    for s in AWKWARD:
        assert decode_comment_value(encode_comment_value(s)) == s.strip()
    assert encode_comment_value("Sinus rhythm, normal ECG") == "Sinus rhythm, normal ECG"  # plain text unchanged


# ------------------------------------------------------------------ 11. relative paths in profiles and --data-dir
def test_relative_profile_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    from diffusets_core.config import load_profile

    prof = tmp_path / "profiles" / "mine.yaml"
    prof.parent.mkdir()
    prof.write_text(
        "data:\n  source: wfdb\n  data_dir: data/my-wfdb\n  exclude: lists/ex.txt\n"
        "  code_map: maps/dx.csv\n  subject_id: csv:ids.csv\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data = load_profile(prof).data
    assert data.data_dir == str(work / "data/my-wfdb")  # not notebooks/data/my-wfdb
    assert (data.exclude, data.code_map, data.subject_id) == (
        str(work / "lists/ex.txt"),
        str(work / "maps/dx.csv"),
        f"csv:{work / 'ids.csv'}",
    )
    with pytest.raises(DatasetLayoutError, match=str(work / "data/my-wfdb")):
        prepare_dataset("wfdb", "data/my-wfdb", tmp_path / "run", progress=False)


def test_unchanged_on_real_ptb_diagnostic(tmp_path):
    import shutil

    shutil.copytree(Path(__file__).parent / "fixtures" / "ptb-diagnostic", tmp_path / "ptbdb" / "patient001")
    (ref,) = read_folder(tmp_path / "ptbdb")
    assert (
        ref.subject_id == "patient001"
        and ref.report == "Myocardial infarction|Acute infarction: infero-latera|Diabetes mellitus"
    )
    res = process_ref(ref, CFG)
    assert res.status == "ok" and res.hr == pytest.approx(81.7, abs=0.2) and res.manifest_notes == []
