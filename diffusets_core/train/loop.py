"""One training loop for the VAE and the U-Net: AdamW + cosine, clipping, EMA, bf16 on CUDA, DDP, resume.

Determinism is by construction rather than by saved RNG state: the data order of epoch ``e`` is the
``DistributedSampler`` permutation for ``(seed, e)``, and all randomness inside a step (noise, timesteps,
condition dropout) comes from a generator seeded with ``(seed, step, rank)``. Resuming at step ``s``
therefore replays exactly the batches and noise an uninterrupted run would have used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from ..checkpoint import CheckpointError, atomic_save, load_checkpoint
from ..device import resolve_device
from ..fileio import atomic_write_text
from ..layout import BEST_CHECKPOINT, HISTORY_FILE, LAST_CHECKPOINT, TRAIN_CONFIG_FILE
from ..progress import write_progress
from .distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from .ema import EMA

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, Batch, torch.Generator], torch.Tensor]


@dataclass
class TrainConfig:
    """Optimisation settings shared by the VAE and U-Net trainers."""

    max_steps: int = 1000
    batch_size: int = 32  # per process
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio (the reference's eta_min = 0.1 lr)
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    val_every: int = 200
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA only; "bf16": always; "off": never
    num_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse settings no training can mean (``max_steps: 0`` used to write an untrained model), so a profile or
        command line fails before anything is written. Raises ValueError naming the field."""
        problems = []
        for name in ("max_steps", "batch_size", "val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            problems.append(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"train.lr must be > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"train.betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            problems.append(f"train.grad_clip must be >= 0 (0 or null: no clipping), got {self.grad_clip}")
        if not 0 <= self.ema_decay <= 1:
            problems.append(f"train.ema_decay must be in [0, 1], got {self.ema_decay}")
        if self.amp not in ("auto", "bf16", "off"):
            problems.append(f"train.amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        if self.num_threads is not None and self.num_threads < 1:
            problems.append(f"train.num_threads must be >= 1 or null, got {self.num_threads}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any], seed: int) -> TrainConfig:
        """The defaults with a profile's ``train`` settings (``overrides``) applied; ``seed`` unless they set one."""
        return cls(**{"seed": seed, **overrides})

    def amp_enabled(self, device: torch.device) -> bool:
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"train.amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        return self.amp == "bf16" or (self.amp == "auto" and device.type == "cuda")


class TensorSource:
    """In-memory training data: a dict of equally long tensors indexed by row."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"all tensors must have the same length, got {lengths}")
        self.tensors = tensors
        self.n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.n

    def batch(self, idx: torch.Tensor, device: torch.device) -> Batch:
        return {k: v[idx].to(device, non_blocking=True) for k, v in self.tensors.items()}


def build_seeded(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Construct a model whose initial weights come from ``seed`` alone, not from whatever consumed the global
    RNG before (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step * 97 + rank) % (2**63 - 1))
    return g


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_val_loss: float
    seconds: float
    samples_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Train ``model`` on ``train`` with ``loss_fn``; checkpoints go to ``out_dir`` (rank 0 only).

    ``meta`` (model config, embedder identity, data provenance...) is stored in every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train: TensorSource,
        out_dir: str | os.PathLike,
        cfg: TrainConfig,
        *,
        val: TensorSource | None = None,
        meta: dict | None = None,
    ):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dist: DistInfo = init_distributed(self.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.out_dir = Path(out_dir)
        self.loss_fn = loss_fn
        self.train_src, self.val_src = train, val
        self.meta = meta or {}
        torch.manual_seed(cfg.seed)
        self.model = model.to(self.device)
        if self.dist.enabled:
            # Every rank must start from identical weights: broadcast rank 0's.
            for p in self.model.state_dict().values():
                torch.distributed.broadcast(p, 0)
            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.wrapped: nn.Module = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.wrapped = self.model
        params: Any = [p for p in self.model.parameters() if p.requires_grad]
        if hasattr(self.model, "optimizer_groups"):  # parts trained at their own rate (a twin's new encoder)
            params = [
                {"params": [p for p in g["params"] if p.requires_grad], "lr": cfg.lr * float(g.get("lr_scale", 1.0))}
                for g in self.model.optimizer_groups()
            ]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg))
        self.ema = EMA(self.model, cfg.ema_decay)
        self.step = 0
        self.best_val = float("inf")
        self.history: list[dict[str, Any]] = []
        # the data order (which rows each step reads); not a diffusion sampler
        self.data_sampler = DistributedSampler(
            range(len(train)),
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=True,
        )
        self.steps_per_epoch = len(self.data_sampler) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size {cfg.batch_size} x {self.dist.world_size} process(es) is larger than "
                f"the training set ({len(train)} samples)"
            )

    # -- checkpoints -------------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "best_val": self.best_val,
            "history": self.history,
            "train_config": _jsonable(asdict(self.cfg)),
            "meta": self.meta,
        }

    def save(self, best: bool = False) -> None:
        if not self.dist.is_main:
            return
        atomic_save(self._payload(), self.out_dir / LAST_CHECKPOINT)
        if best:
            atomic_save(
                {
                    "model": self.ema.shadow.state_dict(),
                    "step": self.step,
                    "val_loss": self.best_val,
                    "train_config": _jsonable(asdict(self.cfg)),
                    "meta": self.meta,
                },
                self.out_dir / BEST_CHECKPOINT,
            )
        self._write_history()

    def _write_history(self) -> None:
        if not self.history:
            return
        keys = sorted({k for h in self.history for k in h}, key=lambda k: (k != "step", k))
        lines = [",".join(keys)] + [
            ",".join("" if h.get(k) is None else str(h.get(k)) for k in keys) for h in self.history
        ]
        atomic_write_text(self.out_dir / HISTORY_FILE, "\n".join(lines) + "\n")
        atomic_write_text(
            self.out_dir / TRAIN_CONFIG_FILE,
            json.dumps({"train_config": _jsonable(asdict(self.cfg)), "meta": self.meta}, indent=2, default=str),
        )

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Continue from ``last.pt`` (or ``path``). Returns False when there is nothing to resume."""
        path = Path(path) if path else self.out_dir / LAST_CHECKPOINT
        if not path.is_file():
            return False
        checkpoint = load_checkpoint(path, map_location=self.device)
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.ema.load_state_dict(checkpoint["ema"])
            self.opt.load_state_dict(checkpoint["optimizer"])
            self.sched.load_state_dict(checkpoint["scheduler"])
        except (KeyError, RuntimeError, ValueError) as exc:  # ValueError: optimizer parameter groups differ
            raise CheckpointError(
                f"{path}: cannot resume this model from it (written by a different model or version; retrain with "
                f"--restart or delete the file): {exc}"
            ) from None
        self.step = int(checkpoint["step"])
        self.best_val = float(checkpoint["best_val"])
        self.history = list(checkpoint.get("history", []))
        log.info("resumed from %s at step %d", path, self.step)
        return True

    # -- training ----------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> torch.Tensor:
        epoch, b = divmod(step, self.steps_per_epoch)
        if getattr(self, "_epoch", None) != epoch:
            self.data_sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(iter(self.data_sampler))
        order = self._order
        bs = self.cfg.batch_size
        return torch.tensor(order[b * bs : (b + 1) * bs], dtype=torch.long)

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.val_src is None or len(self.val_src) == 0:
            return None
        model = self.ema.shadow
        model.eval()
        total, count = 0.0, 0
        g = _step_generator(self.cfg.seed, -1, 0, self.device)  # same noise at every validation
        bs = self.cfg.batch_size
        for i in range(0, len(self.val_src), bs):
            idx = torch.arange(i, min(i + bs, len(self.val_src)))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp_enabled(self.device)):
                loss = self.loss_fn(model, self.val_src.batch(idx, self.device), g)
            total += float(loss) * len(idx)
            count += len(idx)
        return total / count

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``cfg.max_steps`` (or stop early at ``stop_at``, leaving a resumable checkpoint)."""
        cfg = self.cfg
        end = min(cfg.max_steps, stop_at) if stop_at else cfg.max_steps
        amp = cfg.amp_enabled(self.device)
        self.model.train()
        pbar = None
        if cfg.progress and self.dist.is_main:
            pbar = tqdm(total=cfg.max_steps, initial=self.step, desc=self.out_dir.name, unit="step")
        t0, start_step, running = time.perf_counter(), self.step, []
        started = time.time()  # identifies this fit() in the progress file (a resumed run is a new bar)
        while self.step < end:
            idx = self._batch_indices(self.step)
            batch = self.train_src.batch(idx, self.device)
            g = _step_generator(cfg.seed, self.step, self.dist.rank, self.device)
            if hasattr(self.loss_fn, "step"):  # step-dependent losses (KL annealing) read it from here
                self.loss_fn.step = self.step
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = self.loss_fn(self.wrapped, batch, g)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step}")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = None
            if cfg.grad_clip:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
            self.opt.step()
            self.sched.step()
            self.ema.update(self.model)
            self.step += 1
            running.append(float(loss.detach()))
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix(loss=f"{running[-1]:.4g}")
            last = self.step == end
            rec: dict[str, Any] = {}
            if self.step % cfg.log_every == 0 or last:
                rec = {
                    "step": self.step,
                    "train_loss": all_reduce_mean(sum(running) / len(running), self.dist, self.device),
                    "lr": self.sched.get_last_lr()[0],
                    "grad_norm": grad_norm,
                }
                running = []
            is_best = False
            if self.step % cfg.val_every == 0 or last:
                val = self.validate()
                rec = rec or {"step": self.step}
                rec["val_loss"] = val
                if val is not None and val < self.best_val:
                    self.best_val, is_best = val, True
            if rec:
                self.history.append(rec)
                if self.dist.is_main and "train_loss" in rec:
                    elapsed = time.perf_counter() - t0
                    rate = (self.step - start_step) / elapsed if elapsed > 0 else 0.0
                    write_progress(
                        self.out_dir,
                        stage=self.out_dir.name,
                        step=self.step,
                        total=cfg.max_steps,
                        loss=rec["train_loss"],
                        val_loss=rec.get("val_loss"),
                        elapsed_s=elapsed,
                        eta_s=(cfg.max_steps - self.step) / rate if rate > 0 else None,
                        started=started,
                    )
            if is_best or self.step % cfg.checkpoint_every == 0 or last:
                # Without a validation split the final EMA weights are the ones to use.
                self.save(best=is_best or (last and self.val_src is None))
        if pbar is not None:
            pbar.close()
        barrier(self.dist)
        seconds = time.perf_counter() - t0
        done = self.step - start_step
        sps = done * cfg.batch_size * self.dist.world_size / seconds if seconds > 0 else float("nan")
        return TrainResult(self.out_dir, self.step, self.best_val, seconds, sps, self.history)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
