"""Rehearse the paper's data volume on a synthetic MIMIC-IV-ECG-layout tree, and extrapolate to MIMIC-IV-ECG.

    python benchmarks/mimic_scale.py --sizes 5000 20000 --out /tmp/scale   # -> book/measured/mimic_scale.md (+ .json)
    python benchmarks/mimic_scale.py --sizes 300 1200 --out /tmp/s --results /tmp/s/t.md --json /tmp/s/t.json

What it measures (each heavy case in its own subprocess, so that its peak RSS is its own):

1. ``prepare`` (MIMIC reader, 1 worker) of the first N records of one tree, for each N: records/s, CPU seconds
   per record, peak RSS (main + worker), bytes on disk per record. Memory should grow only by the manifest.
2. ``embed_run`` with the ``openai`` backend against a local OpenAI-compatible server (the tests' fake server,
   1536-d vectors as text-embedding-ada-002): records vs distinct prompts sent (de-duplication), requests, and a
   second run that must send nothing (the cache), with the cache's size on disk.
3. A training epoch's data loading, for each N: ``train_vae``'s own source (random batches of 64 read from the
   memory-mapped shards through ``SignalStore.view``) vs the whole split gathered into one in-memory tensor (what
   ``train_vae`` did before): seconds and peak RSS.
4. ``torchrun --nproc_per_node 2 -m diffusets_core.cli train-vae`` (gloo, smoke-size VAE, a few steps) over the
   largest store.

The tree is ``benchmarks/prepare_throughput.py``'s (10 s, 500 Hz, 12 leads, format 16, aVF before aVL, a few
records without a machine RR), with reports drawn from MIMIC-style statements (1-4 per record, a skewed
vocabulary) so that de-duplication has something to do. Signals are cheap synthetic ones: reading and
preprocessing cost the same per record whatever the waveform. The per-record costs measured at the largest N are
scaled to MIMIC-IV-ECG's size; the script writes the table and the extrapolation to ``--results`` (markdown),
which the reproducibility page includes.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

#: MIMIC-IV-ECG v1.0: 800,035 diagnostic ECGs of 161,352 subjects (PhysioNet release notes).
MIMIC_RECORDS = 800_035
STATEMENTS = [
    "Sinus rhythm",
    "Sinus tachycardia",
    "Sinus bradycardia",
    "Atrial fibrillation",
    "Normal ECG",
    "Abnormal ECG",
    "Borderline ECG",
    "1st degree A-V block",
    "Left bundle branch block",
    "Right bundle branch block",
    "Inferior ST elevation - consider acute infarct",
    "T wave inversion",
    "Prolonged QT interval",
    "Low QRS voltages in limb leads",
    "Ventricular premature complex",
    "Left axis deviation",
    "Anterior ST elevation",
    "Peaked T waves - consider hyperkalemia",
    "Left ventricular hypertrophy",
    "Nonspecific T wave abnormalities",
    "Poor R wave progression",
    "Atrial premature complex",
    "Sinus arrhythmia",
    "Lateral ST-T changes",
    "Possible anterior infarct - age undetermined",
    "Incomplete right bundle branch block",
    "Right axis deviation",
    "Atrial flutter",
    "Pacemaker rhythm",
    "Junctional rhythm",
]


def _peak_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, kids_kb) / 1024


def _anon_mb() -> float:
    """Anonymous resident memory of this process (MB): RSS without the mapped file pages, which the kernel can
    drop at any time (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def build(tree: Path, n: int) -> None:
    """The prepare_throughput tree of ``n`` records, with varied MIMIC-style reports (rewritten once)."""
    import numpy as np
    import pandas as pd
    from prepare_throughput import build_tree

    build_tree(tree, n, 0.02, 1)
    stamp = tree / ".reports-varied"
    if stamp.is_file():
        return
    mm = pd.read_csv(tree / "machine_measurements.csv")
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, len(STATEMENTS) + 1) ** 1.1  # a few statements are common, most are rare
    p /= p.sum()
    k = rng.choice([1, 2, 3, 4], size=len(mm), p=[0.2, 0.4, 0.3, 0.1])
    for j in range(18):
        mm[f"report_{j}"] = None
    for i, kk in enumerate(k):
        for j, s in enumerate(rng.choice(len(STATEMENTS), size=kk, replace=False, p=p)):
            mm.at[i, f"report_{j}"] = STATEMENTS[s]
    mm.to_csv(tree / "machine_measurements.csv", index=False)
    stamp.touch()


