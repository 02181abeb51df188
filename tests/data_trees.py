"""Helpers that write small WFDB trees in the real PTB-XL / MIMIC-IV-ECG layouts (tests only)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from diffusets_core.data.leads import CANONICAL_LEADS

MIMIC_DISK_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
# Per-lead scale of the synthetic beat, so that every lead is distinguishable after reading.
LEAD_SCALE = np.array([0.6, 1.0, 0.4, -0.8, 0.3, 0.7, -0.5, 0.9, 1.2, 1.4, 1.1, 0.8])


#: neurokit2's default simulator (ECGSYN) integrates an ODE whose adaptive steps depend on the CPU's BLAS kernels:
#: the same call differs by up to 0.1 mV between an AVX-512 and an AVX2 machine (measured with
#: benchmarks/cross_cpu.py), and a tiny model trained on it moves a stored slice by 10 %. The templates behind the
#: stored expected numbers (``simple_mimic_records``: 60-100 bpm, 500 Hz, 10 s, seeds 0-3) are therefore stored,
#: float32, written by ``python -m tests.data_trees``; any other template is simulated on the fly.
TEMPLATE_BANK = Path(__file__).parent / "fixtures" / "ecgsyn_templates.npz"
BANK_HRS = (60.0, 70.0, 80.0, 90.0, 100.0)


def _bank_key(hr: float, fs: int, seconds: float, seed: int) -> str:
    return f"hr{hr:g}_fs{fs}_s{seconds:g}_seed{seed}"


@functools.lru_cache(maxsize=1)
def _bank() -> dict[str, np.ndarray]:
    if not TEMPLATE_BANK.is_file():
        return {}
    with np.load(TEMPLATE_BANK) as z:
        return {k: z[k].astype(np.float64) for k in z.files}


def _simulate(hr: float, fs: int, seconds: float, seed: int) -> np.ndarray:
    import neurokit2 as nk

    return nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=hr, random_state=seed, noise=0.01)


@functools.lru_cache(maxsize=32)
def _template(hr: float, fs: int, seconds: float, seed: int) -> np.ndarray:
    stored = _bank().get(_bank_key(hr, fs, seconds, seed))
    return stored.copy() if stored is not None else _simulate(hr, fs, seconds, seed)


def write_template_bank(path: Path = TEMPLATE_BANK) -> Path:
    """Simulate and store the banked templates (float32 npz); run once on one machine, then commit the file."""
    out = {
        _bank_key(hr, 500, 10.0, s): _simulate(hr, 500, 10.0, s).astype(np.float32) for hr in BANK_HRS for s in range(4)
    }
    np.savez_compressed(path, **out)
    return path


def synthetic_ecg(hr: float = 70.0, fs: int = 500, seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """(n, 12) mV in canonical order: one neurokit2 ECG scaled per lead (aVL has a 3 Hz tag)."""
    base = _template(float(hr), int(fs), float(seconds), int(seed) % 4)
    sig = base[:, None] * LEAD_SCALE[None, :]
    t = np.arange(len(base)) / fs
    sig[:, CANONICAL_LEADS.index("aVL")] += 0.25 * np.sin(2 * np.pi * 3.0 * t)  # distinctive
    rng = np.random.default_rng(seed)
    return sig + 0.005 * rng.standard_normal(sig.shape)


def write_wfdb(
    dir_: Path, name: str, signal: np.ndarray, fs: float, sig_names, *, gain: float, units: str = "mV", comments=None
) -> None:
    """Write a format-16 record (signal columns already in ``sig_names`` order)."""
    dir_.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units] * len(sig_names),
        sig_name=list(sig_names),
        p_signal=signal,
        fmt=["16"] * len(sig_names),
        adc_gain=[gain] * len(sig_names),
        baseline=[0] * len(sig_names),
        comments=comments or [],
        write_dir=str(dir_),
    )


def mimic_rel_path(subject_id: int, study_id: int) -> str:
    p = f"p{subject_id}"
    return f"files/{p[:5]}/{p}/s{study_id}/{study_id}"


def write_mimic_tree(
    root: Path, records: list[dict], *, patients: dict[int, tuple[int, str]] | None = None, write_patients: bool = True
) -> Path:
    """records: dicts with subject_id, study_id and optional signal (canonical, mV), fs, hr,
    reports (list[str]), rr_interval (ms), seed, ecg_time (text, default "2182-09-22 12:04:00"). Leads are written
    aVF-before-aVL, gain 200."""
    root = Path(root)
    rl, mm = [], []
    for r in records:
        sid, stid = int(r["subject_id"]), int(r["study_id"])
        fs = r.get("fs", 500)
        sig = r.get("signal")
        if sig is None:
            sig = synthetic_ecg(r.get("hr", 70.0), fs, r.get("seconds", 10.0), r.get("seed", stid))
        rel = mimic_rel_path(sid, stid)
        if r.get("write", True):
            disk = sig[:, [CANONICAL_LEADS.index(n) for n in MIMIC_DISK_ORDER]]
            write_wfdb(root / os.path.dirname(rel), str(stid), disk, fs, MIMIC_DISK_ORDER, gain=200.0)
        when = r.get("ecg_time", "2182-09-22 12:04:00")
        rl.append({"subject_id": sid, "study_id": stid, "file_name": stid, "ecg_time": when, "path": rel})
        if r.get("measurements", True):
            row = {"subject_id": sid, "study_id": stid, "cart_id": 6848296, "ecg_time": when}
            reports = list(r.get("reports", ["Sinus rhythm", "Normal ECG"]))
            for i in range(18):
                row[f"report_{i}"] = reports[i] if i < len(reports) else None
            row.update(
                {
                    "bandwidth": "0.005-150 Hz",
                    "filtering": "60 Hz notch Baseline filter",
                    "rr_interval": r.get("rr_interval", round(60000 / r.get("hr", 70.0))),
                    "p_onset": 40,
                    "p_end": 128,
                    "qrs_onset": 170,
                    "qrs_end": 258,
                    "t_end": 518,
                    "p_axis": 81,
                    "qrs_axis": 77,
                    "t_axis": 79,
                }
            )
            mm.append(row)
    (root / "files").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rl).to_csv(root / "record_list.csv", index=False)
    pd.DataFrame(mm).to_csv(root / "machine_measurements.csv", index=False)
    if write_patients:
        subjects = sorted({int(r["subject_id"]) for r in records})
        patients = patients or {s: (40 + s % 50, "MF"[s % 2]) for s in subjects}
        pd.DataFrame(
            [
                {
                    "subject_id": s,
                    "gender": g,
                    "anchor_age": a,
                    "anchor_year": 2180,
                    "anchor_year_group": "2014 - 2016",
                    "dod": None,
                }
                for s, (a, g) in patients.items()
            ]
        ).to_csv(root / "patients.csv", index=False)
    return root


def simple_mimic_records(n: int, *, subjects: int | None = None, first_subject: int = 10000032) -> list[dict]:
    subjects = subjects or n
    return [
        {
            "subject_id": first_subject + (i % subjects),
            "study_id": 40000000 + i,
            "hr": 60.0 + (i % 5) * 10,
            "seed": i,
            "reports": ["Sinus rhythm", f"Statement {i}", "Normal ECG"],
        }
        for i in range(n)
    ]


PTBXL_COLUMNS = [
    "ecg_id",
    "patient_id",
    "age",
    "sex",
    "height",
    "weight",
    "nurse",
    "site",
    "device",
    "recording_date",
    "report",
    "scp_codes",
    "heart_axis",
    "infarction_stadium1",
    "infarction_stadium2",
    "validated_by",
    "second_opinion",
    "initial_autogenerated_report",
    "validated_by_human",
    "baseline_drift",
    "static_noise",
    "burst_noise",
    "electrodes_problems",
    "extra_beats",
    "pacemaker",
    "strat_fold",
    "filename_lr",
    "filename_hr",
]

SCP_STATEMENTS = (
    ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass,Statement Category,"
    "SCP-ECG Statement Description,AHA code,aECG REFID,CDISC Code,DICOM Code\n"
    "NORM,normal ECG,1.0,,,NORM,NORM,Normal/abnormal,normal ECG,1.0,,,F-000B7\n"
    "SR,sinus rhythm,,,1.0,,,Rhythm,sinus rhythm,,,,\n"
    "IMI,inferior myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferior myocardial infarction,,,,\n"
    "LVOLT,low QRS voltages in the frontal and horizontal leads,,1.0,,,,other ST-T descriptive statements,low voltage,,,,\n"
)


def write_ptbxl_tree(root: Path, rows: list[dict], *, raw_extra_lines: list[str] = ()) -> Path:
    """rows: dicts with ecg_id, patient_id, age, sex, report, scp_codes (str), hr, optional signal and
    recording_date (text as in PTB-XL, "1984-11-09 09:17:34"; default empty)."""
    root = Path(root)
    out = []
    for r in rows:
        eid = int(r["ecg_id"])
        folder = f"{(eid // 1000) * 1000:05d}"
        rel_hr = f"records500/{folder}/{eid:05d}_hr"
        if r.get("write", True):
            sig = r.get("signal")
            if sig is None:
                sig = synthetic_ecg(r.get("hr", 70.0), 500, 10.0, eid)
            write_wfdb(root / "records500" / folder, f"{eid:05d}_hr", sig, 500, CANONICAL_LEADS, gain=1000.0)
        row = {c: "" for c in PTBXL_COLUMNS}
        row.update(
            {
                "ecg_id": eid,
                "patient_id": f"{float(r.get('patient_id', 15000 + eid)):.1f}",
                "age": r.get("age", 56.0),
                "sex": r.get("sex", 1),
                "report": r.get("report", "sinusrhythmus normales ekg"),
                "scp_codes": r.get("scp_codes", "{'NORM': 100.0, 'SR': 0.0}"),
                "strat_fold": r.get("strat_fold", 3),
                "recording_date": r.get("recording_date", ""),
                "device": "CS-12   E",
                "filename_lr": f"records100/{folder}/{eid:05d}_lr",
                "filename_hr": rel_hr,
            }
        )
        out.append(row)
    for sub in ("records100", "records500"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(out, columns=PTBXL_COLUMNS).set_index("ecg_id")
    text = df.to_csv()
    if raw_extra_lines:
        text += "".join(line + "\n" for line in raw_extra_lines)
    (root / "ptbxl_database.csv").write_text(text)
    (root / "scp_statements.csv").write_text(SCP_STATEMENTS)
    return root


TINY_VAE = {"channels": [32, 32, 32], "norm_groups": 8}
TINY_UNET = {"arch": "paper", "levels": 4, "attn_heads": 2, "cond_dropout": 0.2}


def make_tiny_run(
    root: Path, records: list[dict], *, train: dict | None = None, vae: dict | None = None, unet: dict | None = None
) -> Path:
    """A run directory from a MIMIC-layout tree of ``records``: prepared and embedded (32-d hash embedder); with
    ``train`` settings also a tiny VAE, its latents and a tiny U-Net. Returns the run directory."""
    from diffusets_core.data.prepare import prepare_dataset
    from diffusets_core.text.embed import EmbedConfig, embed_run
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import train_vae

    write_mimic_tree(root / "mimic", records)
    run_dir = root / "run"
    prepare_dataset("mimic", root / "mimic", run_dir, workers=1, progress=False)
    embed_run(run_dir, EmbedConfig(backend="hash"), progress=False, dim=32)
    if train is not None:
        train_vae(run_dir, vae or TINY_VAE, train, seed=0)
        encode_latents(run_dir, device="cpu")
        train_unet(run_dir, unet or TINY_UNET, train, seed=0)
    return run_dir


def make_tiny_cohort_run(root: Path, n: int, *, train: dict, unet: dict, vae: dict | None = None) -> Path:
    """A run directory of an ``n``-record embedded cohort (source ``cohort``, default layout), prepared, embedded
    (32-d hash embedder), with a tiny VAE, its latents and a tiny U-Net of config ``unet``. Returns the run
    directory."""
    from diffusets_core.data.cohort import source_data_dir
    from diffusets_core.data.prepare import PrepareConfig, prepare_dataset
    from diffusets_core.text.embed import EmbedConfig, embed_run
    from diffusets_core.train.latents import encode_latents
    from diffusets_core.train.unet import train_unet
    from diffusets_core.train.vae import train_vae

    run_dir = root / "run"
    data_dir, _ = source_data_dir("cohort", None, run_dir, n=n, seed=0, workers=1)
    prepare_dataset("cohort", data_dir, run_dir, PrepareConfig(n=n, seed=0), workers=1, progress=False)
    embed_run(run_dir, EmbedConfig(backend="hash"), progress=False, dim=32)
    train_vae(run_dir, vae or TINY_VAE, train, seed=0)
    encode_latents(run_dir, device="cpu")
    train_unet(run_dir, unet, train, seed=0)
    return run_dir


# ---- layouts and quirks of real-world WFDB data ------------------------------------------------------------------
def beat_train(bpm: float, fs: float = 500, seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """(n, 12) mV: a narrow QRS (12 ms sigma) and a T wave every 60/bpm s, scaled per lead like synthetic_ecg.

    Unlike neurokit2's simulator it holds any rate (20-300 bpm) with a regular, known RR."""
    t = np.arange(int(round(seconds * fs))) / fs
    x = np.zeros_like(t)
    rr = 60.0 / bpm
    qt = min(0.42, 0.4 * np.sqrt(rr))
    for r in np.arange(0.1, seconds, rr):
        x += 1.2 * np.exp(-0.5 * ((t - r) / 0.012) ** 2) - 0.2 * np.exp(-0.5 * ((t - r - 0.03) / 0.01) ** 2)
        x += 0.3 * np.exp(-0.5 * ((t - r - 0.75 * qt) / 0.04) ** 2)
    rng = np.random.default_rng(seed)
    return x[:, None] * LEAD_SCALE[None, :] + 0.01 * rng.standard_normal((len(t), 12))


