"""Machine calibration: one fixed workload, timed, so that wall times measured on different machines compare.

The workload is the cpu profile's U-Net training step as of December 2026 (FiLM U-Net, 64-256 channels, attention
at the two deepest levels, batch 64 on 8 x 128 latents, 2 threads, AdamW), written out here rather than read from
``profiles/cpu.yaml``, so it stays the same when the profile changes. Report its seconds per step beside every wall
time; on a machine with calibration c, a budget measured at c0 scales by c / c0.

    python benchmarks/calibrate.py            # prints s/step (median of 3 rounds of 6 steps)

Nothing else should be running: two heavy jobs on two cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the fixed workload (do not edit: calibrations taken with another workload do not compare)
WORKLOAD = {
    "model": {
        "arch": "film",
        "base_channels": 64,
        "channel_mults": [1, 2, 2, 4],
        "attn_levels": [2, 3],
        "emb_dim": 256,
        "attn_heads": 4,
        "kernel_size": 3,
        "cond_dropout": 0.15,
        "cond_dropout_mode": "separate",
    },
    "batch": 64,
    "latent_channels": 8,
    "threads": 2,
}


def calibrate(rounds: int = 3, reps: int = 6) -> float:
    """Median seconds per training step of :data:`WORKLOAD` over ``rounds`` rounds of ``reps`` steps."""
    from unet_step_speed import step_time

    times = [
        step_time(
            WORKLOAD["model"],
            WORKLOAD["batch"],
            latent_ch=WORKLOAD["latent_channels"],
            threads=WORKLOAD["threads"],
            compile_model=False,
            reps=reps,
        )
        for _ in range(rounds)
    ]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    s = calibrate(args.rounds)
    print(json.dumps({"calibration_s_per_step": round(s, 3), "workload": WORKLOAD}))


if __name__ == "__main__":
    main()