# ---- cases (run in subprocesses) ----------------------------------------------------------------------------
def case_prepare(tree: Path, run: Path, n: int) -> dict:
    from diffusets_core.data.prepare import PrepareConfig, prepare_dataset

    shutil.rmtree(run, ignore_errors=True)
    t0, c0 = time.perf_counter(), _cpu_s()
    res = prepare_dataset("mimic", tree, run, PrepareConfig(n=n), workers=1, progress=False)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    data = run / "data"
    return {
        "n": res.n_total,
        "ok": res.n_ok,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": _peak_mb(),
        "data_bytes": _du(data),
        "manifest_bytes": (data / "manifest.csv").stat().st_size,
    }


def case_load(run: Path, mode: str) -> dict:
    import numpy as np
    import torch

    from diffusets_core.data.store import SignalStore

    store = SignalStore(run)
    t0, c0 = time.perf_counter(), _cpu_s()
    seen = 0
    if mode == "trainer":  # what train_vae does: random batches of 64 read from the memory-mapped shards
        from diffusets_core.train.datasets import store_signals
        from diffusets_core.train.loop import TensorSource

        src = TensorSource({"x": store_signals(store, "train")})
        perm = torch.from_numpy(np.random.default_rng(0).permutation(len(src)))
        anon = _anon_mb()
        for k, idx in enumerate(perm.split(64)):
            seen += src.batch(idx, torch.device("cpu"))["x"].shape[0]
            if k % 10 == 0:
                anon = max(anon, _anon_mb())
    else:  # the whole split gathered into one in-memory tensor (train_vae before the memory-mapped source)
        x = torch.from_numpy(np.ascontiguousarray(store.signals("train"), dtype=np.float32))
        seen = x.shape[0]
        anon = _anon_mb()
    return {
        "mode": mode,
        "records": seen,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - c0,
        "peak_mb": _peak_mb(),
        "anon_peak_mb": anon,
    }


