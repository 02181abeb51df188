"""The pipeline's training stages on a run directory: VAE, latent encoding, conditional U-Net.

Each stage reads what the previous one wrote (see CONTRACTS.md) and writes one self-describing artifact:
``vae/model.pt``, ``latents/``, ``unet/model.pt``. Artifacts hold the EMA weights, the full model config,
the embedder identity and the provenance, and load with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.store import SignalStore
from ..diffusion.schedules import NoiseSchedule
from ..models.unet import UNetConfig, build_unet
from ..models.vae import VAE, VAEConfig, estimate_scale_factor
from .checkpoint import CheckpointError, atomic_save, load_checkpoint
from .loop import TensorSource, TrainConfig, Trainer
from .distributed import resolve_device

log = logging.getLogger(__name__)

PAPER_KL_WEIGHT = 1.0 / 128  # the reference's KL reduction, expressed per signal value (see VAE.loss)
LATENT_SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------- VAE
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
        noise = torch.randn((x.shape[0], c.latent_channels, x.shape[-1] // c.downsample_factor),
                            generator=gen, device=x.device)
        return model(x, noise, self.weight(model.training))["loss"]


def _train_cfg(overrides: dict[str, Any], seed: int) -> TrainConfig:
    return TrainConfig(**{"seed": seed, **overrides})


class _StoreSignals:
    """A split's signals as torch tensors, read row by row from the memory-mapped shards
    (:meth:`SignalStore.view`): a training epoch's memory does not grow with the number of records."""

    def __init__(self, store: SignalStore, split: str):
        self._view = store.view(split)

    def __len__(self) -> int:
        return len(self._view)

    def __getitem__(self, idx) -> torch.Tensor:
        if torch.is_tensor(idx):
            idx = idx.cpu().numpy()
        return torch.from_numpy(self._view[idx])


def _signals(store: SignalStore, split: str) -> _StoreSignals:
    return _StoreSignals(store, split)


