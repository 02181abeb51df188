"""One-shot check of a CUDA machine: one table, in under 8 minutes on one modern GPU, written for the book.

    python benchmarks/gpu_check.py                      # everything below -> book/measured/gpu_check.csv
    python benchmarks/gpu_check.py --skip-tests         # no pytest part
    python benchmarks/gpu_check.py --reference-dir DIR  # also the authors' U-Net, from a clone of their code
    python benchmarks/gpu_check.py --json out.json      # also write the rows as JSON
    python benchmarks/gpu_check.py --book-times runs/gpu  # a GPU build's chapter times -> book/measured/
    python benchmarks/gpu_check.py --smoke --csv /tmp/x.csv  # the same code on the CPU at toy sizes (a plumbing check)

Rows (``check``):
* ``tests``: the CUDA tests (the test files that define a ``test_*cuda*`` function, ``pytest -k cuda``; they are
  skipped on CPU machines), passed/failed;
* ``train``: paper-size U-Net (``PaperUNetConfig.paper()``, 14.2 M parameters, batch 256 of (4, 128) latents) and VAE
  (``VAEConfig.paper()``, 29.6 M, batch 32 of (12, 1024)) forward + backward + AdamW step, fp32 and bf16 autocast:
  samples/s (median step) and peak GPU memory;
* ``reference`` (with ``--reference-dir DIR``): the authors' U-Net, ``ECGConditional(1000, kernel_size=7,
  num_levels=7, n_channels=4, text_embed_dim=1536)`` from ``DIR/unet/unet_conditional.py`` (a clone of
  github.com/PKUDigitalHealth/DiffuSETS or of the authors' commits in github.com/tuhlnaa/DiffuSETS_Exp-Extended;
  imported at run time, nothing of it is stored in this repository), timed exactly like our ``train`` U-Net rows
  (same batch, inputs, loss, optimiser, fp32 and bf16);
* ``sample``: the paper U-Net sampling a batch of 256 (DDPM 1000 steps, DDIM 50, DPM-Solver++ 20) and the VAE
  decoding it: ECGs/s and peak GPU memory (random weights: speed does not depend on them);
* ``ddp``: a short torchrun DistributedDataParallel U-Net run (nccl) on every visible GPU: samples/s, all ranks.

It imports only PyTorch and ``diffusets_core``'s models and samplers (numpy and the standard library with them), so a
machine with PyTorch alone runs every row but ``tests`` (which needs pytest and skips itself without it).

Output: the table on stdout and, on a CUDA machine, ``book/measured/gpu_check.csv`` (``--csv PATH`` elsewhere,
``--csv ''`` nowhere), whose columns are documented in ``diffusets_core/measured.py``; the book renders that file and
says "not yet measured on a GPU" while it does not exist. ``--book-times RUN_DIR`` instead writes
``book/measured/gpu_profile_times.csv`` from a complete ``make book PROFILE=gpu`` run (the profile unchanged, its
models trained on CUDA): each chapter's seconds as papermill recorded them.

Without CUDA it says so and exits 0 (CI runs it that way: tests/test_gpu_check.py). ``--smoke`` runs every row on
the CPU with toy sizes (a 4-level paper U-Net, a 32-64-channel VAE, batch 2, 2-4 sampler steps, one gloo process
for DDP) to check the script end to end; its rows say ``mode smoke`` and are never written under book/measured/.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MEASURED = ROOT / "book" / "measured"


@dataclass(frozen=True)
class Sizes:
    """What each row runs: the paper's sizes (full) or toy ones (``--smoke``)."""

    mode: str
    unet: dict = field(default_factory=dict)  # PaperUNetConfig.paper(**unet)
    vae: dict = field(default_factory=dict)  # VAEConfig.paper(**vae)
    unet_batch: int = 256
    vae_batch: int = 32
    sample_batch: int = 256
    samplers: tuple[tuple[str, int], ...] = (("ddpm", 1000), ("ddim", 50), ("dpmsolver++", 20))
    reference: dict = field(
        default_factory=lambda: {"kernel_size": 7, "num_levels": 7, "n_channels": 4, "text_embed_dim": 1536}
    )
    warmup: int = 2


FULL = Sizes("full")
SMOKE = Sizes(
    "smoke",
    unet={"levels": 4},
    vae={"channels": (32, 32, 64)},
    unet_batch=2,
    vae_batch=2,
    sample_batch=2,
    samplers=(("ddpm", 4), ("ddim", 2), ("dpmsolver++", 2)),
    reference={"kernel_size": 7, "num_levels": 4, "n_channels": 4, "text_embed_dim": 1536},
    warmup=1,
)


