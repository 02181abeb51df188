"""Stage 1: train the VAE on the run's training split, measure the latent scale, write ``vae/model.pt``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..data.store import SignalStore
from ..device import device_name
from ..layout import vae_dir
from ..models.vae import VAE, VAEConfig, estimate_scale_factor
from .artifacts import load_best_weights, write_stage_outputs
from .datasets import store_signals
from .loop import TensorSource, TrainConfig, Trainer

__all__ = [
    "PAPER_KL_WEIGHT",
    "VAELoss",
    "VAETrainModule",
    "measure_latent_channel_stats",
    "measure_latent_scale",
    "reconstruction_error",
    "train_vae",
]

PAPER_KL_WEIGHT = 1.0 / 128  # the reference's KL reduction, expressed per signal value (see VAE.loss)


class VAETrainModule(nn.Module):
    """Puts the VAE loss in ``forward`` so DistributedDataParallel sees (and syncs) the whole step."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, noise: torch.Tensor, kl_weight: float) -> dict[str, torch.Tensor]:
        return self.vae.loss(x, kl_weight=kl_weight, noise=noise)


class VAELoss:
    """MSE + KL with the KL weight ramped linearly from 10 % to 100 % over ``anneal_steps`` (the
    reference ramps 0.1 → 1.0 per epoch). Validation always uses the full weight, so validation losses
    are comparable across steps."""

    def __init__(self, kl_weight: float, anneal_steps: int):
        self.kl_weight, self.anneal_steps, self.step = kl_weight, max(1, anneal_steps), 0

    def weight(self, training: bool) -> float:
        if not training:
            return self.kl_weight
        return self.kl_weight * min(1.0, 0.1 + 0.9 * self.step / self.anneal_steps)

    def __call__(self, model: nn.Module, batch: dict, gen: torch.Generator) -> torch.Tensor:
        x = batch["x"]
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        c = inner.vae.cfg
        noise = torch.randn(
            (x.shape[0], c.latent_channels, x.shape[-1] // c.downsample_factor), generator=gen, device=x.device
        )
        return model(x, noise, self.weight(model.training))["loss"]


def train_vae(
    run_dir: str | os.PathLike,
    model: dict | None = None,
    train: dict | None = None,
    *,
    seed: int = 0,
    kl_weight: float = PAPER_KL_WEIGHT,
    kl_anneal_frac: float = 0.5,
    resume: bool = True,
) -> dict:
    """Train the VAE on the run's training split; measure the latent scale; write ``vae/model.pt``.

    Returns the summary (also in ``vae/summary.json``): steps, seconds, samples_per_s, best_val_loss, val_mse (mV²),
    latent_scale, params; ``{}`` on the ranks other than 0 under torchrun. Raises ValueError on an empty split.
    """
    run_dir = Path(run_dir)
    store = SignalStore(run_dir)
    x_train, x_val = store_signals(store, "train"), store_signals(store, "val")
    if len(x_train) == 0:
        raise ValueError(f"{run_dir}/data: the training split is empty; prepare more records")
    cfg = VAEConfig.from_dict({**(model or {}), "scale_factor": None})
    train_cfg = TrainConfig.from_overrides(train or {}, seed)
    torch.manual_seed(seed)
    vae = VAE(cfg)
    vae.freeze_unused_parameters()  # no gradient ever reaches them; DDP needs them out of the reducer
    loss = VAELoss(kl_weight, int(kl_anneal_frac * train_cfg.max_steps))
    out = vae_dir(run_dir)
    meta = {
        "stage": "vae",
        "vae_config": cfg.to_dict(),
        "kl_weight": kl_weight,
        "kl_anneal_frac": kl_anneal_frac,
        "n_train": len(x_train),
        "n_val": len(x_val),
        "package_version": __version__,
    }
    trainer = Trainer(
        VAETrainModule(vae),
        loss,
        TensorSource({"x": x_train}),
        out,
        train_cfg,
        val=TensorSource({"x": x_val}) if len(x_val) else None,
        meta=meta,
    )
    if resume:
        trainer.resume()
    result = trainer.fit()
    if not trainer.dist.is_main:
        return {}
    best = load_best_weights(trainer.ema.shadow.vae, out, prefix="vae.")
    if cfg.latent_norm == "channel":
        best.set_scale_factor(1.0)
        mean_c, std_c = measure_latent_channel_stats(best, x_train, device=trainer.device)
        best.set_latent_stats(mean_c, std_c)
        scale = 1.0
    else:
        scale = measure_latent_scale(best, x_train, device=trainer.device)
        best.set_scale_factor(scale)
    recon_val = reconstruction_error(best, x_val if len(x_val) else x_train, device=trainer.device)
    artifact = {
        "kind": "diffusets.vae",
        "config": best.cfg.to_dict(),
        "state_dict": best.state_dict(),
        "latent_scale": scale,
        "meta": {**meta, "steps": result.steps, "val_mse": recon_val, "train_seconds": result.seconds},
    }
    return write_stage_outputs(
        out,
        artifact,
        result,
        val_mse=recon_val,
        latent_scale=scale,
        params=best.num_parameters()["total"],
        device=device_name(trainer.device),
    )


@torch.no_grad()
def measure_latent_scale(vae: VAE, x: torch.Tensor, *, device: torch.device, batch: int = 64) -> float:
    """1 / std of the posterior means of ``x``: makes the diffusion model's latents unit-variance."""
    vae.eval().to(device)
    means = [vae.moments(x[i : i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)]
    return estimate_scale_factor(torch.cat(means))


@torch.no_grad()
def measure_latent_channel_stats(
    vae: VAE, x: torch.Tensor, *, device: torch.device, batch: int = 64
) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (latent_channels,) of the posterior means of ``x`` (B, 12, L)."""
    vae.eval().to(device)
    means = torch.cat([vae.moments(x[i : i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)])
    per_channel = means.transpose(0, 1).reshape(means.shape[1], -1)
    std = per_channel.std(dim=1)
    if not torch.isfinite(std).all() or (std <= 0).any():
        raise ValueError(f"cannot standardise latent channels with standard deviations {std.tolist()}")
    return per_channel.mean(dim=1).tolist(), std.tolist()


@torch.no_grad()
def reconstruction_error(vae: VAE, x: torch.Tensor, *, device: torch.device, batch: int = 64) -> float:
    """Mean squared error (mV²) of posterior-mean reconstructions."""
    vae.eval().to(device)
    total, count = 0.0, 0
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device)
        z, _, _ = vae.encode(xb, sample=False)
        total += float(((vae.decode(z) - xb) ** 2).sum())
        count += xb.numel()
    return total / max(1, count)
