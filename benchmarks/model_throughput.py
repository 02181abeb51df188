"""Training throughput of the paper-size models on the CPU (forward + backward + AdamW step).

    python benchmarks/model_throughput.py                 # U-Net + VAE, fp32 and bf16 autocast
    python benchmarks/model_throughput.py --models unet --amp none --steps 20
    python benchmarks/model_throughput.py --json out.json

Throughput is batch / median step time (min and mean are in the JSON). With 2 OpenMP threads on 2 cores
any other busy process stalls every parallel region, so numbers taken on a shared machine can be several
times too low: the 1-minute load average before/after each case is printed; trust runs with load < ~1. Each (model, precision) case runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.
Numbers of the reference implementation measured on the same 2-core machine (given to us, not re-run
here): U-Net ~55 samples/s, VAE ~2.5 samples/s, peak RSS ~3.5 GB; the script prints ratios to those.

Cases
-----
* ``unet``: ``ConditionalUNet1D(PaperUNetConfig.paper())`` (1536-d text + 3 patient values, 14.18 M parameters),
  batch 32 of (4, 128) latents, epsilon-MSE loss, cross-attention in closed form (``"bias"``).
* ``unet_full``: the same with the literal cross-attention over repeated tokens (``"full"``), to show what
  the closed form saves.
* ``vae``: ``VAE(VAEConfig.paper())`` (29.55 M parameters), batch 32 of (12, 1024) signals, MSE + KL loss.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REFERENCE = {"unet": 55.0, "unet_full": 55.0, "vae": 2.5}
REFERENCE_RSS_GB = 3.5
DEFAULT_STEPS = {"unet": 12, "unet_full": 8, "vae": 3}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def run_case(model_name: str, amp: str, batch: int, steps: int, warmup: int, threads: int) -> dict:
    import torch

    from diffusets_core.models import VAE, ConditionalUNet1D, PaperUNetConfig, VAEConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if model_name in ("unet", "unet_full"):
        impl = "bias" if model_name == "unet" else "full"
        model = ConditionalUNet1D(PaperUNetConfig.paper(cross_attn_impl=impl))
        n_params = model.num_parameters()["total"]
        x0 = torch.randn(batch, 4, 128, generator=g)
        text = torch.nn.functional.normalize(torch.randn(batch, 1, 1536, generator=g), dim=-1)
        patient = torch.stack(
            [
                torch.randint(0, 2, (batch,), generator=g).float(),
                20 + 60 * torch.rand(batch, generator=g),
                50 + 60 * torch.rand(batch, generator=g),
            ],
            dim=1,
        )

        def loss_fn():
            t = torch.randint(1, 999, (batch,), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            return (model(x0 + noise, t, text, patient).float() - noise).pow(2).sum() / batch
    else:
        model = VAE(VAEConfig.paper())
        n_params = model.num_parameters()["total"]
        x = torch.randn(batch, 12, 1024, generator=g) * 0.5

        def loss_fn():
            return model.loss(x, kl_weight=0.5)["loss"]

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        if amp == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn()
        else:
            loss = loss_fn()
        loss.backward()
        opt.step()
        return float(loss.detach())

    load_before = os.getloadavg()[0]
    for _ in range(warmup):
        step()
    times, losses = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "model": model_name,
        "amp": amp,
        "batch": batch,
        "steps": steps,
        "threads": threads,
        "params": n_params,
        "s_per_step": med,
        "s_per_step_min": min(times),
        "s_per_step_mean": sum(times) / steps,
        "samples_per_s": batch / med,
        "peak_rss_gb": _peak_rss_gb(),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "finite_loss": all(l == l and abs(l) != float("inf") for l in losses),
        "torch": torch.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["unet", "vae"], choices=["unet", "unet_full", "vae"])
    ap.add_argument("--amp", choices=["none", "bf16", "both"], default="both")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: unet 12, vae 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--_case", nargs=2, metavar=("MODEL", "AMP"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._case:
        res = run_case(
            args._case[0],
            args._case[1],
            args.batch,
            args.steps or DEFAULT_STEPS[args._case[0]],
            args.warmup,
            args.threads,
        )
        print("RESULT " + json.dumps(res))
        return

    amps = ["none", "bf16"] if args.amp == "both" else [args.amp]
    results = []
    for model_name in args.models:
        for amp in amps:
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--_case",
                model_name,
                amp,
                "--batch",
                str(args.batch),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
            ]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                print(f"{model_name}/{amp} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            res = json.loads(line[len("RESULT ") :])
            results.append(res)
            ref = REFERENCE[model_name]
            print(
                f"{model_name:9s} {amp:4s}  params {res['params'] / 1e6:6.2f} M  batch {res['batch']}  "
                f"{res['s_per_step']:7.3f} s/step (median)  {res['samples_per_s']:7.2f} samples/s "
                f"(x{res['samples_per_s'] / ref:.2f} vs reference {ref})  peak RSS {res['peak_rss_gb']:.2f} GB "
                f"(reference {REFERENCE_RSS_GB} GB)  load {res['loadavg_1min']}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