def _sub(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    r = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--_case", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"case {args} failed:\n{r.stderr[-3000:]}")
    return json.loads(line[7:])


def embed_rehearsal(run: Path) -> dict:
    """openai backend against the tests' local fake server: cold run, then a warm rerun."""
    from diffusets_core.data.store import SignalStore
    from diffusets_core.text.embed import EmbedConfig, default_cache_dir, embed_run
    from tests.test_text_openai import FakeServer

    shutil.rmtree(run / "embeddings", ignore_errors=True)
    srv = FakeServer(dim=1536)
    try:
        config = EmbedConfig(backend="openai", model="text-embedding-ada-002", base_url=srv.base_url, batch_size=256)
        kw = dict(progress=False, allow_no_key=True)
        t0 = time.perf_counter()
        cold = embed_run(run, config, **kw)
        t_cold = time.perf_counter() - t0
        req_cold = srv.requests
        sent = sum(len(b.get("input", [])) for b in srv.bodies)
        t0 = time.perf_counter()
        warm = embed_run(run, config, **kw)
        t_warm = time.perf_counter() - t0
        req_warm = srv.requests - req_cold
    finally:
        srv.close()
    records = len(SignalStore(run))
    return {
        "records": records,
        "prompts_sent": sent,
        "requests_cold": req_cold,
        "cold_s": t_cold,
        "requests_warm": req_warm,
        "warm_s": t_warm,
        "cache_bytes": _du(default_cache_dir(run)),
        "summary_cold": {k: v for k, v in cold.items() if isinstance(v, (int, float, str))},
        "summary_warm": {k: v for k, v in warm.items() if isinstance(v, (int, float, str))},
    }


def ddp_rehearsal(run: Path, steps: int) -> dict:
    """2-process torchrun over the store: train-vae, and train-unet on latents of a VAE trained in one process."""
    torchrun = [
        str(Path(sys.executable).with_name("torchrun")),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "diffusets_core.cli",
    ]
    one = [sys.executable, "-m", "diffusets_core.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--profile", "smoke", "--max-steps", str(steps), "--device", "cpu", "--restart"]
    out: dict = {"processes": 2, "steps": steps}
    for name, cmd in (
        ("vae_ddp", torchrun + ["train-vae", str(run)] + common),
        ("vae_1p", one + ["train-vae", str(run)] + common),
        ("encode", one + ["encode", str(run), "--device", "cpu"]),
        ("unet_ddp", torchrun + ["train-unet", str(run)] + common),
    ):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        # the CLI's one-line "error: ..." may follow a progress bar on the same terminal line
        err = next((l[l.index("error:") :] for l in (r.stdout + r.stderr).splitlines() if "error:" in l), "")
        out[name] = {"ok": r.returncode == 0, "wall_s": time.perf_counter() - t0, "error": err[:240]}
        if name == "encode" and r.returncode != 0:
            raise RuntimeError(f"encode failed:\n{r.stderr[-3000:]}")
    return out


# ---- report -----------------------------------------------------------------------------------------------------
def _gb(b: float) -> str:
    return f"{b / 1e9:,.1f} GB" if b >= 1e8 else f"{b / 1e6:,.1f} MB"


def report(prep: dict, load: dict, emb: dict, ddp: dict, sizes: list[int], cmd: str) -> str:
    lo, hi = prep[sizes[0]], prep[sizes[-1]]
    lines = [
        f"Measured by `{cmd}` (1 worker, `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} when the report was written; synthetic "
        "MIMIC-IV-ECG-layout tree). Wall times depend on what else ran; CPU seconds and peak RSS do not, and the "
        "extrapolation uses only those.",
        "",
        "| stage | N records | wall s | records/s | CPU s per record | peak RSS | on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        p = prep[n]
        lines.append(
            f"| prepare (MIMIC reader) | {n:,} | {p['wall_s']:.0f} | {p['n'] / p['wall_s']:.0f} | "
            f"{p['cpu_s'] / p['n'] * 1e3:.1f} ms | {p['peak_mb']:.0f} MB | {_gb(p['data_bytes'])} "
            f"(manifest {_gb(p['manifest_bytes'])}) |"
        )
    for n in sizes:
        for mode, name in (
            ("trainer", "epoch load, `train_vae`'s source (random batches from the memory-mapped shards)"),
            ("inram", "epoch load, whole split in RAM (train_vae's load before 11ddbbc)"),
        ):
            c = load[(n, mode)]
            lines.append(
                f"| {name} | {c['records']:,} train | {c['wall_s']:.1f} | {c['records'] / c['wall_s']:,.0f} | "
                f"{c['cpu_s'] / c['records'] * 1e3:.2f} ms | {c['peak_mb']:.0f} MB "
                f"(anonymous {c.get('anon_peak_mb', float('nan')):.0f} MB) | |"
            )
    lines.append(
        f"| embed, openai backend, local server, cold | {emb['records']:,} | {emb['cold_s']:.1f} | | | | "
        f"cache {_gb(emb['cache_bytes'])} |"
    )
    lines.append(f"| embed, same, rerun (cache) | {emb['records']:,} | {emb['warm_s']:.1f} | | | | |")
    for key, name in (("vae_ddp", "train-vae"), ("unet_ddp", "train-unet")):
        d = ddp[key]
        lines.append(
            f"| torchrun {name}, 2 processes (gloo), {ddp['steps']} steps, smoke-size model | {sizes[-1]:,} | "
            f"{d['wall_s']:.0f} | | | | {'ok' if d['ok'] else 'FAILED: ' + d['error'].replace('|', '/')} |"
        )
    dn = sizes[-1] - sizes[0]
    slope_prep = (hi["peak_mb"] - lo["peak_mb"]) / dn  # MB per record
    mm_lo, mm_hi = load[(sizes[0], "trainer")], load[(sizes[-1], "trainer")]
    tr_lo, tr_hi = load[(sizes[0], "inram")], load[(sizes[-1], "inram")]
    slope_tr = (tr_hi["peak_mb"] - tr_lo["peak_mb"]) / (tr_hi["records"] - tr_lo["records"])
    train_frac = tr_hi["records"] / hi["ok"]
    per_prompt = emb["cache_bytes"] / max(1, emb["prompts_sent"])
    M = MIMIC_RECORDS
    lines += [
        "",
        f"De-duplication: {emb['records']:,} records -> {emb['prompts_sent']:,} distinct prompts sent in "
        f"{emb['requests_cold']} requests; the rerun sent {emb['requests_warm']} requests.",
        "",
        f"Memory growth from {sizes[0]:,} to {sizes[-1]:,} records: prepare {hi['peak_mb'] - lo['peak_mb']:+.0f} MB, "
        f"`train_vae`'s memory-mapped epoch {mm_hi['peak_mb'] - mm_lo['peak_mb']:+.0f} MB of RSS, of which anonymous "
        f"memory {mm_hi.get('anon_peak_mb', float('nan')) - mm_lo.get('anon_peak_mb', float('nan')):+.0f} MB (the "
        "rest is mapped shard pages, which the kernel drops under memory pressure), the whole-split in-RAM load "
        f"{tr_hi['peak_mb'] - tr_lo['peak_mb']:+.0f} MB.",
        "",
        f"**Extrapolated to MIMIC-IV-ECG ({M:,} records)**, linearly from the costs per record at {sizes[-1]:,}:",
        "",
        "| what | per record (measured) | MIMIC-IV-ECG |",
        "|---|---|---|",
        f"| prepare, CPU time | {hi['cpu_s'] / hi['n'] * 1e3:.1f} ms | {hi['cpu_s'] / hi['n'] * M / 3600:.1f} CPU-hours "
        f"({hi['cpu_s'] / hi['n'] * M / 3600 / 16:.1f} h with 16 workers) |",
        f"| prepare, peak memory | {slope_prep * 1e3:.2f} kB growth | {lo['peak_mb'] + slope_prep * (M - sizes[0]):,.0f} MB |",
        f"| prepared store on disk | {_gb(hi['data_bytes'] / hi['n'] * 1e3)} per 1,000 | {_gb(hi['data_bytes'] / hi['n'] * M)} |",
        f"| embedding cache (upper bound: every report distinct) | {per_prompt / 1e3:.1f} kB per prompt | "
        f"{_gb(per_prompt * M)} |",
        f"| `train_vae` epoch load (memory-mapped), CPU time | {mm_hi['cpu_s'] / mm_hi['records'] * 1e3:.2f} ms, peak "
        f"{mm_hi['peak_mb']:.0f} MB (mapped file pages count in RSS) | {mm_hi['cpu_s'] / mm_hi['records'] * M * train_frac / 60:.1f} CPU-minutes "
        "per epoch (page cache warm) |",
        f"| the whole split in RAM (the load `train_vae` no longer does) | {slope_tr * 1e3:.1f} kB | "
        f"{tr_lo['peak_mb'] + slope_tr * (M * train_frac - tr_lo['records']):,.0f} MB |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "mimic_scale")
    # the table goes where the reproducibility page includes it (the book is staged from book/ alone)
    ap.add_argument("--results", type=Path, default=ROOT / "book" / "measured" / "mimic_scale.md")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "mimic_scale.json")
    ap.add_argument("--ddp-steps", type=int, default=4)
    ap.add_argument("--_case", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._case:
        kind, *rest = args._case
        res = (
            case_prepare(Path(rest[0]), Path(rest[1]), int(rest[2]))
            if kind == "prepare"
            else case_load(Path(rest[0]), rest[1])
        )
        print("RESULT " + json.dumps(res))
        return 0

    sizes = sorted(args.sizes)
    tree = args.out / f"tree_{sizes[-1]}"
    t0 = time.perf_counter()
    build(tree, sizes[-1])
    print(f"tree of {sizes[-1]:,} records: {time.perf_counter() - t0:.0f} s (built or reused)", flush=True)
    prep, load = {}, {}
    for n in sizes:
        prep[n] = _sub("prepare", str(tree), str(args.out / f"run_{n}"), str(n))
        print(f"prepare {n}: {prep[n]}", flush=True)
        for mode in ("trainer", "inram"):
            load[(n, mode)] = _sub("load", str(args.out / f"run_{n}"), mode)
            print(f"load {n} {mode}: {load[(n, mode)]}", flush=True)
    emb = embed_rehearsal(args.out / f"run_{sizes[-1]}")
    print(f"embed: {emb}", flush=True)
    ddp = ddp_rehearsal(args.out / f"run_{sizes[-1]}", args.ddp_steps)
    print(f"ddp: {ddp}", flush=True)
    cmd = "python benchmarks/mimic_scale.py --sizes " + " ".join(map(str, sizes))
    text = report(prep, load, emb, ddp, sizes, cmd)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"prepare": prep, "load": {f"{k[0]}_{k[1]}": v for k, v in load.items()}, "embed": emb, "ddp": ddp},
            indent=2,
            default=str,
        )
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
