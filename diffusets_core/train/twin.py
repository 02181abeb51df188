"""Train a twin U-Net: a run's trained FiLM U-Net plus a reference encoder, fine-tuned on pairs of one subject's
records (:mod:`diffusets_core.models.twin`).

The twin trains in its own run directory (the *twin run*: a cohort or dataset whose subjects have several records,
prepared, encoded with the base run's VAE and embedded with its embedder; :func:`diffusets_core.apps.twin.
prepare_twin_run` makes one). Every training sample is a record of the twin run's training split (the *target*:
its latent, report and patient values, as the base U-Net trained) with, as reference, the latent of another record
of the same subject and split, drawn anew at every step from the step's generator (earlier or later: both teach
what stays the same within a subject). A share ``reference_dropout`` of the samples, and every record whose subject
has no other record in the split, trains without a reference; the report and patient dropout of the base network
stay as they were, so report guidance still works.

The base network's weights start the twin (the encoder's last layer is zero, so the first step is the base model's
prediction), and all weights are fine-tuned; the text standardisation is the base network's (not refitted: the base
weights were trained with it). The twin is written as a ``diffusets.unet`` artifact whose ``reference_encoder``
entry makes :func:`~diffusets_core.models.factory.unet_from_artifact` build a :class:`~diffusets_core.models.twin.
TwinUNet1D`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import __version__
from ..checkpoint import load_checkpoint
from ..data.store import SignalStore
from ..device import device_name, resolve_device
from ..diffusion.schedules import NoiseSchedule
from ..fileio import atomic_write_text
from ..layout import LAST_CHECKPOINT, SAMPLING_FILE, UNET_DIR, latents_file, unet_dir, vae_model
from ..models.factory import unet_from_artifact
from ..models.film_unet import FiLMUNet1D
from ..models.twin import ReferenceEncoderConfig, TwinUNet1D
from .artifacts import load_best_weights, write_stage_outputs
from .conditioning import conditioning_arrays
from .datasets import load_latents
from .latents import latents_fingerprint
from .loop import TensorSource, TrainConfig, Trainer, build_seeded
from .unet import DiffusionLoss

log = logging.getLogger(__name__)

__all__ = ["MAX_PARTNERS", "split_tensors", "subject_partners", "TwinDiffusionLoss", "train_twin_unet"]

#: candidate references kept per record (its subject's first other records): bounds the reference bank's memory
#: ((N, K, C, L) latents) for real datasets whose subjects have dozens of ECGs
MAX_PARTNERS = 8


def subject_partners(record_ids: list[str], subjects: pd.Series, max_partners: int | None = None) -> np.ndarray:
    """For each record (in ``record_ids`` order), the row positions of the OTHER records of its subject among
    ``record_ids``: (N, K) int64, K the largest count (or ``max_partners``), padded with -1. ``subjects`` maps
    record id -> subject id.

    Raises:
        KeyError: a record id missing from ``subjects`` (named).
    """
    missing = [r for r in record_ids if r not in subjects.index]
    if missing:
        raise KeyError(f"record {missing[0]!r} has no subject id ({len(missing)} record(s) without one)")
    subj = subjects.loc[record_ids].astype(str).to_numpy()
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(subj):
        rows.setdefault(s, []).append(i)
    others = [[j for j in rows[s] if j != i] for i, s in enumerate(subj)]
    k = max((len(o) for o in others), default=0)
    if max_partners is not None:
        k = min(k, int(max_partners))
    out = np.full((len(record_ids), max(k, 1)), -1, dtype=np.int64)
    for i, o in enumerate(others):
        o = o[:k]
        out[i, : len(o)] = o
    return out


def _reference_bank(z: np.ndarray, partners: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ref_z (N, K, C, L), ref_n (N,))``: each record's candidate reference latents and how many it has."""
    ref_n = (partners >= 0).sum(axis=1)
    ref_z = z[np.clip(partners, 0, None)] * (partners >= 0)[..., None, None]
    return torch.from_numpy(ref_z.astype(np.float32)), torch.from_numpy(ref_n.astype(np.int64))


