"""One-shot check of a CUDA machine: prints one table, in under 8 minutes on one modern GPU.

    python benchmarks/gpu_check.py                  # everything below
    python benchmarks/gpu_check.py --skip-tests     # no pytest part
    python benchmarks/gpu_check.py --json out.json  # also write the rows

Rows:
* ``tests``: the CUDA-marked tests (``pytest -k cuda``; they are skipped on CPU machines), passed/failed;
* ``train``: paper-size U-Net (``PaperUNetConfig.paper()``, 14.2 M parameters, batch 256 of (4, 128) latents) and VAE
  (``VAEConfig.paper()``, 29.6 M, batch 32 of (12, 1024)) forward + backward + AdamW step, fp32 and bf16 autocast:
  samples/s (median step) and peak GPU memory;
* ``sample``: the paper U-Net sampling a batch of 256 (DDPM 1000 steps, DDIM 50, DPM-Solver++ 20) and the VAE
  decoding it: ECGs/s and peak GPU memory (random weights: speed does not depend on them);
* ``ddp``: a short torchrun DistributedDataParallel U-Net run (nccl) on every visible GPU: samples/s, all ranks.

Without CUDA it says so and exits 0 (CI runs it that way: tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _unet_batch(batch: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(batch, 1, 1536, generator=g), dim=-1)
    patient = torch.stack(
        [
            torch.randint(0, 2, (batch,), generator=g).float(),
            20 + 60 * torch.rand(batch, generator=g),
            50 + 60 * torch.rand(batch, generator=g),
        ],
        dim=1,
    )
    return torch.randn(batch, 4, 128, generator=g).to(device), text.to(device), patient.to(device)


def _timed(fn, steps: int, warmup: int = 2) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_case(model_name: str, amp: bool, steps: int) -> dict:
    """Median training step of a paper-size model on cuda:0 -> samples/s and peak memory (GiB)."""
    import torch

    from diffusets_core.models import VAE, ConditionalUNet1D, PaperUNetConfig, VAEConfig

    dev = torch.device("cuda")
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    if model_name == "unet":
        batch = 256
        model = ConditionalUNet1D(PaperUNetConfig.paper()).to(dev)
        x0, text, patient = _unet_batch(batch, dev)

        def loss_fn():
            t = torch.randint(1, 999, (batch,), device=dev)
            noise = torch.randn_like(x0)
            return (model(x0 + noise, t, text, patient).float() - noise).pow(2).mean()
    else:
        batch = 32
        model = VAE(VAEConfig.paper()).to(dev)
        x = torch.randn(batch, 12, 1024, device=dev) * 0.5

        def loss_fn():
            return model.loss(x, kl_weight=0.5)["loss"]

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn()
        loss.backward()
        opt.step()

    med = _timed(step, steps)
    return {
        "check": "train",
        "what": f"{model_name} {'bf16' if amp else 'fp32'} batch {batch}",
        "result": f"{batch / med:,.0f} samples/s",
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def sample_case(sampler: str, steps: int, batch: int = 256) -> dict:
    """Paper U-Net sampling + VAE decoding of ``batch`` ECGs on cuda:0 -> ECGs/s and peak memory (GiB)."""
    import torch

    from diffusets_core.diffusion.samplers import get_sampler
    from diffusets_core.diffusion.schedules import NoiseSchedule
    from diffusets_core.models import VAE, ConditionalUNet1D, PaperUNetConfig, VAEConfig

    dev = torch.device("cuda")
    torch.manual_seed(0)
    unet, vae = ConditionalUNet1D(PaperUNetConfig.paper()).to(dev).eval(), VAE(VAEConfig.paper()).to(dev).eval()
    _, text, patient = _unet_batch(batch, dev)
    smp = get_sampler(sampler, NoiseSchedule.paper())
    torch.cuda.reset_peak_memory_stats()

    @torch.no_grad()
    def run():
        def model_fn(x, t):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return unet(x, t, text, patient).float()

        z = smp.sample(model_fn, (batch, 4, 128), seed=list(range(batch)), num_inference_steps=steps, device=dev)
        return vae.decode(z)

    med = _timed(run, 1, warmup=1)
    return {
        "check": "sample",
        "what": f"{sampler}-{steps} batch {batch} (bf16 U-Net)",
        "result": f"{batch / med:,.1f} ECGs/s ({med:.1f} s a batch)",
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def ddp_worker(steps: int) -> None:
    """torchrun entry: DDP paper U-Net training on nccl; rank 0 prints one RESULT line."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(dev)
    from diffusets_core.models import ConditionalUNet1D, PaperUNetConfig

    batch = 256
    model = torch.nn.parallel.DistributedDataParallel(
        ConditionalUNet1D(PaperUNetConfig.paper()).to(dev), device_ids=[dev]
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0, text, patient = _unet_batch(batch, dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            t = torch.randint(1, 999, (batch,), device=dev)
            noise = torch.randn_like(x0)
            loss = (model(x0 + noise, t, text, patient).float() - noise).pow(2).mean()
        loss.backward()
        opt.step()

    med = _timed(step, steps)
    if rank == 0:
        print(
            "RESULT "
            + json.dumps(
                {
                    "check": "ddp",
                    "what": f"torchrun {world} GPU(s), U-Net bf16 batch {batch}/rank",
                    "result": f"{world * batch / med:,.0f} samples/s (all ranks)",
                    "peak_gib": torch.cuda.max_memory_allocated(dev) / 2**30,
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


def run_tests(timeout: int) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    return {
        "check": "tests",
        "what": "pytest -k cuda",
        "result": f"{last} (exit {r.returncode}, {time.perf_counter() - t0:.0f} s)",
        "peak_gib": None,
    }


def table(rows: list[dict]) -> str:
    lines = ["| check | what | result | peak GPU memory |", "|---|---|---|---|"]
    for r in rows:
        mem = "" if r.get("peak_gib") is None else f"{r['peak_gib']:.2f} GiB"
        lines.append(f"| {r['check']} | {r['what']} | {r['result']} | {mem} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--_ddp", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import torch

    if args._ddp:
        ddp_worker(args.train_steps)
        return 0
    if not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "nothing to check, skipped."
        )
        return 0
    t_start = time.perf_counter()
    n_gpu = torch.cuda.device_count()
    print(
        f"device: {torch.cuda.get_device_name(0)} x{n_gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}",
        flush=True,
    )
    rows: list[dict] = []

    def attempt(fn, *a):
        try:
            rows.append(fn(*a))
        except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
            rows.append(
                {
                    "check": getattr(fn, "__name__", "?"),
                    "what": " ".join(map(str, a)),
                    "result": f"FAILED: {type(exc).__name__}: {exc}"[:300],
                    "peak_gib": None,
                }
            )
        print(table(rows[-1:]).splitlines()[-1], flush=True)

    if not args.skip_tests:
        attempt(run_tests, 180)
    for name in ("unet", "vae"):
        for amp in (False, True):
            attempt(train_case, name, amp, args.train_steps)
    for sampler, steps in (("ddpm", 1000), ("ddim", 50), ("dpmsolver++", 20)):
        attempt(sample_case, sampler, steps)
    t0 = time.perf_counter()
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            str(n_gpu),
            str(Path(__file__).resolve()),
            "--_ddp",
            "--train-steps",
            str(args.train_steps),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
    rows.append(
        json.loads(line[7:])
        if line
        else {
            "check": "ddp",
            "what": f"torchrun {n_gpu} GPU(s)",
            "result": f"FAILED: {r.stderr[-300:]}",
            "peak_gib": None,
        }
    )
    rows[-1]["result"] += f" ({time.perf_counter() - t0:.0f} s with start-up)"
    print()
    print(f"gpu_check on {torch.cuda.get_device_name(0)} x{n_gpu} ({time.perf_counter() - t_start:.0f} s in all)")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any(str(r["result"]).startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