def _row(check: str, what: str, **values) -> dict:
    """A row with every column of ``diffusets_core.measured.GPU_CHECK_COLUMNS`` (machine columns filled later)."""
    from diffusets_core.measured import GPU_CHECK_COLUMNS

    row = dict.fromkeys(GPU_CHECK_COLUMNS, "")
    row.update(check=check, what=what, **{k: ("" if v is None else v) for k, v in values.items()})
    return row


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def _peak_gib(dev) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None


def _timed(fn, steps: int, dev, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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


def _train_step_rate(model, loss_fn, amp: bool, steps: int, dev, warmup: int) -> float:
    """Median seconds of one forward + backward + AdamW step of ``model`` under ``loss_fn``."""
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn()
        loss.backward()
        opt.step()

    return _timed(step, steps, dev, warmup)


def _eps_loss(model_call, x0, dev):
    """The epsilon-prediction loss both U-Nets are timed with (``model_call(x_t, t) -> eps``)."""
    import torch

    def loss_fn():
        t = torch.randint(1, 999, (x0.shape[0],), device=dev)
        noise = torch.randn_like(x0)
        return (model_call(x0 + noise, t).float() - noise).pow(2).mean()

    return loss_fn


def train_case(sizes: Sizes, model_name: str, amp: bool, steps: int, dev) -> dict:
    """Median training step of a paper-size model -> samples/s and peak memory (GiB)."""
    import torch

    from diffusets_core.models import VAE, ConditionalUNet1D, PaperUNetConfig, VAEConfig

    torch.manual_seed(0)
    _reset_peak(dev)
    if model_name == "unet":
        batch = sizes.unet_batch
        model = ConditionalUNet1D(PaperUNetConfig.paper(**sizes.unet)).to(dev)
        x0, text, patient = _unet_batch(batch, dev)
        loss_fn = _eps_loss(lambda x, t: model(x, t, text, patient), x0, dev)
    else:
        batch = sizes.vae_batch
        model = VAE(VAEConfig.paper(**sizes.vae)).to(dev)
        x = torch.randn(batch, 12, 1024, device=dev) * 0.5

        def loss_fn():
            return model.loss(x, kl_weight=0.5)["loss"]

    med = _train_step_rate(model, loss_fn, amp, steps, dev, sizes.warmup)
    precision = "bf16" if amp else "fp32"
    return _row(
        "train",
        f"{model_name} {precision} batch {batch}",
        model=f"{model_name}_paper",
        precision=precision,
        batch=batch,
        steps=steps,
        value=round(batch / med, 2),
        unit="samples/s",
        peak_gib=_round(_peak_gib(dev)),
        detail=f"{med * 1000:.1f} ms a step",
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def load_reference_unet_class(ref_dir: Path):
    """The authors' U-Net class from ``ref_dir/unet/unet_conditional.py`` (``ECGConditional``, or
    ``ECGconditional`` as the authors' own commits name it), imported from that file at run time."""
    path = Path(ref_dir).resolve() / "unet" / "unet_conditional.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --reference-dir must be a clone of the authors' DiffuSETS code "
            "(github.com/PKUDigitalHealth/DiffuSETS, or github.com/tuhlnaa/DiffuSETS_Exp-Extended) with unet/unet_conditional.py"
        )
    spec = importlib.util.spec_from_file_location("diffusets_reference_unet_conditional", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.parent))  # the file's own imports, relative to its repository
    spec.loader.exec_module(module)
    for name in ("ECGConditional", "ECGconditional"):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"{path}: defines neither ECGConditional nor ECGconditional")


def reference_case(sizes: Sizes, ref_dir: Path, amp: bool, steps: int, dev) -> dict:
    """The authors' U-Net timed as :func:`train_case` times ours: same batch, inputs, loss and optimiser."""
    import torch

    cls = load_reference_unet_class(ref_dir)
    torch.manual_seed(0)
    _reset_peak(dev)
    batch = sizes.unet_batch
    model = cls(1000, **sizes.reference).to(dev)
    x0, text, patient = _unet_batch(batch, dev)
    # the reference's condition: a dict of (B, 1, 1) tensors, in the order sex, age, heart rate
    condition = {name: patient[:, i].reshape(batch, 1, 1) for i, name in enumerate(("gender", "age", "heart rate"))}
    loss_fn = _eps_loss(lambda x, t: model(x, t, text, condition), x0, dev)
    med = _train_step_rate(model, loss_fn, amp, steps, dev, sizes.warmup)
    precision = "bf16" if amp else "fp32"
    return _row(
        "reference",
        f"authors' U-Net ({cls.__name__}) {precision} batch {batch}",
        model="unet_reference",
        precision=precision,
        batch=batch,
        steps=steps,
        value=round(batch / med, 2),
        unit="samples/s",
        peak_gib=_round(_peak_gib(dev)),
        detail=f"{med * 1000:.1f} ms a step",
    )


