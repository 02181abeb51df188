"""Lead mapping and WFDB reading: real layouts, the real PTB Diagnostic record, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_trees import MIMIC_DISK_ORDER, mimic_rel_path, synthetic_ecg, write_mimic_tree, write_ptbxl_tree, write_wfdb

from diffusets_core.data.leads import CANONICAL_LEADS, LeadMappingError, canonical_lead_name, lead_indices
from diffusets_core.data.wfdb_io import (
    AllNaNError,
    HeaderSignalMismatchError,
    MissingLeadError,
    RecordNotFoundError,
    TruncatedSignalError,
    UnexpectedSamplingRateError,
    UnitError,
    read_record,
)

PTB_DIAG = Path(__file__).parent / "fixtures" / "ptb-diagnostic" / "s0010_re"
AVL = CANONICAL_LEADS.index("aVL")
AVF = CANONICAL_LEADS.index("aVF")


def test_canonical_order_and_aliases():
    assert CANONICAL_LEADS == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    for name, canon in [
        ("avr", "aVR"),
        ("AVL", "aVL"),
        ("aVF", "aVF"),
        ("ii", "II"),
        ("v6", "V6"),
        ("Lead II", "II"),
        ("DIII", "III"),
        ("C3", "V3"),
        (" V1 ", "V1"),
    ]:
        assert canonical_lead_name(name) == canon, name
    assert canonical_lead_name("MLII") is None  # modified lead, not standard II
    assert canonical_lead_name("vx") is None


def test_lead_indices_reorders_and_drops_extras():
    names = ["vx", *MIMIC_DISK_ORDER, "vz"]
    idx = lead_indices(names)
    assert [names[i] for i in idx] == list(CANONICAL_LEADS)


def test_lead_indices_errors_name_missing_and_duplicates():
    with pytest.raises(LeadMappingError) as e:
        lead_indices([n for n in CANONICAL_LEADS if n != "V4"])
    assert e.value.missing == ["V4"] and "V4" in str(e.value)
    with pytest.raises(LeadMappingError, match="more than once"):
        lead_indices([*CANONICAL_LEADS, "ii"])


def test_mimic_layout_restores_canonical_order(tmp_path):
    root = write_mimic_tree(tmp_path / "mimic", [{"subject_id": 10000032, "study_id": 40689238, "hr": 70}])
    path = root / mimic_rel_path(10000032, 40689238)
    hea = path.with_suffix(".hea").read_text().splitlines()
    assert hea[0].split()[:4] == ["40689238", "12", "500", "5000"]
    assert "200.0(0)/mV" in hea[1] and hea[5].endswith("aVF") and hea[6].endswith("aVL")  # on disk: aVF first
    rec = read_record(path)
    assert rec.signal.shape == (5000, 12) and rec.fs == 500 and rec.n_samples == 5000
    truth = synthetic_ecg(70, 500, 10.0, 40689238)
    # aVL carries a 3 Hz tag: it must come back in canonical column 4, not 5.
    np.testing.assert_allclose(rec.signal[:, AVL], truth[:, AVL], atol=0.003)
    np.testing.assert_allclose(rec.signal, truth, atol=0.003)  # gain 200 -> 5 uV quantisation
    spectrum = np.abs(np.fft.rfft(rec.signal[:, AVL] - rec.signal[:, AVL].mean()))
    assert spectrum[30] > 5 * np.abs(np.fft.rfft(rec.signal[:, AVF] - rec.signal[:, AVF].mean()))[30]


def test_ptbxl_layout_reads_mv(tmp_path):
    root = write_ptbxl_tree(tmp_path / "ptbxl", [{"ecg_id": 1, "hr": 60}])
    hea = (root / "records500/00000/00001_hr.hea").read_text().splitlines()
    assert hea[0].split() == ["00001_hr", "12", "500", "5000"] and "1000.0(0)/mV" in hea[1]
    rec = read_record(root / "records500/00000/00001_hr")
    np.testing.assert_allclose(rec.signal, synthetic_ecg(60, 500, 10.0, 1), atol=0.001)


def test_real_ptb_diagnostic_record():
    rec = read_record(PTB_DIAG)
    assert rec.fs == 1000 and rec.n_samples == 38400 and rec.signal.shape == (38400, 12)
    assert any("age: 81" in c for c in rec.comments)
    # first samples of the header's lead i / ii at gain 2000 (values checked against wfdb.rdsamp)
    import wfdb

    ref, fields = wfdb.rdsamp(str(PTB_DIAG))
    names = [n.lower() for n in fields["sig_name"]]
    for j, lead in enumerate(CANONICAL_LEADS):
        np.testing.assert_allclose(rec.signal[:, j], ref[:, names.index(lead.lower())], atol=1e-9)
    # Einthoven holds for the real record (a lead swap would break it)
    I, II, III = rec.signal[:, 0], rec.signal[:, 1], rec.signal[:, 2]
    assert np.abs(I + III - II).max() < 0.02


def test_microvolt_units_are_converted(tmp_path):
    sig = synthetic_ecg(70, 500, 10.0, 3)
    write_wfdb(tmp_path, "uv", sig * 1000.0, 500, CANONICAL_LEADS, gain=1.0, units="uV")
    np.testing.assert_allclose(read_record(tmp_path / "uv").signal, sig, atol=0.001)
    write_wfdb(tmp_path, "weird", sig, 500, CANONICAL_LEADS, gain=200.0, units="mmHg")
    with pytest.raises(UnitError, match="mmHg"):
        read_record(tmp_path / "weird")


@pytest.fixture
def one_record(tmp_path):
    write_wfdb(tmp_path, "r1", synthetic_ecg(70, 500, 10.0, 1), 500, CANONICAL_LEADS, gain=200.0)
    return tmp_path / "r1"


def test_truncated_dat(one_record):
    dat = one_record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:50000])
    with pytest.raises(TruncatedSignalError) as e:
        read_record(one_record)
    msg = str(e.value)
    assert "r1.dat" in msg and "50000 bytes" in msg and "120000" in msg


def test_longer_signal_file_is_read_as_wfdb_reads_it(one_record):
    # wfdb reads the samples the header describes and ignores the rest; so do we, with a note
    plain = read_record(one_record).signal
    dat = one_record.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes() + b"\0" * 240)
    rec = read_record(one_record)
    np.testing.assert_array_equal(rec.signal, plain)
    assert rec.notes == ["signal file r1.dat holds 240 byte(s) after the 120000 the header describes (not read)"]


def test_header_signal_mismatch_checksum(tmp_path, one_record):
    # Same size, other samples: the .dat of another record under this header.
    write_wfdb(tmp_path, "r2", synthetic_ecg(90, 500, 10.0, 2), 500, CANONICAL_LEADS, gain=200.0)
    one_record.with_suffix(".dat").write_bytes((tmp_path / "r2.dat").read_bytes())
    with pytest.raises(HeaderSignalMismatchError, match="checksum"):
        read_record(one_record)
    assert read_record(one_record, verify_checksums=False).signal.shape == (5000, 12)


def test_missing_lead(tmp_path):
    names = [n for n in CANONICAL_LEADS if n != "V3"] + ["vx"]
    write_wfdb(tmp_path, "r", synthetic_ecg(70, 500, 10.0, 1), 500, names, gain=200.0)
    with pytest.raises(MissingLeadError) as e:
        read_record(tmp_path / "r")
    assert "V3" in str(e.value) and "r.hea" in str(e.value)


def test_unexpected_sampling_rate(one_record):
    assert read_record(one_record, expected_fs=500).fs == 500
    with pytest.raises(UnexpectedSamplingRateError, match="500 Hz, expected 1000 Hz"):
        read_record(one_record, expected_fs=1000)


def test_all_nan(tmp_path):
    write_wfdb(tmp_path, "nan", np.full((5000, 12), np.nan), 500, CANONICAL_LEADS, gain=200.0)
    with pytest.raises(AllNaNError, match="all NaN"):
        read_record(tmp_path / "nan")


def test_nan_samples_come_back_as_nan(tmp_path):
    sig = synthetic_ecg(70, 500, 10.0, 1)
    sig[100:110, 2] = np.nan
    write_wfdb(tmp_path, "gap", sig, 500, CANONICAL_LEADS, gain=200.0)
    out = read_record(tmp_path / "gap").signal
    assert np.isnan(out[100:110, 2]).all() and np.isfinite(np.delete(out, np.s_[100:110], 0)).all()


def test_missing_files(tmp_path, one_record):
    with pytest.raises(RecordNotFoundError, match="header file not found"):
        read_record(tmp_path / "nope")
    one_record.with_suffix(".dat").unlink()
    with pytest.raises(RecordNotFoundError, match="signal file missing"):
        read_record(one_record)
