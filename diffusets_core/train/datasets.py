"""What the trainers read from a run directory: a split's signals (VAE) and a split's latents (U-Net)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch

from ..data.store import SignalStore
from ..layout import latent_ids_file, latents_file

__all__ = ["StoreSignals", "store_signals", "load_latents"]


class StoreSignals:
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


def store_signals(store: SignalStore, split: str) -> StoreSignals:
    """The ``(N, 12, L)`` signals of ``split`` as a lazily read, indexable tensor source."""
    return StoreSignals(store, split)


def load_latents(run_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, list[str]]:
    """``(latents (N, C, L) float32, record ids)`` of ``split`` as :func:`~.latents.encode_latents` wrote them."""
    z = np.load(latents_file(run_dir, split))
    ids = pd.read_csv(latent_ids_file(run_dir, split), dtype=str)["record_id"].tolist()
    return z, ids
