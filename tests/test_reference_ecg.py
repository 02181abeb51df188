"""Loading a reference ECG (a patient's earlier ECG, the twin condition) from an array, a WFDB file or a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_trees import mimic_rel_path, simple_mimic_records, synthetic_ecg, write_folder_record, write_mimic_tree

from diffusets_core.data.leads import CANONICAL_LEADS
from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
from diffusets_core.data.preprocess import PreprocessConfig, process_ref
from diffusets_core.data.records import RecordRef
from diffusets_core.data.reference_ecg import (
    ReferenceECGError,
    ReferenceNotFoundError,
    load_reference_ecgs,
    reference_from_run,
)
from diffusets_core.data.store import SignalStore, read_preprocess_config
from diffusets_core.data.wfdb_io import MissingLeadError, UnexpectedSamplingRateError

FS, LENGTH = 102.4, 1024


def load(source, **kwargs):
    return load_reference_ecgs(source, fs=FS, length=LENGTH, **kwargs)


def sines(fs: float, seconds: float = 10.0) -> np.ndarray:
    """(n, 12) mV: per lead a sum of sines with whole numbers of cycles in 10 s, below 5 Hz, so that FFT resampling
    of any rate to 1024 samples gives the same curve sampled at 102.4 Hz."""
    t = np.arange(int(round(seconds * fs))) / fs
    k = np.arange(12)[None, :]
    return 0.8 * np.sin(2 * np.pi * (3 + k) / 10 * t[:, None] + k) + 0.3 * np.cos(
        2 * np.pi * (17 + 2 * k) / 10 * t[:, None]
    )


def folder_ref(path, record_id: str = "r") -> RecordRef:
    return RecordRef(record_id, record_id, str(path), report="Sinus rhythm", age=60.0, sex="F", rr_interval_ms=857.0)


# ---- WFDB records ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fs", [500, 250])
def test_a_record_is_prepared_bit_for_bit_as_the_prepare_stage_prepares_it(tmp_path, fs):
    path = write_folder_record(tmp_path, f"rec{fs}", synthetic_ecg(70.0, fs, 10.0, 1), fs=fs)
    for cfg in (PreprocessConfig(), PreprocessConfig(baseline_removal=True)):
        expected = process_ref(folder_ref(path), cfg)
        assert expected.status == "ok", expected.reason
        got = load(path, preprocess=cfg)
        assert got.shape == (1, 12, LENGTH) and got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got[0], expected.signal)
    for suffix in (".hea", ".dat"):  # the header or signal file's name reads the same record
        np.testing.assert_array_equal(load(f"{path}{suffix}"), load(path))


def test_a_record_at_another_rate_is_resampled_onto_the_models_grid(tmp_path):
    truth = sines(FS)  # the curve at 102.4 Hz
    for fs in (250, 500, 1000):
        path = write_folder_record(tmp_path, f"s{fs}", sines(fs), fs=fs, gain=1000.0)
        got = load(path)[0]
        assert np.abs(got - truth.T).max() < 2e-3, fs  # 1 uV quantisation, FFT-exact otherwise


def test_a_record_without_all_12_leads_names_the_file_and_the_missing_leads(tmp_path):
    keep = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    sig = synthetic_ecg()[:, [CANONICAL_LEADS.index(n) for n in keep]]
    path = write_folder_record(tmp_path, "eight", sig, sig_names=keep)
    with pytest.raises(MissingLeadError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and "missing lead(s) III, aVR, aVL, aVF" in msg


def test_expected_fs_refuses_another_rate_naming_file_rate_and_expected_rate(tmp_path):
    path = write_folder_record(tmp_path, "r250", synthetic_ecg(70.0, 250), fs=250)
    with pytest.raises(UnexpectedSamplingRateError) as err:
        load(path, preprocess=PreprocessConfig(expected_fs=500))
    msg = str(err.value)
    assert str(path) in msg and "250 Hz" in msg and "expected 500 Hz" in msg
    assert load(path, preprocess=PreprocessConfig(expected_fs=250)).shape == (1, 12, LENGTH)


def test_a_record_shorter_than_the_window_names_its_length_and_the_window(tmp_path):
    path = write_folder_record(tmp_path, "short", synthetic_ecg(70.0, 500, 6.0), fs=500)
    with pytest.raises(ReferenceECGError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and "6.00 s long" in msg and "10 s window" in msg and "3000 samples" in msg


def test_a_record_is_cropped_to_the_first_window_seconds(tmp_path):
    long = sines(500, 25.0)
    path = write_folder_record(tmp_path, "long", long, fs=500, gain=1000.0)
    head = write_folder_record(tmp_path, "head", long[:5000], fs=500, gain=1000.0)
    np.testing.assert_array_equal(load(path), load(head))


def test_a_list_of_paths_and_arrays_stacks_in_order(tmp_path):
    a = write_folder_record(tmp_path, "a", synthetic_ecg(60.0, 500, 10.0, 0))
    b = write_folder_record(tmp_path, "b", synthetic_ecg(90.0, 500, 10.0, 2))
    one_a, one_b = load(a), load(b)
    assert not np.array_equal(one_a, one_b)
    both = load([a, b])
    assert both.shape == (2, 12, LENGTH)
    np.testing.assert_array_equal(both, np.concatenate([one_a, one_b]))
    mixed = load((one_b[0], str(a), one_a))
    np.testing.assert_array_equal(mixed, np.concatenate([one_b, one_a, one_a]))


def test_preprocess_of_another_length_or_rate_is_refused():
    with pytest.raises(ValueError, match="1000 samples at 100 Hz.*1024 samples at 102.4 Hz"):
        load(np.zeros((12, LENGTH)), preprocess=PreprocessConfig(out_len=1000))


# ---- arrays ----------------------------------------------------------------------------------------------------
@pytest.fixture
def ecg() -> np.ndarray:
    return sines(FS).T.astype(np.float32)  # (12, 1024) mV


def test_an_array_at_the_models_rate_and_length_is_returned_unchanged_as_a_batch(ecg):
    got = load(ecg)
    assert got.shape == (1, 12, LENGTH) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], ecg)
    got[0, 0, 0] = 99.0
    assert ecg[0, 0] != 99.0  # a copy, not a view of the caller's array
    batch = load(np.stack([ecg, -ecg]).astype(np.float64))
    assert batch.shape == (2, 12, LENGTH) and batch.dtype == np.float32


def test_a_samples_by_leads_array_is_refused_with_a_hint_to_transpose(ecg):
    with pytest.raises(ReferenceECGError) as err:
        load(ecg.T)
    msg = str(err.value)
    assert "(1024, 12)" in msg and "transpose" in msg and "(leads, samples)" in msg and "I, II, III" in msg


def test_a_wrong_lead_count_or_dimension_names_the_shape(ecg):
    with pytest.raises(ReferenceECGError, match=r"\(8, 1024\) has 8 leads.*12 leads expected"):
        load(ecg[:8])
    with pytest.raises(ReferenceECGError, match=r"1 dimension\(s\), shape \(1024,\)"):
        load(ecg[0])
    with pytest.raises(ReferenceECGError, match="reference 1: .*4 dimension"):
        load([ecg, ecg[None, None]])


def test_an_array_of_another_length_explains_rate_length_and_the_record_path_route(ecg):
    with pytest.raises(ReferenceECGError) as err:
        load(np.zeros((12, 5000), dtype=np.float32))
    msg = str(err.value)
    assert "5000 samples per lead" in msg and "102.4 Hz" in msg and "1024 samples" in msg and "10 s" in msg
    assert "WFDB record's path" in msg


def test_non_finite_values_name_the_record_and_the_lead(ecg):
    bad = np.stack([ecg, ecg.copy()])
    bad[1, CANONICAL_LEADS.index("V3"), 100:103] = np.nan
    with pytest.raises(ReferenceECGError, match="record 1 of the reference array: lead V3 has 3 non-finite"):
        load(bad)
    inf = ecg.copy()
    inf[CANONICAL_LEADS.index("aVL"), 5] = np.inf
    with pytest.raises(ReferenceECGError, match="reference 1: lead aVL has 1 non-finite"):
        load([ecg, inf])


def test_a_flat_lead_or_microvolt_amplitudes_are_refused(ecg):
    flat = ecg.copy()
    flat[CANONICAL_LEADS.index("V5")] = 0.0
    with pytest.raises(ReferenceECGError, match="lead V5 is constant .* whole 10 s window"):
        load(flat)
    with pytest.raises(ReferenceECGError, match="microvolts labelled mV"):
        load(ecg * 1000)


def test_other_sources_are_refused():
    with pytest.raises(ReferenceECGError, match="empty list"):
        load([])
    with pytest.raises(TypeError, match="got dict"):
        load({"I": [0.0]})
    with pytest.raises(ReferenceECGError, match="bool"):
        load(np.zeros((12, LENGTH), dtype=bool))


# ---- a prepared run --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny MIMIC-layout run (10 subjects, baseline filter on) with one record skipped (its files missing)."""
    root = tmp_path_factory.mktemp("refrun")
    records = simple_mimic_records(10) + [{"subject_id": 10000999, "study_id": 49999999, "write": False}]
    write_mimic_tree(root / "mimic", records)
    config = PrepareConfig(preprocess=PreprocessConfig(baseline_removal=True))
    prepare_dataset("mimic", root / "mimic", root / "run", config, workers=1, progress=False)
    return root


