"""Stage 2: encode every prepared record with the trained VAE into ``latents/`` (what the U-Net trains on)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint
from ..data.store import SignalStore
from ..device import resolve_device
from ..fileio import atomic_save_npy, atomic_write_text, atomic_writer
from ..layout import LATENT_SPLITS, latent_ids_file, latent_info_file, latents_dir, latents_file, vae_model
from ..models.vae import load_vae

__all__ = ["LATENT_SPLITS", "encode_latents", "latents_fingerprint"]


@torch.no_grad()
def encode_latents(run_dir: str | os.PathLike, *, device: str = "auto", batch: int = 64) -> dict:
    """Encode every prepared record with the trained VAE (posterior mean × scale) into ``latents/``:
    ``{split}.npy`` float32 (N, C, L), ``{split}_ids.csv`` and ``info.json`` (scale, per-split n/mean/std).

    The reference encodes one *sample* of the posterior per record; the mean is the deterministic choice
    and, with the measured scale, gives unit-variance latents.
    """
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    vae = load_vae(run_dir, dev)
    store = SignalStore(run_dir)
    latents_dir(run_dir).mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"latent_scale": vae.scale_factor, "splits": {}}
    for split in LATENT_SPLITS:
        records = store.records(split)
        chunks = []
        for _frame, signals in store.iter_shards(split):
            x = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32))
            for i in range(0, len(x), batch):
                chunks.append(vae.encode(x[i : i + batch].to(dev), sample=False)[0].cpu())
        z = torch.cat(chunks).numpy() if chunks else np.zeros((0, vae.cfg.latent_channels, 0), np.float32)
        atomic_save_npy(latents_file(run_dir, split), z.astype(np.float32))
        with atomic_writer(latent_ids_file(run_dir, split)) as tmp:
            records[["record_id"]].to_csv(tmp, index=False)
        info["splits"][split] = {
            "n": int(len(z)),
            "mean": float(z.mean()) if len(z) else None,
            "std": float(z.std()) if len(z) else None,
        }
    atomic_write_text(latent_info_file(run_dir), json.dumps(info, indent=2))
    return info


def latents_fingerprint(run_dir: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) of ``latents/info.json``, ``latents/train.npy``'s size and the VAE's config: changes
    whenever the latents are re-encoded with another VAE or normalisation."""
    info_path = latent_info_file(run_dir)
    info = info_path.read_bytes() if info_path.is_file() else b""
    size = latents_file(run_dir, "train").stat().st_size
    vae_cfg = json.dumps(load_checkpoint(vae_model(run_dir)).get("config", {}), sort_keys=True, default=str)
    return hashlib.sha256(info + str(size).encode() + vae_cfg.encode()).hexdigest()[:16]