def sample_case(sizes: Sizes, sampler: str, steps: int, dev) -> dict:
    """Paper U-Net sampling + VAE decoding of a batch -> ECGs/s and peak memory (GiB)."""
    import torch

    from diffusets_core.diffusion.samplers import get_sampler
    from diffusets_core.diffusion.schedules import NoiseSchedule
    from diffusets_core.models import VAE, ConditionalUNet1D, PaperUNetConfig, VAEConfig

    batch = sizes.sample_batch
    torch.manual_seed(0)
    unet = ConditionalUNet1D(PaperUNetConfig.paper(**sizes.unet)).to(dev).eval()
    vae = VAE(VAEConfig.paper(**sizes.vae)).to(dev).eval()
    _, text, patient = _unet_batch(batch, dev)
    smp = get_sampler(sampler, NoiseSchedule.paper())
    _reset_peak(dev)

    @torch.no_grad()
    def run():
        def model_fn(x, t):
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                return unet(x, t, text, patient).float()

        z = smp.sample(model_fn, (batch, 4, 128), seed=list(range(batch)), num_inference_steps=steps, device=dev)
        return vae.decode(z)

    med = _timed(run, 1, dev, warmup=1)
    return _row(
        "sample",
        f"{sampler}-{steps} batch {batch} (bf16 U-Net)",
        model="unet_paper+vae_paper",
        precision="bf16",
        batch=batch,
        steps=steps,
        value=round(batch / med, 3),
        unit="ECGs/s",
        peak_gib=_round(_peak_gib(dev)),
        detail=f"{med:.2f} s a batch",
    )