def train_vae(run_dir: str | os.PathLike, model: Optional[dict] = None, train: Optional[dict] = None, *,
              seed: int = 0, kl_weight: float = PAPER_KL_WEIGHT, kl_anneal_frac: float = 0.5,
              resume: bool = True) -> dict:
    """Train the VAE on the run's training split; measure the latent scale; write ``vae/model.pt``."""
    run_dir = Path(run_dir)
    store = SignalStore(run_dir)
    x_train, x_val = _signals(store, "train"), _signals(store, "val")
    if len(x_train) == 0:
        raise ValueError(f"{run_dir}/data: the training split is empty; prepare more records")
    cfg = VAEConfig.from_dict({**(model or {}), "scale_factor": None})
    tcfg = _train_cfg(train or {}, seed)
    torch.manual_seed(seed)
    vae = VAE(cfg)
    vae.freeze_unused_parameters()  # no gradient ever reaches them; DDP needs them out of the reducer
    loss = VAELoss(kl_weight, int(kl_anneal_frac * tcfg.max_steps))
    out = run_dir / "vae"
    meta = {"stage": "vae", "vae_config": cfg.to_dict(), "kl_weight": kl_weight, "kl_anneal_frac": kl_anneal_frac,
            "n_train": len(x_train), "n_val": len(x_val), "package_version": __version__}
    trainer = Trainer(VAETrainModule(vae), loss, TensorSource({"x": x_train}), out, tcfg,
                      val=TensorSource({"x": x_val}) if len(x_val) else None, meta=meta)
    if resume:
        trainer.resume()
    result = trainer.fit()
    if not trainer.dist.is_main:
        return {}
    best = trainer.ema.shadow.vae  # EMA weights of the final step
    if (out / "best.pt").is_file():
        best.load_state_dict(_strip(load_checkpoint(out / "best.pt")["model"], "vae."))
    if cfg.latent_norm == "channel":
        best.set_scale_factor(1.0)
        mean_c, std_c = measure_latent_channel_stats(best, x_train, device=trainer.device)
        best.set_latent_stats(mean_c, std_c)
        scale = 1.0
    else:
        scale = measure_latent_scale(best, x_train, device=trainer.device)
        best.set_scale_factor(scale)
    recon_val = reconstruction_error(best, x_val if len(x_val) else x_train, device=trainer.device)
    artifact = {"kind": "diffusets.vae", "config": best.cfg.to_dict(), "state_dict": best.state_dict(),
                "latent_scale": scale, "meta": {**meta, "steps": result.steps, "val_mse": recon_val,
                                                "train_seconds": result.seconds}}
    atomic_save(artifact, out / "model.pt")
    summary = {"steps": result.steps, "seconds": round(result.seconds, 1),
               "samples_per_s": round(result.samples_per_s, 1), "best_val_loss": result.best_val_loss,
               "val_mse": recon_val, "latent_scale": scale, "params": best.num_parameters()["total"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


@torch.no_grad()
def measure_latent_scale(vae: VAE, x: torch.Tensor, *, device: torch.device, batch: int = 64) -> float:
    """1 / std of the posterior means of ``x``: makes the diffusion model's latents unit-variance."""
    vae.eval().to(device)
    means = [vae.moments(x[i:i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)]
    return estimate_scale_factor(torch.cat(means))


@torch.no_grad()
def measure_latent_channel_stats(vae: VAE, x: torch.Tensor, *, device: torch.device,
                                 batch: int = 64) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (latent_channels,) of the posterior means of ``x`` (B, 12, L)."""
    vae.eval().to(device)
    means = torch.cat([vae.moments(x[i:i + batch].to(device))[0].cpu() for i in range(0, len(x), batch)])
    m = means.transpose(0, 1).reshape(means.shape[1], -1)
    std = m.std(dim=1)
    if not torch.isfinite(std).all() or (std <= 0).any():
        raise ValueError(f"cannot standardise latent channels with standard deviations {std.tolist()}")
    return m.mean(dim=1).tolist(), std.tolist()


@torch.no_grad()
def reconstruction_error(vae: VAE, x: torch.Tensor, *, device: torch.device, batch: int = 64) -> float:
    """Mean squared error (mV²) of posterior-mean reconstructions."""
    vae.eval().to(device)
    tot, n = 0.0, 0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device)
        z, _, _ = vae.encode(xb, sample=False)
        tot += float(((vae.decode(z) - xb) ** 2).sum())
        n += xb.numel()
    return tot / max(1, n)


def load_vae(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> VAE:
    """The trained VAE of a run (EMA weights, latent scale set)."""
    path = Path(run_dir) / "vae" / "model.pt"
    ck = load_checkpoint(path, map_location=device)
    if ck.get("kind") != "diffusets.vae":
        raise CheckpointError(f"{path}: not a DiffuSETS VAE artifact (kind={ck.get('kind')!r})")
    vae = VAE(VAEConfig.from_dict(ck["config"]))
    vae.load_state_dict(ck["state_dict"])
    return vae.to(device).eval()


# ------------------------------------------------------------------------------------------ latents
@torch.no_grad()
def encode_latents(run_dir: str | os.PathLike, *, device: str = "auto", batch: int = 64) -> dict:
    """Encode every prepared record with the trained VAE (posterior mean × scale) into ``latents/``.

    The reference encodes one *sample* of the posterior per record; the mean is the deterministic choice
    and, with the measured scale, gives unit-variance latents.
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    vae = load_vae(run_dir, dev)
    store = SignalStore(run_dir)
    out = run_dir / "latents"
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"latent_scale": vae.scale_factor, "splits": {}}
    for split in LATENT_SPLITS:
        recs = store.records(split)
        zs = []
        for frame, sig in store.iter_shards(split):
            x = torch.from_numpy(np.ascontiguousarray(sig, dtype=np.float32))
            for i in range(0, len(x), batch):
                zs.append(vae.encode(x[i:i + batch].to(dev), sample=False)[0].cpu())
        z = torch.cat(zs).numpy() if zs else np.zeros((0, vae.cfg.latent_channels, 0), np.float32)
        _atomic_npy(out / f"{split}.npy", z.astype(np.float32))
        recs[["record_id"]].to_csv(out / f"{split}_ids.csv", index=False)
        info["splits"][split] = {"n": int(len(z)), "mean": float(z.mean()) if len(z) else None,
                                 "std": float(z.std()) if len(z) else None}
    (out / "info.json").write_text(json.dumps(info, indent=2))
    return info


def _atomic_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------- U-Net
LOSS_WEIGHTINGS = ("uniform", "min_snr")
NOC_DIR = "unet_noc"  # where the text-only ablation ("noc", cond_dim 0) is trained, beside unet/


class DiffusionLoss:
    """Epsilon-prediction MSE with condition dropout (for classifier-free guidance).

    ``weighting="uniform"`` is the paper's plain MSE. ``"min_snr"`` weights each sample by
    ``min(SNR(t), gamma) / SNR(t)`` (Min-SNR-gamma, Hang et al. 2023): the nearly-clean timesteps, whose noise
    is hard to predict but which only polish detail, stop dominating the gradient, and the high-noise steps
    that decide rhythm and beat placement get the model's attention.
    """

    def __init__(self, schedule: NoiseSchedule, timestep_mode: str = "uniform", weighting: str = "uniform",
                 snr_gamma: float = 5.0):
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
        if snr_gamma <= 0:
            raise ValueError(f"snr_gamma must be > 0, got {snr_gamma}")
        self.schedule, self.timestep_mode = schedule, timestep_mode
        self.weighting, self.snr_gamma = weighting, float(snr_gamma)

    def __call__(self, model: nn.Module, batch: dict, gen: torch.Generator) -> torch.Tensor:
        x0 = batch["z"]
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        b = x0.shape[0]
        t = self.schedule.sample_timesteps(b, generator=gen, device=x0.device, mode=self.timestep_mode)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device)
        x_t = self.schedule.add_noise(x0, noise, t)
        drop = None
        if model.training and inner.cfg.cond_dropout > 0:
            drop = inner.sample_drop_mask(b, device=x0.device, generator=gen)
        eps = model(x_t, t, batch["text"], batch["patient"], drop)
        if self.weighting == "uniform":
            return nn.functional.mse_loss(eps, noise)
        abar = self.schedule._ac_on(t.device, torch.float32)[t]
        snr = abar / (1.0 - abar)
        w = snr.clamp(max=self.snr_gamma) / snr
        per_sample = (eps.float() - noise).pow(2).mean(dim=tuple(range(1, eps.ndim)))
        return (w * per_sample).mean()


def conditioning_arrays(run_dir: Path, record_ids: list[str], patient_mode: str,
                        text_tokens: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Text condition and encoded patient values for ``record_ids`` (in that order): text (N, D) ordered-prompt
    vectors, or with ``text_tokens = K > 0`` the (N, 1 + K, D) token matrix of
    :func:`~diffusets_core.text.tokens.report_tokens` (statements embedded with the run's embedder, through its
    cache); patient (N, 3)."""
    from ..text.embed import load_run_embeddings
    from ..text.patient import encode_patient

    ids, vectors, identity = load_run_embeddings(run_dir)
    pos = {r: i for i, r in enumerate(ids)}
    missing = [r for r in record_ids if r not in pos]
    if missing:
        raise ValueError(f"{len(missing)} record(s) have no text embedding (e.g. {missing[0]!r}); run `diffusets embed`")
    text = vectors[[pos[r] for r in record_ids]]
    recs = SignalStore(run_dir).records().set_index("record_id").loc[record_ids]
    patient = encode_patient(recs["sex"].tolist(), recs["age"].to_numpy(float), recs["hr"].to_numpy(float),
                             mode=patient_mode)
    if text_tokens:
        from ..text.cache import EmbeddingCache
        from ..text.embed import default_cache_dir, embed_texts
        from ..text.embedders import make_embedder
        from ..text.tokens import report_tokens

        embedder = make_embedder(identity["backend"], model=identity.get("model"), base_url=identity.get("base_url"),
                                 prompt_mode=identity.get("prompt_mode", "paper"))
        cache = EmbeddingCache(default_cache_dir(run_dir), embedder.identity)
        text, stats = report_tokens(recs["report"].tolist(), text,
                                    lambda st: embed_texts(st, embedder, cache, progress=False)[0], text_tokens)
        if stats["truncated_reports"]:
            log.warning("%d report(s) have more than %d statements (at most %d); the U-Net reads their first %d",
                        stats["truncated_reports"], text_tokens, stats["max_statements_seen"], text_tokens)
    return text.astype(np.float32), patient.astype(np.float32), identity


def _latents_fingerprint(run_dir: Path) -> str:
    """SHA-256 (16 hex digits) of ``latents/info.json`` and ``latents/train.npy``'s size: changes whenever the
    latents are re-encoded with another VAE or normalisation."""
    import hashlib

    info = (run_dir / "latents" / "info.json").read_bytes() if (run_dir / "latents" / "info.json").is_file() else b""
    size = (run_dir / "latents" / "train.npy").stat().st_size
    vae_cfg = json.dumps(load_checkpoint(run_dir / "vae" / "model.pt").get("config", {}), sort_keys=True, default=str)
    return hashlib.sha256(info + str(size).encode() + vae_cfg.encode()).hexdigest()[:16]


def _load_latents(run_dir: Path, split: str) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    z = np.load(run_dir / "latents" / f"{split}.npy")
    ids = pd.read_csv(run_dir / "latents" / f"{split}_ids.csv", dtype=str)["record_id"].tolist()
    return z, ids


def train_unet(run_dir: str | os.PathLike, model: Optional[dict] = None, train: Optional[dict] = None, *,
               seed: int = 0, patient_mode: str = "normalized", timestep_mode: str = "uniform",
               loss_weighting: str = "uniform", snr_gamma: float = 5.0, out_name: str = "unet",
               resume: bool = True) -> dict:
    """Train the conditional U-Net on the training latents; write ``<out_name>/model.pt`` (default ``unet/``).

    ``loss_weighting`` is ``"uniform"`` (the paper) or ``"min_snr"`` (see :class:`DiffusionLoss`). A model
    with ``cond_dim: 0`` is the paper's text-only ablation ("noc"): it never sees sex, age or heart rate;
    train it into its own directory, e.g. ``out_name="unet_noc"`` (see :data:`NOC_DIR`).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "latents" / "train.npy").is_file():
        raise FileNotFoundError(f"{run_dir}/latents/train.npy not found: run `diffusets encode {run_dir}` first")
    z_tr, ids_tr = _load_latents(run_dir, "train")
    z_va, ids_va = _load_latents(run_dir, "val")
    k_tokens = int((model or {}).get("text_tokens", 0))
    t_tr, p_tr, identity = conditioning_arrays(run_dir, ids_tr, patient_mode, k_tokens)
    cfg = UNetConfig.from_dict({**(model or {}), "text_dim": int(t_tr.shape[-1]), "in_channels": int(z_tr.shape[1])})
    if cfg.cond_dim not in (0, p_tr.shape[1]):
        raise ValueError(f"unet.model.cond_dim must be {p_tr.shape[1]} (sex, age, HR) or 0 (text only), got {cfg.cond_dim}")
    p_tr = p_tr[:, :cfg.cond_dim]
    tcfg = _train_cfg(train or {}, seed)
    torch.manual_seed(seed)
    unet = build_unet(cfg)
    unet.freeze_unused_parameters()  # no gradient ever reaches them; DDP needs them out of the reducer
    text_stats = None
    if hasattr(unet, "set_text_stats") and cfg.text_standardize:
        # standardise the text vectors with the TRAINING split's statistics; they live in the model's buffers,
        # so the saved artifact applies the same standardisation at generation
        from ..text.standardize import text_standardizer
        from ..text.tokens import statement_rows

        prompts = t_tr[:, 0] if cfg.text_tokens else t_tr
        kw: dict[str, Any] = {}
        mean, tf, info = text_standardizer(prompts, cfg.text_subspace)
        if cfg.text_subspace:
            kw["whiten"] = torch.from_numpy(tf)
        if cfg.text_tokens:
            st = statement_rows(t_tr)
            st_mean, st_tf, st_info = text_standardizer(st, cfg.text_subspace)
            kw.update(statement_mean=torch.from_numpy(st_mean), statement_std=torch.from_numpy(st.std(axis=0)))
            if cfg.text_subspace:
                kw["statement_whiten"] = torch.from_numpy(st_tf)
            info["statement_components"] = st_info["components"]
        unet.set_text_stats(torch.from_numpy(mean), torch.from_numpy(prompts.std(axis=0)), **kw)
        text_stats = {"n": int(len(t_tr)), "mean_norm": float(np.linalg.norm(mean)),
                      "median_std": float(np.median(prompts.std(axis=0))), **info}
    schedule = NoiseSchedule.paper()
    vae_ck = load_checkpoint(run_dir / "vae" / "model.pt")
    meta = {"stage": "unet", "unet_config": cfg.to_dict(), "embedder": identity, "patient_mode": patient_mode,
            "timestep_mode": timestep_mode, "loss_weighting": loss_weighting, "snr_gamma": snr_gamma, "schedule": schedule.to_config(), "latent_scale": vae_ck["latent_scale"], "text_standardisation": text_stats,
            "n_train": len(z_tr), "n_val": len(z_va), "package_version": __version__}
    src = TensorSource({"z": torch.from_numpy(z_tr), "text": torch.from_numpy(t_tr), "patient": torch.from_numpy(p_tr)})
    val = None
    if len(z_va):
        t_va, p_va, _ = conditioning_arrays(run_dir, ids_va, patient_mode, cfg.text_tokens)
        p_va = p_va[:, :cfg.cond_dim]
        val = TensorSource({"z": torch.from_numpy(z_va), "text": torch.from_numpy(t_va), "patient": torch.from_numpy(p_va)})
    out = run_dir / out_name
    meta["latents_fingerprint"] = _latents_fingerprint(run_dir)
    trainer = Trainer(unet, DiffusionLoss(schedule, timestep_mode, loss_weighting, snr_gamma), src, out, tcfg, val=val, meta=meta)
    if resume and (out / "last.pt").is_file():
        before = load_checkpoint(out / "last.pt").get("meta", {}).get("latents_fingerprint")
        if before is not None and before != meta["latents_fingerprint"]:
            # the latents were re-encoded (another VAE, another normalisation) since that checkpoint: resuming
            # would continue (or, at max_steps, keep) a model of other latents
            log.warning("%s/last.pt was trained on other latents (fingerprint %s, now %s): training from scratch",
                        out, before, meta["latents_fingerprint"])
            resume = False
    if resume:
        trainer.resume()
    result = trainer.fit()
    if not trainer.dist.is_main:
        return {}
    best = trainer.ema.shadow
    if (out / "best.pt").is_file():
        best.load_state_dict(load_checkpoint(out / "best.pt")["model"])
    artifact = {"kind": "diffusets.unet", "config": cfg.to_dict(), "state_dict": best.state_dict(),
                "meta": {**meta, "steps": result.steps, "train_seconds": result.seconds}}
    atomic_save(artifact, out / "model.pt")
    # sampling settings validated for an earlier model do not carry over to this one
    (out / "sampling.json").unlink(missing_ok=True)
    summary = {"steps": result.steps, "seconds": round(result.seconds, 1),
               "samples_per_s": round(result.samples_per_s, 1), "best_val_loss": result.best_val_loss,
               "params": best.num_parameters()["total"], "text_dim": cfg.text_dim}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
