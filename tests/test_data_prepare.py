"""prepare_dataset end to end: manifest contract, skips with reasons, workers, resumption, atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_trees import mimic_rel_path, simple_mimic_records, synthetic_ecg, write_mimic_tree, write_ptbxl_tree

from diffusets_core.data import prepare as prepare_mod
from diffusets_core.data.prepare import PrepareConfig, list_records, prepare_dataset
from diffusets_core.data.preprocess import PreprocessConfig, process_ref
from diffusets_core.data.records import DatasetLayoutError
from diffusets_core.data.store import MANIFEST_COLUMNS, SignalStore, atomic_save_npy, atomic_write_text

PTB_DIAG_DIR = Path(__file__).parent / "fixtures" / "ptb-diagnostic"
N_GOOD = 22


@pytest.fixture(scope="module")
def mimic_root(tmp_path_factory) -> Path:
    """22 good records of 8 subjects + one of each failure kind."""
    root = tmp_path_factory.mktemp("mimic")
    recs = simple_mimic_records(N_GOOD, subjects=8)
    recs[3]["rr_interval"] = 0  # implausible -> R peaks
    bad = [
        {"subject_id": 10000900, "study_id": 49000001, "measurements": False},  # no measurements row
        {"subject_id": 10000901, "study_id": 49000002},  # truncated .dat (below)
        {"subject_id": 10000902, "study_id": 49000003, "seconds": 6.0},  # too short
        {"subject_id": 10000903, "study_id": 49000004},  # not in patients table
        {"subject_id": 10000904, "study_id": 49000005, "reports": []},  # empty report
    ]
    patients = {r["subject_id"]: (30 + r["subject_id"] % 40, "MF"[r["subject_id"] % 2]) for r in recs + bad}
    del patients[10000903]
    write_mimic_tree(root, recs + bad, patients=patients)
    dat = (root / mimic_rel_path(10000901, 49000002)).with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:7777])
    return root


def _files(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted((run / "data").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference_run(mimic_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref_run")
    prepare_dataset("mimic", mimic_root, run, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    return run


def test_manifest_contract_and_reasons(reference_run, mimic_root):
    m = pd.read_csv(reference_run / "data/manifest.csv", dtype=str, keep_default_na=False)
    assert tuple(m.columns) == MANIFEST_COLUMNS
    assert len(m) == N_GOOD + 5  # every source record has a row
    ok, sk = m[m.status == "ok"], m[m.status == "skipped"]
    assert len(ok) == N_GOOD and (ok.reason == "").all() and (ok.split != "").all()
    reasons = dict(zip(sk.record_id, sk.reason))
    assert reasons["49000001"].startswith("metadata: no machine_measurements.csv row")
    assert reasons["49000002"].startswith("truncated:") and "49000002.dat" in reasons["49000002"]
    assert reasons["49000003"].startswith("too_short:")
    assert reasons["49000004"].startswith("demographics: subject not in patients.csv")
    assert reasons["49000005"].startswith("no_report:")
    assert (sk.split == "").all() and (sk.shard == "").all() and (sk.hr == "").all()
    assert set(ok.hr_source) == {"rr_interval", "rpeaks"}
    assert ok.set_index("record_id").loc["40000000", "report"] == "Sinus rhythm|Statement 0|Normal ECG"
    assert ok.set_index("record_id").loc["40000000", "source_path"] == "files/p1000/p10000032/s40000000/40000000"
    assert set(ok.sex) <= {"M", "F"}
    # no subject in two splits
    assert (ok.groupby("subject_id").split.nunique() == 1).all()
    info = json.loads((reference_run / "data/prepare.json").read_text())
    assert info["source"] == "mimic" and info["seed"] == 1 and info["preprocess"]["out_len"] == 1024
    assert info["package_version"] and info["counts"] == {"total": 27, "ok": 22, "skipped": 5}
    assert not (reference_run / "data/parts").exists()


def test_shard_and_row_locate_the_right_signal(reference_run, mimic_root):
    store = SignalStore(reference_run)
    assert store.fs == pytest.approx(102.4) and len(store) == N_GOOD
    refs = {r.record_id: r for r in list_records("mimic", mimic_root)}
    m = store.manifest
    for _, row in m[m.status == "ok"].sample(5, random_state=0).iterrows():
        arr = np.load(reference_run / f"data/signals/shard_{int(row['shard']):05d}.npy", mmap_mode="r")
        assert arr.dtype == np.float32 and arr.shape[1:] == (12, 1024)
        expected = process_ref(refs[row["record_id"]], PreprocessConfig()).signal
        np.testing.assert_array_equal(arr[int(row["row"])], expected)
    allsig = store.signals()
    assert allsig.shape == (N_GOOD, 12, 1024)
    for split in ("train", "val", "test"):
        recs = store.records(split)
        sig = store.signals(split)
        assert len(sig) == len(recs) > 0
        first = recs.iloc[0]
        np.testing.assert_array_equal(sig[0], store.shard(int(first["shard"]))[int(first["row"])])
    # the real MIMIC lead order was undone: aVL (canonical 4) carries the 3 Hz tag of the truth
    rec0 = store.records().iloc[0]
    truth = synthetic_ecg(60.0, 500, 10.0, 0)
    from scipy.signal import resample

    np.testing.assert_allclose(store.signals()[0], resample(truth, 1024, axis=0).T, atol=0.01)
    assert rec0["record_id"] == "40000000"


def test_parallel_workers_give_identical_files(reference_run, mimic_root, tmp_path):
    prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=2, progress=False)
    assert _files(tmp_path) == _files(reference_run)


class _Crash(RuntimeError):
    pass


def test_resume_after_crash_in_worker(reference_run, mimic_root, tmp_path, monkeypatch):
    calls = {"n": 0}

    def crashing(ref, config):
        calls["n"] += 1
        if calls["n"] > 19:  # after two 8-record shards were committed
            raise _Crash("simulated crash")
        return process_ref(ref, config)

    monkeypatch.setattr(prepare_mod, "process_ref", crashing)
    with pytest.raises(_Crash):
        prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    data = tmp_path / "data"
    assert sorted(p.name for p in (data / "parts").glob("part_*.csv")) == ["part_00000.csv", "part_00001.csv"]
    assert not (data / "manifest.csv").exists()

    seen = []
    monkeypatch.setattr(
        prepare_mod, "process_ref", lambda ref, cfg: seen.append(ref.record_id) or process_ref(ref, cfg)
    )
    res = prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    assert res.resumed_shards == 2 and len(seen) == 27 - 16  # only the last shard was redone
    assert _files(tmp_path) == _files(reference_run)


def test_resume_after_losing_last_shard(reference_run, mimic_root, tmp_path, monkeypatch):
    calls = {"n": 0}

    def crashing(ref, config):
        calls["n"] += 1
        if calls["n"] > 26:  # shards 0-2 committed, the last one (3) in progress
            raise _Crash()
        return process_ref(ref, config)

    monkeypatch.setattr(prepare_mod, "process_ref", crashing)
    with pytest.raises(_Crash):
        prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    monkeypatch.setattr(prepare_mod, "process_ref", process_ref)
    data = tmp_path / "data"
    # Lose the last committed shard's partial manifest (its array stays, orphaned) and leave
    # the temp file of an interrupted atomic write behind: both must be cleaned and redone.
    (data / "parts/part_00002.csv").unlink()
    (data / "signals/.tmp-shard_00003.npy.abc").write_bytes(b"partial")
    res = prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    assert res.resumed_shards == 2
    assert _files(tmp_path) == _files(reference_run)


def test_complete_run_is_not_redone_but_changed_config_is(reference_run, mimic_root, tmp_path, monkeypatch):
    shutil.copytree(reference_run / "data", tmp_path / "data")

    def boom(ref, config):
        raise AssertionError("should not process")

    monkeypatch.setattr(prepare_mod, "process_ref", boom)
    res = prepare_dataset("mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=1), workers=1, progress=False)
    assert res.n_ok == N_GOOD and res.n_skipped == 5 and res.n_processed == 0
    monkeypatch.setattr(prepare_mod, "process_ref", process_ref)
    res = prepare_dataset(
        "mimic", mimic_root, tmp_path, PrepareConfig(shard_size=8, seed=2, n=10), workers=1, progress=False
    )
    m = SignalStore(tmp_path).manifest
    assert len(m) == 10 and res.n_total == 10
    assert sorted(p.name for p in (tmp_path / "data/signals").iterdir()) == ["shard_00000.npy", "shard_00001.npy"]
    assert list(m.record_id) == [r.record_id for r in list_records("mimic", mimic_root)[:10]]


def test_result_summary(reference_run, mimic_root, tmp_path):
    res = prepare_dataset(
        "mimic", mimic_root, tmp_path, PrepareConfig(shard_size=100, n=8, seed=1), workers=1, progress=False
    )
    assert (res.n_total, res.n_ok, res.n_skipped) == (8, 8, 0)
    assert sum(res.splits.values()) == 8 and res.records_per_s > 0 and res.seconds > 0
    assert "prepared 8 records" in str(res)


def test_prepare_config_refuses_unknown_keys_and_bad_shards():
    cfg = PrepareConfig.from_dict({"seed": 2, "preprocess": {"baseline_removal": True, "hr_range": [30, 250]}})
    assert cfg.seed == 2 and cfg.preprocess == PreprocessConfig(baseline_removal=True, hr_range=(30, 250))
    assert PrepareConfig().preprocess == PreprocessConfig()
    with pytest.raises(ValueError, match=r"unknown PrepareConfig fields: \['sead'\]"):
        PrepareConfig.from_dict({"sead": 2})
    with pytest.raises(ValueError, match="shard_size must be >= 1, got 0"):
        PrepareConfig(shard_size=0)


def test_wrong_path_and_source(tmp_path):
    with pytest.raises(DatasetLayoutError) as e:
        prepare_dataset("mimic", tmp_path / "nowhere", tmp_path / "run", progress=False)
    assert "nowhere" in str(e.value) and "MIMIC-IV-ECG" in str(e.value)
    assert not (tmp_path / "run" / "data").exists()
    with pytest.raises(ValueError, match="unknown source"):
        prepare_dataset("ptb", tmp_path, tmp_path / "run", progress=False)


def test_ptbxl_and_wfdb_sources(tmp_path):
    root = write_ptbxl_tree(
        tmp_path / "ptbxl",
        [
            {"ecg_id": 1, "age": 300, "sex": 1},
            {"ecg_id": 2, "patient_id": 15001},  # same patient as ecg 1
            {"ecg_id": 3, "scp_codes": "{'NORM': 100.0", "write": False},
        ],
    )
    prepare_dataset("ptbxl", root, tmp_path / "run1", workers=1, progress=False)
    m = SignalStore(tmp_path / "run1").manifest
    assert list(m.status) == ["ok", "ok", "skipped"] and m.age[0] == 90 and m.sex[0] == "F"
    assert m.split[0] == m.split[1] and (m.hr_source[:2] == "rpeaks").all()  # PTB-XL has no RR column
    assert m.report[0] == "sinusrhythmus normales ekg|normal ECG|sinus rhythm"
    assert m.reason[2].startswith("metadata: malformed ptbxl_database.csv row")

    shutil.copytree(PTB_DIAG_DIR, tmp_path / "ptbdb" / "patient001")
    res = prepare_dataset("wfdb", tmp_path / "ptbdb", tmp_path / "run2", workers=1, progress=False)
    store = SignalStore(tmp_path / "run2")
    row = store.manifest.iloc[0]
    assert res.n_ok == 1 and row.age == 81 and row.sex == "F" and row.subject_id == "patient001"
    assert store.signals().shape == (1, 12, 1024)


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.npy"
    atomic_save_npy(target, np.zeros((2, 12, 4), np.float32))
    before = target.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(prepare_mod.os, "replace", failing_replace)  # same os module object
    with pytest.raises(OSError, match="disk full"):
        atomic_save_npy(target, np.ones((3, 12, 4), np.float32))
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "new.csv", "a,b\n")
    assert target.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]  # no temp file, no partial new file
