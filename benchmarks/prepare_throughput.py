"""Throughput of ``prepare_dataset`` on a synthetic MIMIC-IV-ECG-format tree.

Builds (once, cached under benchmarks/out/) a tree of N 10 s / 500 Hz / 12-lead records in
the real MIMIC layout (format 16, 200 adu/mV, aVF before aVL), then times
``prepare_dataset("mimic", ...)`` and prints records/s. A small fraction of records gets an
implausible ``rr_interval`` so that the R-peak path is exercised as on real data.

    python benchmarks/prepare_throughput.py --n 2000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

DISK_ORDER = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
SCALE = np.array([0.6, 1.0, 0.4, -0.8, 0.7, 0.3, -0.5, 0.9, 1.2, 1.4, 1.1, 0.8])  # disk order
_TEMPLATES: dict[int, np.ndarray] = {}


def _template(hr: int) -> np.ndarray:
    if hr not in _TEMPLATES:
        import neurokit2 as nk

        _TEMPLATES[hr] = nk.ecg_simulate(duration=10, sampling_rate=500, heart_rate=hr, random_state=hr, noise=0.01)
    return _TEMPLATES[hr]


def _write(args: tuple[str, int, int, int]) -> None:
    import wfdb

    root, subject, study, hr = args
    rng = np.random.default_rng(study)
    sig = _template(hr)[:, None] * SCALE[None, :] + 0.01 * rng.standard_normal((5000, 12))
    p = f"p{subject}"
    d = Path(root) / "files" / p[:5] / p / f"s{study}"
    d.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        str(study),
        fs=500,
        units=["mV"] * 12,
        sig_name=DISK_ORDER,
        p_signal=sig,
        fmt=["16"] * 12,
        adc_gain=[200.0] * 12,
        baseline=[0] * 12,
        write_dir=str(d),
    )


def build_tree(root: Path, n: int, rpeaks_fraction: float, workers: int) -> None:
    stamp = root / f".complete-{n}-{rpeaks_fraction}"
    if stamp.is_file():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    subjects = 10000000 + rng.choice(10 * n, size=n // 3 + 1, replace=False)
    rows, jobs = [], []
    for i in range(n):
        subject, study = int(subjects[i % len(subjects)]), 40000000 + i
        hr = int(rng.choice([55, 65, 75, 90, 110]))
        rr = 0 if rng.random() < rpeaks_fraction else round(60000 / hr)
        rows.append((subject, study, hr, rr))
        jobs.append((str(root), subject, study, hr))
    with Pool(workers) as pool:
        pool.map(_write, jobs, chunksize=50)
    pd.DataFrame(
        {
            "subject_id": [r[0] for r in rows],
            "study_id": [r[1] for r in rows],
            "file_name": [r[1] for r in rows],
            "ecg_time": "2180-01-01 00:00:00",
            "path": [f"files/p{str(r[0])[:4]}/p{r[0]}/s{r[1]}/{r[1]}" for r in rows],
        }
    ).to_csv(root / "record_list.csv", index=False)
    mm = pd.DataFrame({"subject_id": [r[0] for r in rows], "study_id": [r[1] for r in rows]})
    mm["report_0"] = ["Sinus rhythm" if r[2] < 100 else "Sinus tachycardia" for r in rows]
    mm["report_1"] = "Normal ECG"
    for k in range(2, 18):
        mm[f"report_{k}"] = None
    mm["rr_interval"] = [r[3] for r in rows]
    mm.to_csv(root / "machine_measurements.csv", index=False)
    subj = sorted({r[0] for r in rows})
    pd.DataFrame(
        {
            "subject_id": subj,
            "gender": ["MF"[s % 2] for s in subj],
            "anchor_age": [20 + s % 70 for s in subj],
            "anchor_year": 2180,
            "anchor_year_group": "2014 - 2016",
            "dod": None,
        }
    ).to_csv(root / "patients.csv", index=False)
    stamp.touch()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--rpeaks-fraction", type=float, default=0.02)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args(argv)

    from diffusets_core.data.prepare import PrepareConfig, prepare_dataset

    tree = args.out / f"mimic_synth_{args.n}"
    t = time.perf_counter()
    build_tree(tree, args.n, args.rpeaks_fraction, max(1, args.workers))
    print(f"tree: {tree} ({time.perf_counter() - t:.1f} s to build or reuse)")
    run = args.out / "prepare_run"
    shutil.rmtree(run, ignore_errors=True)
    import resource

    def cpu(who: int) -> float:
        ru = resource.getrusage(who)
        return ru.ru_utime + ru.ru_stime

    c0, p0 = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF)
    res = prepare_dataset(
        "mimic", tree, run, PrepareConfig(shard_size=args.shard_size), workers=args.workers, progress=False
    )
    worker_cpu = cpu(resource.RUSAGE_CHILDREN) - c0  # pool workers, counted once they have exited
    main_cpu = cpu(resource.RUSAGE_SELF) - p0
    print(res)
    # Wall-clock throughput depends on what else runs on the machine; CPU time does not.
    total_cpu = worker_cpu + main_cpu
    print(
        f"cpu seconds: workers {worker_cpu:.2f}, main {main_cpu:.2f} -> {res.n_total / total_cpu:.0f} records "
        f"per CPU-second; on {args.workers} idle core(s) that is ~{args.workers * res.n_total / total_cpu:.0f} records/s"
    )
    print(f"load average during run (1 min): {os.getloadavg()[0]:.2f}")
    print(f"cpu cores: {os.cpu_count()}  workers: {args.workers}")
    print(
        f"THROUGHPUT: {res.records_per_s:.0f} records/s processing, "
        f"{res.n_total / res.seconds:.0f} records/s end to end ({res.n_total} records, {res.seconds:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
