"""Generate many ECGs to disk in batches and report the peak resident memory.

    python benchmarks/generate_stream.py runs/cpu --n 1000 --batch 50 --out benchmarks/out/stream

Memory must stay bounded by one batch (plus the models) however many ECGs are requested: the script
prints peak RSS after the first batch and at the end.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sampler", default="dpmsolver++")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/stream"))
    args = ap.parse_args()

    from diffusets_core.data.store import SignalStore
    from diffusets_core.diffusion.pipeline import DiffuSETSPipeline
    from diffusets_core.generate.to_disk import generate_to_disk

    # the first batch alone goes to its own folder: an output folder holds one request (resumed only as itself)
    first_dir = args.out.with_name(args.out.name + "_first_batch")
    for folder in (args.out, first_dir):
        shutil.rmtree(folder, ignore_errors=True)
    pipe = DiffuSETSPipeline.from_pretrained(args.run_dir, device="cpu")
    test = SignalStore(args.run_dir).records("test")
    cond = test.sample(n=args.n, replace=True, random_state=0)[["report", "age", "sex", "hr"]].reset_index(drop=True)
    generate_to_disk(
        pipe,
        cond.iloc[: args.batch],
        first_dir,
        batch_size=args.batch,
        progress=False,
        num_inference_steps=args.steps,
        sampler=args.sampler,
    )
    first = _rss_mb()
    t0 = time.perf_counter()
    res = generate_to_disk(
        pipe,
        cond,
        args.out,
        batch_size=args.batch,
        progress=False,
        num_inference_steps=args.steps,
        sampler=args.sampler,
    )
    dt = time.perf_counter() - t0
    files = len(list(args.out.glob("*.hea")))
    print(
        f"{files} ECGs written ({res['generated']} generated) in {dt:.1f} s ({dt / files:.3f} s per ECG, "
        f"{args.sampler} {args.steps} steps, batch {args.batch})"
    )
    print(
        f"peak RSS after the first batch: {first:.0f} MB; after all {files}: {_rss_mb():.0f} MB "
        f"(ratio {(_rss_mb() / first):.2f}; bounded memory means ~1.0)"
    )


if __name__ == "__main__":
    main()