def test_reference_from_run_returns_the_stored_row(run):
    store = SignalStore(run / "run")
    records = store.records()
    signals = store.signals()
    for i in (0, len(records) - 1):
        got = reference_from_run(run / "run", records["record_id"][i])
        assert got.shape == (12, LENGTH) and got.dtype == np.float32 and not isinstance(got, np.memmap)
        np.testing.assert_array_equal(got, signals[i])
    assert np.array_equal(reference_from_run(run / "run", int(records["record_id"][0])), signals[0])  # id as int


def test_a_runs_source_file_loads_as_the_run_stored_it(run):
    cfg = read_preprocess_config(run / "run")
    assert cfg == PreprocessConfig(baseline_removal=True)
    study = 40000003
    path = run / "mimic" / mimic_rel_path(10000032 + 3, study)
    stored = reference_from_run(run / "run", study)
    np.testing.assert_array_equal(load(path, preprocess=cfg)[0], stored)
    assert not np.array_equal(load(path)[0], stored)  # without the run's config the baseline filter is missing


def test_reference_from_run_names_a_missing_or_skipped_id_and_the_run(run):
    with pytest.raises(KeyError) as err:
        reference_from_run(run / "run", "12345")
    msg = str(err.value)
    assert "'12345'" in msg and str(run / "run") in msg and "not in run" in msg
    with pytest.raises(ReferenceNotFoundError, match="'49999999' .* skipped .* no stored signal"):
        reference_from_run(run / "run", "49999999")


def test_read_preprocess_config_names_a_missing_file_or_unknown_keys(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="prepare.json"):
        read_preprocess_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    info = json.loads((run / "run" / "data" / "prepare.json").read_text())
    info["preprocess"]["notch_hz"] = 50
    (data / "prepare.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="prepare.json: 'preprocess' has key.* notch_hz"):
        read_preprocess_config(tmp_path)
