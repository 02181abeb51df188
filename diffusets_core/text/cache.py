"""Persistent, append-only, crash-safe embedding cache.

Layout (one directory per embedder identity, so vectors of different backends/models/prompt modes/
endpoints never mix)::

    <cache_root>/<identity slug>/
        identity.json                       backend, model, prompt_mode, [base_url], dim (no secrets)
        seg-<time_ns>-<pid>-<rand>.npy      float32 (n, dim) vectors of one appended batch
        seg-<time_ns>-<pid>-<rand>.keys     n lines of sha256(prompt) hex + a footer "#end n=<n> dim=<d> bytes=<size of .npy>"

Keys are ``sha256(exact prompt text, UTF-8)``; the identity is the directory, so the full cache key is
(backend, model, prompt mode, [endpoint], exact prompt).

A key always means "the embedder's vector of this whole text": the package only looks up texts within the
embedder's window (:func:`~diffusets_core.text.embed.embed_texts` refuses longer ones, and a prompt longer than the
window is looked up as its chunks of whole statements, :mod:`~diffusets_core.text.window`, whose combined vector is
recomputed from them and never stored).  So no key changed when long prompts stopped being truncated: prompts
within the window keep their entries, and an entry an older version stored for a longer prompt (a truncated vector)
is simply never read.

Crash safety and concurrency
----------------------------
* A segment is written as ``.npy`` first (temp file, ``fsync``, atomic ``rename``, directory ``fsync``: the
  package's :func:`~diffusets_core.fileio.atomic_writer`), then its ``.keys``
  file the same way.  The ``.keys`` file is the commit marker: readers only look at segments whose
  ``.keys`` file exists, ends with a footer and agrees with the ``.npy`` (row count, dim, byte size).
  Anything else (an orphan ``.npy``, a truncated or torn file written by a crashed process or a
  non-atomic copy) is ignored with a warning and cleaned by :meth:`EmbeddingCache.consolidate`.
* Hence an interrupted embedding run keeps every batch that was committed, and a reader running while
  another process appends sees a prefix of complete segments, never a partial one.
* Several writers may append at once (distinct segment names); a prompt embedded twice is stored twice
  and the first occurrence (in segment-name order) wins on load.
* :meth:`EmbeddingCache.consolidate` merges all segments into one (written atomically before the old
  ones are deleted).  Many small segments load slower (one file pair each), so ``embed_run``
  consolidates automatically when there are more than ``auto_consolidate`` segments.

Segments are memory-mapped by default (``mmap=True``): opening a cache reads only the keys and builds
the index (about 1.5 s for 1M entries), and a lookup reads only the rows it returns; ``mmap=False``
reads every vector into memory up front.  See ``benchmarks/embedding_throughput.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..fileio import TMP_PREFIX, atomic_save_with
from .embedders import EmbedderIdentity

log = logging.getLogger(__name__)

_FOOTER = "#end"


def prompt_key(text: str) -> str:
    """sha256 hex digest of the exact prompt text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of a .npy file without reading its data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise ValueError("fortran-ordered segment")
        return shape, dtype, f.tell()


