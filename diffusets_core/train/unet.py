"""Stage 3: train the conditional U-Net on the training latents, write ``unet/model.pt`` (or ``unet_noc/``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..checkpoint import load_checkpoint
from ..device import device_name
from ..diffusion.gaussian import LOSS_WEIGHTINGS, GaussianDiffusion
from ..diffusion.schedules import NoiseSchedule
from ..layout import LAST_CHECKPOINT, NOC_DIR, SAMPLING_FILE, UNET_DIR, latents_file, unet_dir, vae_model
from ..models.factory import build_unet, unet_config_from_dict
from ..models.unet_base import UNetConfigBase
from .artifacts import load_best_weights, write_stage_outputs
from .conditioning import conditioning_arrays, fit_text_standardisation, wording_variant_arrays
from .datasets import load_latents
from .latents import latents_fingerprint
from .loop import TensorSource, TrainConfig, Trainer, TrainResult

log = logging.getLogger(__name__)

__all__ = ["LOSS_WEIGHTINGS", "NOC_DIR", "DiffusionLoss", "train_text_only_unet", "train_unet"]


class DiffusionLoss:
    """The trainer's loss for the U-Net: :meth:`GaussianDiffusion.loss
    <diffusets_core.diffusion.gaussian.GaussianDiffusion.loss>` on a batch (``z``, ``text``, ``patient``), with
    condition dropout (for classifier-free guidance) while the model trains.

    ``weighting="uniform"`` is the paper's plain MSE. ``"min_snr"`` weights each sample by
    ``min(SNR(t), gamma) / SNR(t)`` (Min-SNR-gamma, Hang et al. 2023): the nearly-clean timesteps, whose noise
    is hard to predict but which only polish detail, stop dominating the gradient, and the high-noise steps
    that decide rhythm and beat placement get the model's attention.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        timestep_mode: str = "uniform",
        weighting: str = "uniform",
        snr_gamma: float = 5.0,
    ):
        self.diffusion = GaussianDiffusion(
            schedule, timestep_mode=timestep_mode, loss_weighting=weighting, snr_gamma=snr_gamma
        )

    @property
    def schedule(self) -> NoiseSchedule:
        return self.diffusion.schedule

    def __call__(self, model: nn.Module, batch: dict, gen: torch.Generator) -> torch.Tensor:
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        drop_mask = inner.sample_drop_mask if model.training and inner.cfg.cond_dropout > 0 else None
        return self.diffusion.loss(
            model, batch["z"], self.text_of(batch, gen), batch["patient"], generator=gen, drop_mask=drop_mask
        )

    @staticmethod
    def text_of(batch: dict, gen: torch.Generator) -> torch.Tensor:
        """The batch's text condition: ``text``, or with ``text_variants`` (B, V, D) one wording per sample, drawn
        uniformly with the step's generator (so each step sees each record in one of its wordings)."""
        if "text_variants" not in batch:
            return batch["text"]
        v = batch["text_variants"]
        pick = torch.randint(v.shape[1], (v.shape[0],), generator=gen, device=gen.device).to(v.device)
        return v[torch.arange(v.shape[0], device=v.device), pick]


def train_unet(
    run_dir: str | os.PathLike,
    model: dict | None = None,
    train: dict | None = None,
    *,
    seed: int = 0,
    patient_mode: str = "normalized",
    timestep_mode: str = "uniform",
    loss_weighting: str = "uniform",
    snr_gamma: float = 5.0,
    wording_variants: int = 0,
    out_name: str = UNET_DIR,
    resume: bool = True,
) -> dict:
    """Train the conditional U-Net on the training latents; write ``<out_name>/model.pt`` (default ``unet/``).

    ``model`` is the U-Net's config dict (``arch`` naming the network,
    :func:`~diffusets_core.models.factory.unet_config_from_dict`; ``text_dim`` and ``in_channels`` are the run's).
    ``loss_weighting`` is ``"uniform"`` (the paper) or ``"min_snr"`` (see :class:`DiffusionLoss`).
    ``wording_variants = k > 0`` trains each record in its own wording and ``k`` more, drawn per sample at every
    step (:func:`~.conditioning.wording_variant_arrays`: the record's findings worded by the wording bank's
    training part; records without findings keep their own text); the text standardisation is fitted over all of
    them. Not with statement tokens (``text_tokens``). A model
    with ``cond_dim: 0`` is the paper's text-only ablation ("noc"): it never sees sex, age or heart rate;
    train it into its own directory, e.g. ``out_name="unet_noc"`` (see :data:`NOC_DIR`).

    Returns the summary (also in ``<out_name>/summary.json``): steps, seconds, samples_per_s, best_val_loss, params,
    text_dim; ``{}`` on the ranks other than 0 under torchrun. Deletes the U-Net's ``sampling.json`` (settings
    validated for the previous model). Raises FileNotFoundError without latents, ValueError on a bad cond_dim.
    """
    run_dir = Path(run_dir)
    data = _training_data(run_dir, model, patient_mode)
    cfg = data.cfg
    train_cfg = TrainConfig.from_overrides(train or {}, seed)
    torch.manual_seed(seed)
    unet = build_unet(cfg)
    unet.freeze_unused_parameters()  # no gradient ever reaches them; DDP needs them out of the reducer
    text_train, variants_stats, text_stats = _fit_text_input(run_dir, unet, data, wording_variants, seed)
    schedule = NoiseSchedule.paper()
    meta = {
        "stage": "unet",
        "unet_config": cfg.to_dict(),
        "embedder": data.identity,
        "patient_mode": patient_mode,
        "timestep_mode": timestep_mode,
        "loss_weighting": loss_weighting,
        "snr_gamma": snr_gamma,
        "schedule": schedule.to_config(),
        "latent_scale": load_checkpoint(vae_model(run_dir))["latent_scale"],
        "text_standardisation": text_stats,
        "wording_variants": variants_stats,
        "n_train": len(data.z_train),
        "n_val": len(data.z_val),
        "package_version": __version__,
    }
    source, val = _sources(run_dir, data, text_train, patient_mode, wording_variants)
    out = unet_dir(run_dir, out_name)
    meta["latents_fingerprint"] = latents_fingerprint(run_dir)
    loss = DiffusionLoss(schedule, timestep_mode, loss_weighting, snr_gamma)
    trainer = Trainer(unet, loss, source, out, train_cfg, val=val, meta=meta)
    if resume and _trained_on_other_latents(out, meta["latents_fingerprint"]):
        resume = False
    if resume:
        trainer.resume()
    result = trainer.fit()
    if not trainer.dist.is_main:
        return {}
    return _write_unet_artifact(out, trainer, cfg, meta, result)


@dataclass
class _TrainingData:
    """The run's latents and the training split's conditions, with the U-Net config they call for."""

    cfg: UNetConfigBase
    z_train: np.ndarray
    ids_train: list[str]
    z_val: np.ndarray
    ids_val: list[str]
    #: (N, D) prompt vectors or (N, 1 + K, D) statement tokens
    text_train: np.ndarray
    #: (N, cond_dim): the patient values the config reads
    patient_train: np.ndarray
    identity: dict


def _training_data(run_dir: Path, model: dict | None, patient_mode: str) -> _TrainingData:
    """Load the train and val latents and the training conditions, and build the U-Net config from ``model`` with the
    run's text width and latent channels. Raises FileNotFoundError without latents, ValueError on a bad cond_dim."""
    if not latents_file(run_dir, "train").is_file():
        raise FileNotFoundError(f"{run_dir}/latents/train.npy not found: run `diffusets encode {run_dir}` first")
    z_train, ids_train = load_latents(run_dir, "train")
    z_val, ids_val = load_latents(run_dir, "val")
    n_tokens = int((model or {}).get("text_tokens", 0))
    text_train, patient_train, identity = conditioning_arrays(run_dir, ids_train, patient_mode, n_tokens)
    cfg = unet_config_from_dict(
        {**(model or {}), "text_dim": int(text_train.shape[-1]), "in_channels": int(z_train.shape[1])}
    )
    if cfg.cond_dim not in (0, patient_train.shape[1]):
        raise ValueError(
            f"unet.model.cond_dim must be {patient_train.shape[1]} (sex, age, HR) or 0 (text only), got {cfg.cond_dim}"
        )
    patient_train = patient_train[:, : cfg.cond_dim]
    return _TrainingData(cfg, z_train, ids_train, z_val, ids_val, text_train, patient_train, identity)


def _fit_text_input(
    run_dir: Path, unet: nn.Module, data: _TrainingData, wording_variants: int, seed: int
) -> tuple[np.ndarray, dict | None, dict | None]:
    """The training text (with ``wording_variants``: each record's wordings, (N, 1 + k, D)) and the U-Net's text
    standardisation fitted on it. Returns ``(text, wording variants' stats, standardisation's stats)``, the stats for
    the meta. Raises ValueError for wording variants with statement tokens."""
    text_train, variants_stats = data.text_train, None
    if wording_variants:
        if data.cfg.text_tokens:
            raise ValueError("unet.extra.wording_variants works on prompt vectors, not with unet.model.text_tokens")
        text_train, variants_stats = wording_variant_arrays(run_dir, data.ids_train, text_train, wording_variants, seed)
        log.info("wording variants: %s", variants_stats)
    text_stats = fit_text_standardisation(
        unet, text_train.reshape(-1, text_train.shape[-1]) if wording_variants else text_train
    )
    return text_train, variants_stats, text_stats


def _sources(
    run_dir: Path, data: _TrainingData, text_train: np.ndarray, patient_mode: str, wording_variants: int
) -> tuple[TensorSource, TensorSource | None]:
    """The trainer's training source (``text_train`` as ``text_variants`` instead of ``text`` with wording variants)
    and validation source (None without validation latents)."""
    source = TensorSource(
        {
            "z": torch.from_numpy(data.z_train),
            ("text_variants" if wording_variants else "text"): torch.from_numpy(text_train),
            "patient": torch.from_numpy(data.patient_train),
        }
    )
    if not len(data.z_val):
        return source, None
    text_val, patient_val, _ = conditioning_arrays(run_dir, data.ids_val, patient_mode, data.cfg.text_tokens)
    patient_val = patient_val[:, : data.cfg.cond_dim]
    val = TensorSource(
        {
            "z": torch.from_numpy(data.z_val),
            "text": torch.from_numpy(text_val),
            "patient": torch.from_numpy(patient_val),
        }
    )
    return source, val


def _trained_on_other_latents(out: Path, fingerprint: str) -> bool:
    """Whether ``out``'s ``last.pt`` was trained on latents other than ``fingerprint`` (logged): the latents were
    re-encoded (another VAE, another normalisation) since that checkpoint, and resuming would continue (or, at
    max_steps, keep) a model of other latents. False without ``last.pt`` or without a recorded fingerprint."""
    if not (out / LAST_CHECKPOINT).is_file():
        return False
    before = load_checkpoint(out / LAST_CHECKPOINT).get("meta", {}).get("latents_fingerprint")
    if before is None or before == fingerprint:
        return False
    log.warning(
        "%s/last.pt was trained on other latents (fingerprint %s, now %s): training from scratch",
        out,
        before,
        fingerprint,
    )
    return True


def _write_unet_artifact(out: Path, trainer: Trainer, cfg: UNetConfigBase, meta: dict, result: TrainResult) -> dict:
    """Write ``out/model.pt`` from the best EMA weights (and the summary); returns the summary."""
    best = load_best_weights(trainer.ema.shadow, out)
    artifact = {
        "kind": "diffusets.unet",
        "config": cfg.to_dict(),
        "state_dict": best.state_dict(),
        "meta": {**meta, "steps": result.steps, "train_seconds": result.seconds},
    }
    # sampling settings validated for an earlier model do not carry over to this one
    return write_stage_outputs(
        out,
        artifact,
        result,
        stale=[out / SAMPLING_FILE],
        params=best.num_parameters()["total"],
        text_dim=cfg.text_dim,
        device=device_name(trainer.device),
    )


def train_text_only_unet(
    run_dir: str | os.PathLike,
    model: dict | None = None,
    train: dict | None = None,
    *,
    seed: int = 0,
    resume: bool = True,
    **extra: Any,
) -> dict:
    """The ``noc`` baseline, the paper's text-only ablation: the run's U-Net settings (``model``, ``train``,
    ``extra`` as for :func:`train_unet`) with no patient vector (``cond_dim`` 0),
    trained into ``run_dir/unet_noc`` (:data:`~diffusets_core.layout.NOC_DIR`) beside the main U-Net —
    what ``diffusets train-unet RUN_DIR --text-only`` trains. Returns the trainer's summary."""
    return train_unet(
        run_dir, {**(model or {}), "cond_dim": 0}, train, seed=seed, resume=resume, **{**extra, "out_name": NOC_DIR}
    )