class TwinDiffusionLoss(DiffusionLoss):
    """The U-Net's diffusion loss (:class:`~.unet.DiffusionLoss`) with a reference: the batch also carries
    ``ref_z`` (B, K, C, L) candidate reference latents and ``ref_n`` (B,) their count; one is drawn per sample
    from the step's generator, and (in training) the reference is dropped with the model's ``reference_dropout``.
    A sample without candidates is always dropped. The generator draws the reference choice and its dropout
    first, then what the base loss draws (timesteps, noise, report / patient dropout)."""

    def __call__(self, model: nn.Module, batch: dict, gen: torch.Generator) -> torch.Tensor:
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        ref_z, ref_n = batch["ref_z"], batch["ref_n"]
        b = ref_z.shape[0]
        u = torch.rand(b, generator=gen, device=gen.device).to(ref_n.device)
        pick = torch.minimum((u * ref_n.clamp(min=1)).long(), (ref_n - 1).clamp(min=0))
        reference = ref_z[torch.arange(b, device=ref_z.device), pick]
        drop = ref_n == 0
        if model.training:
            drop = drop | inner.sample_reference_drop(b, device=gen.device, generator=gen).to(drop.device)
        drop_mask = inner.sample_drop_mask if model.training and inner.cfg.cond_dropout > 0 else None

        def twin(x, t, text, patient, mask):
            return model(x, t, text, patient, mask, reference=reference, reference_drop=drop)

        return self.diffusion.loss(
            twin, batch["z"], self.text_of(batch, gen), batch["patient"], generator=gen, drop_mask=drop_mask
        )


def split_tensors(
    twin_dir: Path, split: str, subjects: pd.Series, patient_mode: str, cond_dim: int
) -> dict[str, torch.Tensor] | None:
    """The trainer's tensors of one split of the twin run (None when the split has no latents): ``z`` (N, C, L),
    ``text`` (N, D), ``patient`` (N, cond_dim), ``ref_z`` (N, K, C, L) candidate reference latents (other records of
    the subject, at most :data:`MAX_PARTNERS`) and ``ref_n`` (N,) their count."""
    if not latents_file(twin_dir, split).is_file():
        return None
    z, ids = load_latents(twin_dir, split)
    if not len(ids):
        return None
    text, patient, _ = conditioning_arrays(twin_dir, ids, patient_mode)
    ref_z, ref_n = _reference_bank(z, subject_partners(ids, subjects, MAX_PARTNERS))
    return {
        "z": torch.from_numpy(z),
        "text": torch.from_numpy(text),
        "patient": torch.from_numpy(patient[:, :cond_dim]),
        "ref_z": ref_z,
        "ref_n": ref_n,
    }


def _check_compatible(twin_dir: Path, base_meta: dict, base: nn.Module) -> None:
    """Refuse a twin run whose embedder or latents do not match the base U-Net's (ValueError naming both)."""
    from ..text.embed import load_run_embeddings

    _, _, identity = load_run_embeddings(twin_dir)
    keys = ("backend", "model", "dim", "prompt_mode")  # what makes two runs' vectors comparable
    if any(identity.get(k) != base_meta.get("embedder", {}).get(k) for k in keys):
        raise ValueError(
            f"{twin_dir}: embedded with {identity}, but the base U-Net was trained with {base_meta.get('embedder')}; "
            "embed the twin run with the base run's embedder"
        )
    z, _ = load_latents(twin_dir, "train")
    if z.shape[1] != base.cfg.in_channels:
        raise ValueError(f"{twin_dir}: latents have {z.shape[1]} channels, the base U-Net reads {base.cfg.in_channels}")
    scale = load_checkpoint(vae_model(twin_dir))["latent_scale"]
    if "latent_scale" in base_meta and float(scale) != float(base_meta["latent_scale"]):
        raise ValueError(
            f"{vae_model(twin_dir)}: latent scale {scale} differs from the base U-Net's {base_meta['latent_scale']}: "
            "the twin run must be encoded with the base run's VAE"
        )