def ddp_worker(sizes: Sizes, steps: int) -> None:
    """torchrun entry: DDP paper U-Net training (nccl on CUDA, gloo on the CPU); rank 0 prints one RESULT line."""
    import torch
    import torch.distributed as dist

    from diffusets_core.models import ConditionalUNet1D, PaperUNetConfig

    cuda = torch.cuda.is_available() and sizes.mode == "full"
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    batch = sizes.unet_batch
    net = ConditionalUNet1D(PaperUNetConfig.paper(**sizes.unet)).to(dev)
    # the paper network keeps the reference's dead parameters (for its checkpoints); no gradient reaches them, and
    # DDP's reducer refuses parameters without one, so they are frozen first, as the trainer does
    net.freeze_unused_parameters()
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev] if cuda else None)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x0, text, patient = _unet_batch(batch, dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            t = torch.randint(1, 999, (batch,), device=dev)
            noise = torch.randn_like(x0)
            loss = (model(x0 + noise, t, text, patient).float() - noise).pow(2).mean()
        loss.backward()
        opt.step()

    med = _timed(step, steps, dev, sizes.warmup)
    if rank == 0:
        row = _row(
            "ddp",
            f"torchrun {world} {'GPU' if cuda else 'CPU process'}(es), U-Net bf16 batch {batch}/rank",
            model="unet_paper",
            precision="bf16",
            batch=batch,
            steps=steps,
            value=round(world * batch / med, 2),
            unit="samples/s",
            peak_gib=_round(_peak_gib(dev)),
            detail=f"{world} rank(s), {'nccl' if cuda else 'gloo'}, all ranks",
        )
        print("RESULT " + json.dumps(row), flush=True)
    dist.destroy_process_group()


def cuda_test_files() -> list[Path]:
    """The test files that define a CUDA test (a ``test_*cuda*`` function): collecting only those keeps the row free
    of the modules that need wfdb, neurokit2 or papermill, which a PyTorch-only machine lacks."""
    pattern = re.compile(r"^def test_\w*cuda\w*\(", re.MULTILINE)
    return [p for p in sorted((ROOT / "tests").glob("test_*.py")) if pattern.search(p.read_text(encoding="utf-8"))]


def run_tests(timeout: int) -> dict:
    if importlib.util.find_spec("pytest") is None:
        return _row("tests", "pytest -k cuda", detail="not run: pytest is not installed")
    files = cuda_test_files()
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    last = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
    m = re.search(r"(\d+) passed", last)
    return _row(
        "tests",
        f"pytest -k cuda ({len(files)} file(s))",
        value=int(m.group(1)) if m else None,
        unit="passed" if m else "",
        detail=f"{last} (exit {r.returncode}, {time.perf_counter() - t0:.0f} s)",
    )


def run_ddp(sizes: Sizes, n_proc: int, steps: int) -> dict:
    t0 = time.perf_counter()
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone", "--nproc_per_node", str(n_proc)]
    cmd += [str(Path(__file__).resolve()), "--_ddp", "--train-steps", str(steps)]
    cmd += ["--smoke"] if sizes.mode == "smoke" else []
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
        line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT ")), None)
        # the worker's own error, not torchrun's summary of it
        errors = [l for l in (r.stdout + r.stderr).splitlines() if re.search(r"\b\w*(Error|Exception)\b:", l)]
        failure = None if line else f"FAILED: {(errors[0] if errors else r.stderr[-300:]).strip()[:300]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        line, failure = None, f"FAILED: {type(exc).__name__}: {exc}"[:300]
    row = json.loads(line[7:]) if line else _row("ddp", f"torchrun {n_proc} process(es)", detail=failure)
    row["detail"] = f"{row['detail']}; {time.perf_counter() - t0:.0f} s with start-up".lstrip("; ")
    return row


def _git_commit() -> str:
    try:
        r = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def machine_columns(dev, mode: str) -> dict:
    import torch

    if dev.type == "cuda":
        name = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    else:
        name = f"cpu ({os.cpu_count()} cores)"
    return {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "commit": _git_commit(),
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "mode": mode,
    }


def _result(r: dict) -> str:
    value = "" if r.get("value") in ("", None) else f"{float(r['value']):,.1f} {r.get('unit', '')}".strip()
    detail = r.get("detail") or ""
    return f"{value} ({detail})" if value and detail else value or detail


def table(rows: list[dict]) -> str:
    lines = ["| check | what | result | peak GPU memory |", "|---|---|---|---|"]
    for r in rows:
        mem = "" if r.get("peak_gib") in ("", None) else f"{float(r['peak_gib']):.2f} GiB"
        lines.append(f"| {r['check']} | {r['what']} | {_result(r)} | {mem} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def book_time_rows(run_dir: Path) -> list[dict]:
    """The chapter times of a complete ``make book PROFILE=gpu`` run, checked to stand for the profile on a GPU: the
    run records profile ``gpu`` with the settings of ``profiles/gpu.yaml`` (no ``--set``), every chapter of it has an
    executed notebook with papermill's duration, and both models were trained on CUDA. Raises ValueError saying
    what is missing or different."""
    import torch

    from diffusets_core.config import load_profile, profile_changes, recorded_profile
    from diffusets_core.layout import EXECUTED_DIR, SUMMARY_FILE

    run_dir = Path(run_dir)
    rec = recorded_profile(run_dir)
    if rec is None:
        raise ValueError(f"{run_dir}: no profile.json; give the run directory of `make book PROFILE=gpu` (runs/gpu)")
    if rec.name != "gpu":
        raise ValueError(f"{run_dir}: made with profile {rec.name!r}, not 'gpu'")
    changes = profile_changes(load_profile("gpu"), rec)
    if changes:
        raise ValueError(
            f"{run_dir}: its settings differ from profiles/gpu.yaml ({'; '.join(changes[:5])}); only a run of the "
            "profile as it is stands for its time"
        )
    devices = {}
    for stage in ("vae", "unet"):
        summary = run_dir / stage / SUMMARY_FILE
        device = json.loads(summary.read_text()).get("device", "") if summary.is_file() else ""
        if not device.startswith("cuda"):
            raise ValueError(f"{summary}: the {stage} was trained on {device or 'an unrecorded device'}, not on CUDA")
        devices[stage] = device
    rows = []
    for chapter in rec.notebooks:
        nb = run_dir / EXECUTED_DIR / f"{chapter}.ipynb"
        meta = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {}) if nb.is_file() else {}
        if not isinstance(meta.get("duration"), (int, float)):
            raise ValueError(f"{nb}: no executed notebook with papermill's duration; run the whole book first")
        rows.append(
            {
                "chapter": chapter,
                "seconds": round(float(meta["duration"]), 1),
                "device": devices["unet"].split(" ", 1)[-1].strip("()"),
                "torch": torch.__version__,
                "cuda": torch.version.cuda or "",
                "commit": _git_commit(),
                "measured_utc": str(meta.get("end_time") or "")[:16].replace("T", " "),
                "profile": "gpu",
            }
        )
    return rows


#: the ``check`` column of a row whose function raised
CHECK_OF = {"run_tests": "tests", "train_case": "train", "reference_case": "reference", "sample_case": "sample"}


def _default_csv(name: str, given: str | None) -> Path | None:
    if given is not None:
        return Path(given) if given else None
    return MEASURED / name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 10; --smoke 1)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--csv", default=None, help="where the rows go (default book/measured/...; '' for nowhere)")
    ap.add_argument("--reference-dir", type=Path, default=None, help="a clone of the authors' code: time their U-Net")
    ap.add_argument(
        "--book-times", type=Path, default=None, metavar="RUN_DIR", help="write a GPU build's chapter times"
    )
    ap.add_argument("--smoke", action="store_true", help="the CPU at toy sizes: checks the script, measures nothing")
    ap.add_argument("--_ddp", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.train_steps is None:
        args.train_steps = 1 if args.smoke else 10

    import torch

    if args._ddp:
        ddp_worker(sizes, args.train_steps)
        return 0
    if args.book_times is not None:
        from diffusets_core.measured import GPU_TIMES_COLUMNS, GPU_TIMES_FILE

        try:
            rows = book_time_rows(args.book_times)
        except ValueError as exc:
            print(f"gpu_check --book-times: {exc}", file=sys.stderr)
            return 2
        out = _default_csv(GPU_TIMES_FILE, args.csv)
        if out is not None:
            write_csv(out, rows, GPU_TIMES_COLUMNS)
            print(f"wrote {out}")
        for r in rows:
            print(f"{r['chapter']:24s} {r['seconds'] / 60:6.1f} min")
        return 0
    from diffusets_core.measured import GPU_CHECK_COLUMNS, GPU_CHECK_FILE

    if args.smoke:
        out = Path(args.csv) if args.csv else None
        if out is not None and out.resolve().parent == MEASURED.resolve():
            print(
                "gpu_check --smoke: its rows are not GPU measurements; write them outside book/measured/",
                file=sys.stderr,
            )
            return 2
        dev = torch.device("cpu")
        torch.set_num_threads(1)  # a plumbing check: one thread is the least sensitive to a busy machine
    else:
        if not torch.cuda.is_available():
            print(
                f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                "nothing to check, skipped."
            )
            return 0
        out = _default_csv(GPU_CHECK_FILE, args.csv)
        dev = torch.device("cuda", 0)
    t_start = time.perf_counter()
    machine = machine_columns(dev, sizes.mode)
    print(
        f"device: {machine['device']}, torch {machine['torch']}, CUDA {machine['cuda'] or '-'} ({sizes.mode})",
        flush=True,
    )
    rows: list[dict] = []

    def attempt(what: str, fn, *a):
        try:
            rows.append(fn(*a))
        except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
            check = CHECK_OF.get(getattr(fn, "__name__", ""), "?")
            rows.append(_row(check, what, detail=f"FAILED: {type(exc).__name__}: {exc}"[:300]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)

    if not (args.skip_tests or args.smoke):
        attempt("pytest -k cuda", run_tests, 180)
    for name in ("unet", "vae"):
        for amp in (False, True):
            attempt(f"{name} {'bf16' if amp else 'fp32'}", train_case, sizes, name, amp, args.train_steps, dev)
    if args.reference_dir is not None:
        for amp in (False, True):
            what = f"authors' U-Net {'bf16' if amp else 'fp32'}"
            attempt(what, reference_case, sizes, args.reference_dir, amp, args.train_steps, dev)
    for sampler, steps in sizes.samplers:
        attempt(f"{sampler}-{steps}", sample_case, sizes, sampler, steps, dev)
    n_proc = torch.cuda.device_count() if dev.type == "cuda" else 1
    rows.append(run_ddp(sizes, n_proc, args.train_steps))
    for r in rows:
        r.update(machine)
    print()
    print(f"gpu_check on {machine['device']} ({time.perf_counter() - t_start:.0f} s in all, {sizes.mode})")
    print(table(rows))
    if out is not None:
        write_csv(out, rows, GPU_CHECK_COLUMNS)
        print(f"wrote {out}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if any(str(r.get("detail", "")).startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
