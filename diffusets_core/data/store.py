"""On-disk store of prepared signals: sharded ``.npy`` arrays + ``manifest.csv``.

Layout (CONTRACTS.md)::

    run/data/manifest.csv                 one row per source record, MANIFEST_COLUMNS
    run/data/signals/shard_00000.npy ...  float32 (n_i, 12, 1024) mV, canonical lead order
    run/data/prepare.json                 how the data was made

Every file is written atomically (:func:`diffusets_core.fileio.atomic_write`): to a temporary file in the same
directory, flushed and fsync'ed, then ``os.replace``'d over the target, so a crash leaves
either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..fileio import TMP_PREFIX, atomic_save_npy, atomic_write, atomic_write_text
from ..layout import DATA_DIR, EMBEDDINGS_DIR, MANIFEST_FILE, PREPARE_FILE, SIGNALS_DIR, data_dir
from .preprocess import PreprocessConfig

__all__ = [
    "MANIFEST_COLUMNS",
    "SignalStore",
    "atomic_write",
    "atomic_save_npy",
    "atomic_write_text",
    "read_manifest",
    "read_preprocess_config",
    "shard_path",
    "data_dir",
    "TMP_PREFIX",
]

MANIFEST_COLUMNS: tuple[str, ...] = (
    "record_id",
    "subject_id",
    "split",
    "report",
    "findings",
    "age",
    "sex",
    "hr",
    "hr_source",
    "source",
    "source_path",
    "status",
    "reason",
    "shard",
    "row",
    "notes",
)
_STRING_COLUMNS = (
    "record_id",
    "subject_id",
    "split",
    "report",
    "findings",
    "sex",
    "hr_source",
    "source",
    "source_path",
    "status",
    "reason",
    "notes",
)


def shard_path(run_dir: str | os.PathLike[str], shard: int) -> Path:
    return data_dir(run_dir) / SIGNALS_DIR / f"shard_{shard:05d}.npy"


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest with stable dtypes: ids and text as str, numbers as float/Int64."""
    df = pd.read_csv(
        path,
        dtype={c: str for c in _STRING_COLUMNS},
        keep_default_na=False,
        na_values={"age": [""], "hr": [""], "shard": [""], "row": [""]},
    )
    for col in ("notes", "findings"):  # manifests written before these columns existed
        if col not in df.columns:
            df[col] = ""
    for col in ("age", "hr"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("shard", "row"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df[list(MANIFEST_COLUMNS)]


def read_preprocess_config(run_dir: str | os.PathLike[str]) -> PreprocessConfig:
    """The :class:`~.preprocess.PreprocessConfig` a run's records were prepared with (``data/prepare.json``'s
    ``preprocess`` entry): what a new record must go through to look like the run's data.

    Raises:
        FileNotFoundError: the run has no ``data/prepare.json`` (not prepared, or prepared before it was written).
        ValueError: the file holds no ``preprocess`` entry, or one with keys this version does not know (the
            message names the file and the keys).
    """
    path = data_dir(run_dir) / PREPARE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no preprocessing record (prepare the run first: `diffusets prepare`)")
    entry = json.loads(path.read_text()).get("preprocess")
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: no 'preprocess' entry (expected the PreprocessConfig the run was prepared with)")
    known = set(PreprocessConfig.__dataclass_fields__)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(
            f"{path}: 'preprocess' has key(s) {', '.join(unknown)} this version does not know "
            f"(known: {', '.join(sorted(known))}); prepared by another package version?"
        )
    return PreprocessConfig.from_dict(entry)


class SignalStore:
    """Read access to a prepared run: ``SignalStore(run_dir).signals("train")``."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.run_dir = Path(run_dir)
        self.data_dir = data_dir(self.run_dir)
        manifest = self.data_dir / MANIFEST_FILE
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: no prepared data (run prepare_dataset first)")
        self._manifest: pd.DataFrame | None = None
        self._info: dict | None = None

    @property
    def manifest(self) -> pd.DataFrame:
        """All rows, ok and skipped (see CONTRACTS.md for the columns)."""
        if self._manifest is None:
            self._manifest = read_manifest(self.data_dir / MANIFEST_FILE)
        return self._manifest

    @property
    def info(self) -> dict:
        """Contents of ``prepare.json`` (empty if absent)."""
        if self._info is None:
            p = self.data_dir / PREPARE_FILE
            self._info = json.loads(p.read_text()) if p.is_file() else {}
        return self._info

    @property
    def fs(self) -> float:
        """Sampling rate of the stored signals (out_len / window_s, 102.4 Hz by default)."""
        cfg = self.info.get("preprocess", {})
        return float(cfg.get("out_len", 1024)) / float(cfg.get("window_s", 10.0))

    def records(self, split: str | None = None) -> pd.DataFrame:
        """The ``ok`` manifest rows, in the order :meth:`signals` returns their arrays."""
        m = self.manifest
        m = m[m["status"] == "ok"]
        if split is not None:
            m = m[m["split"] == split]
        return m.reset_index(drop=True)

    def shard(self, shard: int) -> np.ndarray:
        """One shard, memory-mapped read-only."""
        return np.load(shard_path(self.run_dir, shard), mmap_mode="r")

    def iter_shards(self, split: str | None = None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """(records, signals) per shard: the way to stream datasets too large for RAM."""
        recs = self.records(split)
        for shard, grp in recs.groupby("shard", sort=True):
            arr = self.shard(int(shard))
            rows = grp["row"].to_numpy(dtype=np.int64)
            yield (
                grp.reset_index(drop=True),
                (arr if len(rows) == len(arr) and (rows == np.arange(len(arr))).all() else arr[rows]),
            )

    def signals(self, split: str | None = None) -> np.ndarray:
        """``(N, 12, L)`` float32 signals of the ok records (of one split, if given).

        A single shard fully selected comes back as its read-only memory map (no copy);
        otherwise the selected rows are gathered into one array in memory.
        """
        parts = [sig for _, sig in self.iter_shards(split)]
        if not parts:
            cfg = self.info.get("preprocess", {})
            return np.zeros((0, 12, int(cfg.get("out_len", 1024))), dtype=np.float32)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts, axis=0)

    def __len__(self) -> int:
        return int((self.manifest["status"] == "ok").sum())

    def view(self, split: str | None = None) -> SignalView:
        """The ``(N, 12, L)`` signals of :meth:`signals`, read lazily from the memory-mapped shards: indexing
        copies only the selected rows, so memory does not grow with the number of records (for datasets
        larger than RAM, e.g. MIMIC-IV-ECG's ~800k records at ~48 kB each)."""
        return SignalView(self, split)


class SignalView:
    """A read-only ``(N, 12, L)`` float32 array-like over one split's rows in the shards (see
    :meth:`SignalStore.view`). ``view[i]``, ``view[a:b]`` and ``view[index_array]`` return NumPy copies of
    those rows in the order asked; rows follow :meth:`SignalStore.records`."""

    def __init__(self, store: SignalStore, split: str | None = None):
        recs = store.records(split)
        self._store = store
        self._shard = recs["shard"].to_numpy(dtype=np.int64)
        self._row = recs["row"].to_numpy(dtype=np.int64)
        self._maps: dict[int, np.ndarray] = {}
        cfg = store.info.get("preprocess", {})
        self.shape = (len(recs), 12, int(cfg.get("out_len", 1024)))
        if len(recs):
            self.shape = (len(recs),) + tuple(self._map(int(self._shard[0])).shape[1:])
        self.dtype = np.dtype(np.float32)

    def _map(self, shard: int) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = self._store.shard(shard)
        return self._maps[shard]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return np.asarray(self[np.array([idx])][0])
        pos = np.arange(self.shape[0])[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(pos) and (pos.min() < -self.shape[0] or pos.max() >= self.shape[0]):
            raise IndexError(f"index out of range for {self.shape[0]} records")
        out = np.empty((len(pos),) + self.shape[1:], dtype=np.float32)
        shards, rows = self._shard[pos], self._row[pos]
        for sh in np.unique(shards):
            sel = np.flatnonzero(shards == sh)
            out[sel] = self._map(int(sh))[rows[sel]]
        return out


def link_prepared(src_run: str | os.PathLike, dst_run: str | os.PathLike) -> Path:
    """Make ``dst_run`` a run directory that shares ``src_run``'s prepared data and text embeddings (symbolic links
    to its ``data/`` and ``embeddings/``), so experiments can train their own models beside it without copying or
    touching it. Returns ``dst_run``. Raises FileNotFoundError if ``src_run`` has no ``data/``."""
    src, dst = Path(src_run).resolve(), Path(dst_run)
    if not (src / DATA_DIR).is_dir():
        raise FileNotFoundError(f"{src}/data not found: prepare the run first (`diffusets prepare`)")
    dst.mkdir(parents=True, exist_ok=True)
    for name in (DATA_DIR, EMBEDDINGS_DIR):
        link = dst / name
        if not link.exists() and (src / name).exists():
            link.symlink_to(src / name, target_is_directory=True)
    return dst