def _sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (the base U-Net's weights: a base retrained at the same path is another base)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _can_resume(out: Path, ref_cfg: ReferenceEncoderConfig, settings: dict, fingerprint: str) -> bool:
    """Whether ``out/last.pt`` continues this training: the same reference encoder, base U-Net (its SHA-256), encoder
    learning-rate scale, identity steps, training settings (all but ``max_steps``: more steps continue) and twin
    latents. Otherwise (logged) the twin trains from the start. True without a checkpoint (nothing to continue)."""
    if not (out / LAST_CHECKPOINT).is_file():
        return True
    meta = load_checkpoint(out / LAST_CHECKPOINT).get("meta", {})
    same = (
        meta.get("reference_encoder") == ref_cfg.to_dict()
        and meta.get("twin", {}).get("resume_settings") == settings
        and meta.get("latents_fingerprint") == fingerprint
    )
    if not same:
        log.warning(
            "%s/last.pt was trained with other settings, base or latents: training the twin from the start", out
        )
    return same


def _pretrain_identity(
    twin: TwinUNet1D, twin_dir: Path, subjects: pd.Series, steps: int, seed: int, *, resuming: bool
) -> dict:
    """Contrastive pre-training of the twin's reference encoder on the training latents
    (:mod:`.twin_identity`), with its identification accuracy on the validation split before and after; skipped
    (``{"steps": 0}``) with ``steps`` 0 or when the fine-tuning resumes from a checkpoint (which holds the encoder)."""
    from .twin_identity import identification_accuracy, pretrain_reference_encoder

    if steps <= 0 or resuming:
        return {"steps": 0, "resumed": bool(resuming)}
    z, ids = load_latents(twin_dir, "train")
    subj = subjects.loc[ids].astype(str).to_numpy()
    out: dict = {"steps": int(steps)}
    if latents_file(twin_dir, "val").is_file():
        zv, iv = load_latents(twin_dir, "val")
        out["val_identification_before"] = identification_accuracy(
            twin.reference_encoder, zv, subjects.loc[iv].to_numpy()
        )
    losses = pretrain_reference_encoder(twin.reference_encoder, z, subj, steps=steps, seed=seed)
    out["loss_first"], out["loss_last"] = losses[0], float(np.mean(losses[-10:]))
    if "val_identification_before" in out:
        out["val_identification_after"] = identification_accuracy(
            twin.reference_encoder, zv, subjects.loc[iv].to_numpy()
        )
    log.info("reference encoder identity pre-training: %s", out)
    return out


def train_twin_unet(
    twin_dir: str | os.PathLike,
    base_unet: str | os.PathLike,
    reference: dict | None = None,
    train: dict | None = None,
    *,
    seed: int = 0,
    encoder_lr_scale: float = 10.0,
    identity_steps: int = 300,
    out_name: str = UNET_DIR,
    resume: bool = True,
) -> dict:
    """Fine-tune the trained FiLM U-Net ``base_unet`` (a ``model.pt`` artifact) with a reference encoder on the twin
    run ``twin_dir`` (module docstring); write ``twin_dir/<out_name>/model.pt``.

    ``reference``: :class:`~diffusets_core.models.twin.ReferenceEncoderConfig` fields (``channels``,
    ``reference_dropout``, ...; ``in_channels`` and ``emb_dim`` come from the base network). ``train``:
    :class:`~.loop.TrainConfig` overrides; ``encoder_lr_scale``: the reference encoder's learning rate relative to
    ``train["lr"]`` (it starts from zero while the base network is trained: at one rate for both, 300 steps left its
    vector a fifteenth of the report's, and the twin's ECGs no closer to their subject than without it). Patient encoding, noise schedule, timestep sampling and loss weighting
    are the base U-Net's (its artifact's ``meta``).

    Returns the summary (also ``summary.json``): steps, seconds, samples_per_s, best_val_loss, params,
    reference-encoder params, n_train, n_subjects; ``{}`` on ranks other than 0 under torchrun.

    Raises:
        FileNotFoundError: the twin run has no training latents, or ``base_unet`` does not exist.
        ValueError: the base is not the FiLM network, the twin run's embedder or latents do not match it, or the
            training split has no subject with two records.
    """
    twin_dir = Path(twin_dir)
    base, base_meta = _load_base(twin_dir, base_unet)
    patient_mode = base_meta.get("patient_mode", "normalized")
    subjects = SignalStore(twin_dir).records().set_index("record_id")["subject_id"]
    train_t = split_tensors(twin_dir, "train", subjects, patient_mode, base.cfg.cond_dim)
    val_t = split_tensors(twin_dir, "val", subjects, patient_mode, base.cfg.cond_dim)
    n_paired = int((train_t["ref_n"] > 0).sum())
    if not n_paired:
        raise ValueError(
            f"{twin_dir}: no training subject has two records (a cohort: build it with records_per_subject; a real "
            "dataset: its subjects have one record each in the training split)"
        )
    ref_cfg = ReferenceEncoderConfig.from_dict(
        {**(reference or {}), "in_channels": base.cfg.in_channels, "emb_dim": base.cfg.emb_dim}
    )
    train_cfg = TrainConfig.from_overrides(train or {}, seed)
    twin = build_seeded(lambda: TwinUNet1D(base, ref_cfg), seed)
    if not encoder_lr_scale > 0:
        raise ValueError(f"encoder_lr_scale must be > 0, got {encoder_lr_scale}")
    twin.encoder_lr_scale = float(encoder_lr_scale)
    out = unet_dir(twin_dir, out_name)
    settings = {
        "base_sha256": _sha256(base_unet),
        "encoder_lr_scale": float(encoder_lr_scale),
        "identity_steps": int(identity_steps),
        "train": {k: v for k, v in train_cfg.__dict__.items() if k not in ("max_steps", "progress", "device")},
    }
    resume = resume and _can_resume(out, ref_cfg, settings, latents_fingerprint(twin_dir))
    twin.reference_encoder.to(resolve_device(train_cfg.device))  # pre-trained where the twin will train
    identity = _pretrain_identity(
        twin, twin_dir, subjects, identity_steps, seed, resuming=resume and (out / LAST_CHECKPOINT).is_file()
    )
    schedule = NoiseSchedule.from_config(base_meta["schedule"]) if "schedule" in base_meta else NoiseSchedule.paper()
    loss = TwinDiffusionLoss(
        schedule,
        base_meta.get("timestep_mode", "uniform"),
        base_meta.get("loss_weighting", "uniform"),
        float(base_meta.get("snr_gamma", 5.0)),
    )
    n_subjects = int(subjects.loc[load_latents(twin_dir, "train")[1]].nunique())
    meta = {
        # the twin trains on each record's own wording: the base's wording-variant statistics do not describe it
        **{
            k: v
            for k, v in base_meta.items()
            if k not in ("steps", "train_seconds", "n_train", "n_val", "wording_variants")
        },
        "stage": "twin_unet",
        "unet_config": base.cfg.to_dict(),
        "reference_encoder": ref_cfg.to_dict(),
        "twin": {
            "base_unet": str(Path(base_unet).resolve()),
            "base_steps": base_meta.get("steps"),
            "n_train": len(train_t["z"]),
            "n_train_with_reference": n_paired,
            "n_subjects": n_subjects,
            "encoder_lr_scale": float(encoder_lr_scale),
            "identity_steps": int(identity_steps),
            "base_sha256": settings["base_sha256"],
        },
        "n_train": len(train_t["z"]),
        "n_val": 0 if val_t is None else len(val_t["z"]),
        "latents_fingerprint": latents_fingerprint(twin_dir),
        "package_version": __version__,
    }
    meta["twin"]["identity"] = identity
    meta["twin"]["resume_settings"] = settings
    val = None if val_t is None else TensorSource(val_t)
    trainer = Trainer(twin, loss, TensorSource(train_t), out, train_cfg, val=val, meta=meta)
    if resume:
        trainer.resume()
    result = trainer.fit()
    if not trainer.dist.is_main:
        return {}
    return _write_twin_artifact(out, trainer, result, meta, base_unet)


def _load_base(twin_dir: Path, base_unet: str | os.PathLike) -> tuple[FiLMUNet1D, dict]:
    """The base U-Net and its meta, checked against the twin run (:func:`train_twin_unet`'s errors)."""
    if not latents_file(twin_dir, "train").is_file():
        raise FileNotFoundError(f"{latents_file(twin_dir, 'train')} not found: prepare and encode the twin run first")
    if not Path(base_unet).is_file():
        raise FileNotFoundError(f"{base_unet}: no trained U-Net (train the base run's U-Net first)")
    base, base_meta = unet_from_artifact(base_unet)
    if not isinstance(base, FiLMUNet1D):
        raise ValueError(f"{base_unet}: a twin needs the FiLM U-Net (arch 'film'), this is {type(base).__name__}")
    if base.cfg.text_tokens:
        raise ValueError(
            f"{base_unet}: a twin of a U-Net that reads statement tokens (text_tokens={base.cfg.text_tokens}) is not "
            "supported: train the base with one prompt vector per report (text_tokens: 0)"
        )
    _check_compatible(twin_dir, base_meta, base)
    return base, base_meta


def _write_twin_artifact(out: Path, trainer: Trainer, result: Any, meta: dict, base_unet: str | os.PathLike) -> dict:
    """Write ``out/model.pt`` from the best EMA weights, the summary, and the base run's sampling settings (so
    ``generate`` and the explorer sample the twin as chapter 11 measured it); returns the summary."""
    best = load_best_weights(trainer.ema.shadow, out)
    artifact = {
        "kind": "diffusets.unet",
        "config": best.cfg.to_dict(),
        "reference_encoder": best.reference_cfg.to_dict(),
        "state_dict": best.state_dict(),
        "meta": {**meta, "steps": result.steps, "train_seconds": result.seconds},
    }
    counts = best.num_parameters()
    identity = meta["twin"]["identity"]
    summary = write_stage_outputs(
        out,
        artifact,
        result,
        stale=[out / SAMPLING_FILE],
        params=counts["total"],
        reference_encoder_params=counts["reference_encoder"],
        text_dim=best.cfg.text_dim,
        n_train=meta["n_train"],
        n_subjects=meta["twin"]["n_subjects"],
        identity_steps=identity.get("steps", 0),
        identity_val_before=identity.get("val_identification_before"),
        identity_val_after=identity.get("val_identification_after"),
        device=device_name(trainer.device),
    )
    base_sampling = Path(base_unet).parent / SAMPLING_FILE
    if base_sampling.is_file():
        atomic_write_text(out / SAMPLING_FILE, base_sampling.read_text())
    return summary
