"""Dataset generation from a conditions file: ECGs/s with 1 and 2 processes, peak memory at 1,000 and 10,000 ECGs.

    python benchmarks/generate_dataset.py runs/smoke --out /tmp/gends          # writes benchmarks/results/generate_dataset.md
    python benchmarks/generate_dataset.py runs/smoke --small 100 --large 400 --results /tmp/t.md   # a quick try

Each case is a separate ``diffusets generate --conditions`` process (``torchrun --nproc_per_node 2`` for the
two-process case), so its peak RSS (``ru_maxrss``, per process) is its own. Conditions are the run's test-split
records drawn with replacement (one row per ECG). Memory is bounded if the 10,000-ECG run peaks no higher than the
1,000-ECG run (ratio ~1.0): the conditions file is streamed and one batch of signals is held at a time.
On a 2-core machine two processes can at most double ECGs/s, and only if nothing else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def conditions(run: Path, n: int, path: Path) -> Path:
    from diffusets_core.data.store import SignalStore

    test = SignalStore(run).records("test")
    test.sample(n=n, replace=True, random_state=0)[["report", "age", "sex", "hr"]].to_csv(path, index=False)
    return path


def case(run: Path, cond: Path, out: Path, batch: int, steps: int, sampler: str) -> None:
    """Subprocess entry (also under torchrun): generate, then print this process's peak RSS."""
    from diffusets_core.cli import main

    rc = main(
        [
            "generate",
            "--run-dir",
            str(run),
            "--conditions",
            str(cond),
            "--out",
            str(out),
            "--batch-size",
            str(batch),
            "--steps",
            str(steps),
            "--sampler",
            sampler,
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    rank = int(os.environ.get("RANK", "0"))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        "RESULT "
        + json.dumps({"rank": rank, "rc": rc, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024}),
        flush=True,
    )


def run_case(args, n: int, procs: int, cond: Path) -> dict:
    out = args.out / f"ds_{n}_{procs}p"
    shutil.rmtree(out, ignore_errors=True)
    me = [str(Path(__file__).resolve()), str(args.run), "--_case", str(cond), str(out)]
    opts = ["--batch", str(args.batch), "--steps", str(args.steps), "--sampler", args.sampler]
    if procs == 1:
        cmd = [sys.executable, *me, *opts]
    else:
        cmd = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            "--nproc_per_node",
            str(procs),
            *me,
            *opts,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    res = [json.loads(l[7:]) for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode != 0 or len(res) != procs:
        raise RuntimeError(f"{cmd} failed:\n{r.stderr[-3000:]}")
    written = len(list((out / "records").rglob("*.hea")))
    return {
        "ecgs": n,
        "processes": procs,
        "wall_s": wall,
        "ecgs_per_s": written / wall,
        "written": written,
        "ecgs_per_cpu_s": written / sum(x.get("cpu_s", float("nan")) for x in res),
        "peak_mb": max(x["peak_mb"] for x in res),
        "disk_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a trained run directory (a smoke run is enough)")
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "generate_dataset")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "generate_dataset.md")
    ap.add_argument("--_case", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._case:
        case(args.run, Path(args._case[0]), Path(args._case[1]), args.batch, args.steps, args.sampler)
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, procs in ((args.small, 1), (args.small, 2), (args.large, 1)):
        cond = conditions(args.run, n, args.out / f"conditions_{n}.csv")
        rows.append(run_case(args, n, procs, cond))
        print(rows[-1], flush=True)
    one, two, big = rows
    cmd = (
        f"python benchmarks/generate_dataset.py RUN --small {args.small} --large {args.large} --batch {args.batch} "
        f"--steps {args.steps} --sampler {args.sampler}"
    )
    lines = [
        f"Measured by `{cmd}` (RUN: {args.run.name}, a tiny trained run; {args.sampler} {args.steps} steps, batch {args.batch}, "
        "WFDB + npy at 102.4 Hz, `OMP_NUM_THREADS=1` per process, shared 2-core machine).",
        "",
        "Wall-clock ECGs/s depend on what else runs; ECGs per CPU-second (all processes) do not.",
        "",
        "| ECGs | processes | wall s | ECGs/s | ECGs per CPU-s | peak RSS per process | output on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['ecgs']:,} | {r['processes']} | {r['wall_s']:.1f} | {r['ecgs_per_s']:.1f} | "
            f"{r['ecgs_per_cpu_s']:.1f} | "
            f"{r['peak_mb']:.0f} MB | {r['disk_mb']:.1f} MB |"
        )
    lines += [
        "",
        f"2 processes / 1 process: x{two['ecgs_per_s'] / one['ecgs_per_s']:.2f} ECGs/s; peak RSS at "
        f"{args.large:,} / {args.small:,} ECGs: x{big['peak_mb'] / one['peak_mb']:.2f} (bounded: ~1.0).",
        "",
    ]
    text = "\n".join(lines)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
