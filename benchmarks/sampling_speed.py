"""Sampler speed and accuracy on a trained run, side by side in one process.

    python benchmarks/sampling_speed.py runs/cpu --n 32 --batch 32

Same model, same conditions (held-out test records), same batch, decoding included: DDPM-1000 (the
paper), DDIM-50, DPM-Solver++-20, and DDIM-50 under bf16 autocast. For each: seconds per ECG, the
speed-up over DDPM-1000, and the heart-rate error of the generated ECGs against the requested HR
(neurokit2). Target: the fast sampler >= 15x faster with HR error no worse than DDPM's + 1 bpm.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from diffusets_core.data.store import SignalStore
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.eval.features import hr_error, measure_features

    pipe = DiffuSETSPipeline.from_pretrained(args.run_dir, device="cpu")
    test = SignalStore(args.run_dir).records("test").sample(n=args.n, random_state=args.seed)
    cond = dict(age=test["age"].tolist(), sex=test["sex"].tolist(), hr=test["hr"].tolist())
    pipe(
        test["report"].tolist()[:2], age=cond["age"][:2], sex=cond["sex"][:2], hr=cond["hr"][:2], num_inference_steps=2
    )  # warm-up: embedder load, first-call allocations
    cases = [("ddpm", 1000, False), ("ddim", 50, False), ("dpmsolver++", 20, False), ("ddim", 50, True)]
    rows = []
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.n} ECGs, batch {args.batch}, {args.threads} threads")
    for name, steps, bf16 in cases:
        t0 = time.perf_counter()
        out = pipe(
            test["report"].tolist(),
            num_inference_steps=steps,
            sampler=name,
            seed=args.seed,
            batch_size=args.batch,
            bf16=bf16,
            **cond,
        )
        dt = time.perf_counter() - t0
        f = measure_features(out.signals, out.fs)
        err = hr_error(f["hr_nk"].to_numpy(), test["hr"].to_numpy())
        rows.append(
            {
                "sampler": name + ("+bf16" if bf16 else ""),
                "steps": steps,
                "s_per_ecg": dt / args.n,
                "hr_mae": err["mae"],
                "hr_measurable": err["frac_valid"],
            }
        )
    base = rows[0]["s_per_ecg"]
    print(f"{'sampler':<14}{'steps':>6}{'s/ECG':>10}{'speed-up':>10}{'HR MAE':>9}{'measurable':>12}")
    for r in rows:
        r["speedup"] = base / r["s_per_ecg"]
        print(
            f"{r['sampler']:<14}{r['steps']:>6}{r['s_per_ecg']:>10.3f}{r['speedup']:>9.1f}x{r['hr_mae']:>9.2f}"
            f"{r['hr_measurable']:>12.2f}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/out/sampling_speed.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
