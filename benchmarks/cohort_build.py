"""Cohort build time, preparation throughput, report/label agreement and the HR span, in one run.

    python benchmarks/cohort_build.py --n 4000 --seed 0 --workers 2 --out benchmarks/out/cohort4000

Targets (2-core machine): build <= 180 s for 4,000 records; preparation >= 150 records/s;
agreement >= 90 % for every finding; measured HR spanning ~40-150 bpm. The machine calibration
(benchmarks/calibrate.py, s/step of a fixed U-Net workload) is printed beside the times; --no-calibrate skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/cohort"))
    ap.add_argument("--no-calibrate", action="store_true")
    args = ap.parse_args()

    from diffusets_core.data.cohort import agreement_table, build_cohort
    from diffusets_core.data.prepare import prepare_dataset
    from diffusets_core.data.store import SignalStore

    for d in (args.out, args.out.with_name(args.out.name + "_run")):
        shutil.rmtree(d, ignore_errors=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    import resource

    def cpu() -> float:
        return sum(
            resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
            for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )

    t0, c0 = time.perf_counter(), cpu()
    summary = build_cohort(args.out, n=args.n, seed=args.seed, workers=args.workers, progress=False)
    build_s, build_cpu = time.perf_counter() - t0, cpu() - c0
    run = args.out.with_name(args.out.name + "_run")
    res = prepare_dataset("cohort", args.out, run, workers=args.workers, progress=False)
    table = agreement_table(args.out)
    ok = SignalStore(run).records()
    hr = ok["hr"].to_numpy()
    pct = dict(
        zip(
            ["min", "p5", "p25", "p50", "p75", "p95", "max"],
            np.round(np.percentile(hr, [0, 5, 25, 50, 75, 95, 100]), 1).tolist(),
        )
    )
    print(
        f"cohort build: {args.n} records in {build_s:.1f} s with {args.workers} workers "
        f"({args.n / build_s:.1f} records/s; target <= 180 s: {'met' if build_s <= 180 else 'MISSED'})"
    )
    # CPU seconds do not depend on other jobs sharing the machine: CPU / workers is the wall time on idle cores
    print(
        f"build CPU time: {build_cpu:.1f} s ({1000 * build_cpu / args.n:.1f} ms/record; "
        f"{build_cpu / max(1, args.workers):.1f} s per worker = the wall time on {args.workers} idle cores)"
    )
    print(f"finding counts (intended): {summary['finding_counts']}")
    print(
        f"preparation: {res.n_ok} ok / {res.n_skipped} skipped in {res.seconds:.1f} s = {res.records_per_s:.0f} records/s "
        f"(target >= 150: {'met' if res.records_per_s >= 150 else 'MISSED'})"
    )
    print("report/label agreement per intended finding (target >= 0.90 each):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    worst = table["agreement"].min()
    print(f"lowest agreement {worst:.3f} ({table['agreement'].idxmin()}): {'met' if worst >= 0.9 else 'MISSED'}")
    print(f"measured HR percentiles (bpm): {pct}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    calibration = None
    if not args.no_calibrate:
        from calibrate import calibrate

        calibration = calibrate()
        print(f"machine calibration: {calibration:.3f} s/step (benchmarks/calibrate.py)")
    out = {
        "n": args.n,
        "build_s": build_s,
        "build_cpu_s": build_cpu,
        "finding_counts": summary["finding_counts"],
        "prepare_records_per_s": res.records_per_s,
        "agreement": table["agreement"].round(4).to_dict(),
        "false_positive": table["false_positive"].round(4).to_dict(),
        "records": table["records"].to_dict(),
        "hr": pct,
        "calibration_s_per_step": calibration,
    }
    (args.out.parent / f"{args.out.name}_benchmark.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