def write_multisegment(
    dir_: Path,
    name: str,
    signal: np.ndarray,
    fs: float,
    sig_names,
    *,
    n_segments: int = 2,
    gain: float = 200.0,
    comments=(),
) -> Path:
    """A fixed-layout multi-segment record: ``name.hea`` (``name/n_segments ...``) + one record per segment."""
    dir_.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(signal), n_segments + 1).astype(int)
    lines = [f"{name}/{n_segments} {len(sig_names)} {fs:g} {len(signal)}"]
    for k in range(n_segments):
        seg = f"{name}_{k + 1:04d}"
        write_wfdb(dir_, seg, signal[bounds[k] : bounds[k + 1]], fs, sig_names, gain=gain)
        lines.append(f"{seg} {bounds[k + 1] - bounds[k]}")
    lines += [f"# {c}" for c in comments]
    (dir_ / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return dir_ / name


def write_folder_record(
    root: Path,
    rel: str,
    signal: np.ndarray | None = None,
    *,
    fs: float = 500,
    hr: float = 70.0,
    seed: int = 0,
    sig_names=CANONICAL_LEADS,
    comments=None,
    units: str = "mV",
    gain: float = 200.0,
) -> Path:
    """One format-16 record at ``root/rel`` (``rel`` without extension); default comments age/sex/report."""
    if signal is None:
        signal = synthetic_ecg(hr, int(fs), 10.0, seed)
    if comments is None:
        comments = ["age: 60", "sex: F", "report: Sinus rhythm|Normal ECG"]
    path = Path(root) / rel
    write_wfdb(path.parent, path.name, signal, fs, sig_names, gain=gain, units=units, comments=comments)
    return path


if __name__ == "__main__":
    print(write_template_bank())