class EmbeddingCache:
    """Cache of vectors for one embedder identity under ``root``.

    >>> cache = EmbeddingCache(root, embedder.identity)
    >>> vecs, missing = cache.lookup(prompts)        # missing: indices of prompts not cached
    >>> cache.add([prompts[i] for i in missing], embedder.embed([...]))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        identity: EmbedderIdentity,
        mmap: bool = True,
        read_only_roots: Sequence[str | os.PathLike] = (),
        persist: bool = True,
        read_only_first: bool = False,
    ):
        """``root``: where vectors are read and appended. ``read_only_roots``: other cache roots whose segments
        of the same identity are read too but never written or consolidated (e.g. the cache inside a run that
        this process may not write into); a prompt found in several is taken from ``root`` first, or with
        ``read_only_first`` from the read-only roots first (a model folder's shipped vectors over the user's cache).
        ``persist=False``: :meth:`add` keeps new vectors in memory only and nothing is ever written (for a
        process that may write nowhere)."""
        self.root = Path(root)
        self.identity = identity
        self.dir = self.root / identity.slug()
        self.read_only_dirs = [Path(r) / identity.slug() for r in read_only_roots if Path(r) != self.root]
        self.persist = persist
        self.read_only_first = read_only_first
        self.mmap = mmap
        self.dim: int | None = identity.dim
        self._index: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._block_starts: list[int] = []
        self._n = 0
        self._loaded: set[str] = set()
        self._loaded_read_only: dict[Path, set[str]] = {}
        self.refresh()

    # ------------------------------------------------------------------ reading
    def segment_names(self, directory: Path | None = None) -> list[str]:
        """Names (without suffix) of committed segments (those with a ``.keys`` file) of this cache's own
        directory (or of ``directory``), sorted."""
        directory = self.dir if directory is None else directory
        if not directory.is_dir():
            return []
        return sorted(p.name[:-5] for p in directory.glob("seg-*.keys"))

    def _read_segment(self, name: str, directory: Path | None = None) -> tuple[list[str], np.ndarray] | None:
        directory = self.dir if directory is None else directory
        kpath, vpath = directory / f"{name}.keys", directory / f"{name}.npy"
        try:
            text = kpath.read_text(encoding="ascii")
            lines = text.split("\n")
            while lines and lines[-1] == "":
                lines.pop()
            if not lines or not lines[-1].startswith(_FOOTER):
                raise ValueError("keys file has no footer (torn write)")
            meta = dict(kv.split("=", 1) for kv in lines[-1].split()[1:])
            n, dim, nbytes = int(meta["n"]), int(meta["dim"]), int(meta["bytes"])
            keys = lines[:-1]
            if len(keys) != n:
                raise ValueError(f"keys file lists {len(keys)} keys, footer says {n}")
            if vpath.stat().st_size != nbytes:
                raise ValueError(f"vectors file is {vpath.stat().st_size} bytes, expected {nbytes} (torn write)")
            shape, dtype, _ = _npy_header(vpath)
            if shape != (n, dim) or dtype != np.float32:
                raise ValueError(f"vectors file has shape {shape} {dtype}, expected ({n}, {dim}) float32")
            arr = np.load(vpath, mmap_mode="r" if self.mmap else None)
        except FileNotFoundError:
            return None  # removed by a concurrent consolidate(); its content is in the merged segment
        except Exception as e:
            log.warning("ignoring damaged cache segment %s: %s", directory / name, e)
            return None
        return keys, arr

    def refresh(self) -> int:
        """Load segments committed since the last call (own directory first, then the read-only ones; the other
        way round with ``read_only_first``); returns the number of new vectors indexed."""
        added = 0 if self.read_only_first else self._refresh_dir(self.dir, self._loaded)
        for d in self.read_only_dirs:
            added += self._refresh_dir(d, self._loaded_read_only.setdefault(d, set()))
        if self.read_only_first:
            added += self._refresh_dir(self.dir, self._loaded)
        return added

    def _refresh_dir(self, directory: Path, loaded: set[str]) -> int:
        added = 0
        for _ in range(3):  # a concurrent consolidate() may remove segments while we list them
            names = [n for n in self.segment_names(directory) if n not in loaded]
            missing = False
            for name in names:
                seg = self._read_segment(name, directory)
                if seg is None:
                    if not (directory / f"{name}.keys").exists():
                        missing = True
                    else:
                        loaded.add(name)  # damaged: skip for good
                    continue
                keys, arr = seg
                loaded.add(name)
                added += self._add_block(keys, arr)
            if not missing:
                break
        return added

    def _add_block(self, keys: Sequence[str], arr: np.ndarray) -> int:
        if self.dim is None:
            self.dim = int(arr.shape[1])
        elif arr.shape[1] != self.dim:
            log.warning("ignoring cache block of dim %d in a %d-d cache %s", arr.shape[1], self.dim, self.dir)
            return 0
        base = self._n
        index = self._index
        new = 0
        for i, k in enumerate(keys):
            if k not in index:
                index[k] = base + i
                new += 1
        self._blocks.append(arr)
        self._block_starts.append(base)
        self._n += len(keys)
        return new

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return prompt_key(text) in self._index

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """Vectors for ``texts`` (rows of missing texts are zero) and the indices of the missing texts."""
        rows = np.full(len(texts), -1, dtype=np.int64)
        missing = []
        for i, t in enumerate(texts):
            r = self._index.get(prompt_key(t))
            if r is None:
                missing.append(i)
            else:
                rows[i] = r
        return self._gather(rows), missing

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (global indices, -1 = zeros) gathered block by block (no concatenation, so a
        memory-mapped cache only reads the rows it needs)."""
        out = np.zeros((len(rows), self.dim or 0), dtype=np.float32)
        hit = np.flatnonzero(rows >= 0)
        if len(hit) == 0:
            return out
        starts = np.asarray(self._block_starts, dtype=np.int64)
        which = np.searchsorted(starts, rows[hit], side="right") - 1
        for b in np.unique(which):
            sel = hit[which == b]
            local = rows[sel] - starts[b]
            order = np.argsort(local, kind="stable")  # sequential reads on a memory map
            out[sel[order]] = self._blocks[b][local[order]]
        return out

    def get(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``; raises ``KeyError`` if any is missing."""
        out, missing = self.lookup(texts)
        if missing:
            raise KeyError(f"{len(missing)} prompt(s) not in the cache, e.g. {texts[missing[0]]!r}")
        return out

    # ------------------------------------------------------------------ writing
    def _write_identity(self) -> None:
        path = self.dir / "identity.json"
        if path.exists():
            return
        meta = dict(self.identity.to_dict(), dim=self.dim, key="sha256(prompt utf-8)")
        atomic_save_with(path, lambda f: f.write(json.dumps(meta, indent=2).encode()))

    def _write_segment(self, keys: Sequence[str], vectors: np.ndarray) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        vpath, kpath = self.dir / f"{name}.npy", self.dir / f"{name}.keys"
        atomic_save_with(vpath, lambda f: np.save(f, vectors, allow_pickle=False))
        nbytes = vpath.stat().st_size
        body = "\n".join(keys) + ("\n" if keys else "")
        body += f"{_FOOTER} n={len(keys)} dim={vectors.shape[1]} bytes={nbytes}\n"
        atomic_save_with(kpath, lambda f: f.write(body.encode("ascii")))
        return name

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> int:
        """Append one segment with ``texts`` -> ``vectors`` (already-cached texts are skipped).
        Durable when this returns (in memory only with ``persist=False``).  Returns the number of vectors added."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"vectors shape {vectors.shape} does not match {len(texts)} texts")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ValueError(f"cache {self.dir} holds {self.dim}-d vectors, got {vectors.shape[1]}-d")
        keys, rows, seen = [], [], set()
        for i, t in enumerate(texts):
            k = prompt_key(t)
            if k not in self._index and k not in seen:
                seen.add(k)
                keys.append(k)
                rows.append(i)
        if not keys:
            return 0
        vec = vectors[rows]
        if self.dim is None:
            self.dim = int(vec.shape[1])
        if not self.persist:
            self._add_block(keys, vec)
            return len(keys)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_identity()
        name = self._write_segment(keys, vec)
        self._loaded.add(name)
        self._add_block(keys, vec)
        return len(keys)

    def consolidate(self) -> int:
        """Merge all committed segments into one; delete the merged ones and any torn leftovers.
        Returns the number of segments removed.  Safe against concurrent readers (they either see the old
        segments or the merged one; the merged one is committed before the old ones are deleted).
        A cache with ``persist=False`` writes nothing and returns 0."""
        if not self.persist:
            return 0
        listed = self.segment_names()
        self.refresh()
        # only segments that are both listed now and indexed in memory are merged and deleted, so a
        # segment committed concurrently by another writer is never lost
        names = [n for n in listed if n in self._loaded]
        keys_by_row = [None] * self._n
        for k, r in self._index.items():
            keys_by_row[r] = k
        rows = np.array([r for r, k in enumerate(keys_by_row) if k is not None], dtype=np.int64)
        removed = 0
        if len(names) > 1:
            mat = self._gather(rows)
            keys = [keys_by_row[r] for r in rows]
            new = self._write_segment(keys, mat)
            for name in names:
                for suf in (".keys", ".npy"):  # .keys first: the commit marker disappears before the data
                    try:
                        (self.dir / f"{name}{suf}").unlink()
                    except FileNotFoundError:
                        pass
                removed += 1
            self._index = {k: i for i, k in enumerate(keys)}
            self._blocks, self._block_starts, self._n = [mat], [0], len(keys)
            self._loaded = {new} | (self._loaded - set(names))
        # orphans: .npy without .keys (crash between the two renames) and stale temp files
        committed = set(self.segment_names())
        leftovers = [p for p in self.dir.glob("seg-*.npy") if p.name[:-4] not in committed]
        leftovers += list(self.dir.glob(".seg-*.tmp-*")) + list(self.dir.glob(f"{TMP_PREFIX}seg-*"))
        for p in leftovers:  # the age test spares a segment another writer is committing right now
            try:
                if time.time() - p.stat().st_mtime > 60:
                    p.unlink()
            except FileNotFoundError:
                pass
        return removed

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.dir)!r}, n={len(self)}, dim={self.dim})"


def open_cache(root: str | os.PathLike, identity: EmbedderIdentity, mmap: bool = True) -> EmbeddingCache:
    return EmbeddingCache(root, identity, mmap=mmap)


def iter_batches(seq: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
