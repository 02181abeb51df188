"""Atomic file writes and small numeric helpers shared by every layer (the package's base layer).

Every artifact the package writes goes through :func:`atomic_write` or :func:`atomic_writer`: the bytes go to a
temporary file in the target's directory (prefix :data:`TMP_PREFIX`), are flushed and ``fsync``'ed, then
``os.replace``'d over the target, and the directory is ``fsync``'ed. A crash or ``KeyboardInterrupt`` therefore
leaves either the old file or the new one, never a truncated one, and no stray temporary file (it is removed on
any exception). ``os.replace`` is atomic on POSIX and Windows when source and target share a filesystem, which the
same-directory temporary file guarantees.

This module imports nothing from the package, so data, text, models, diffusion, train, eval and apps can all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "TMP_PREFIX",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npy",
    "atomic_writer",
    "atomic_save_with",
    "writable_dir",
    "l2_normalize",
]

#: Prefix of the temporary files; readers that list a folder skip names starting with it.
TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path`` atomically.

    For writers that want a file name rather than bytes (``DataFrame.to_csv``, ``wfdb.wrsamp``, streamed CSV
    merges). The parent directory is created. On any exception the temporary file is removed and ``path`` is
    left as it was. ``fsync=False`` skips the flushes (for large scratch files whose loss only costs a rerun).

    Raises:
        Whatever the writer raised; ``FileNotFoundError`` if the writer did not create the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, fsync, ``os.replace``)."""
    with atomic_writer(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` of ``text`` encoded as UTF-8."""
    atomic_write(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, **kwargs: Any) -> None:
    """:func:`atomic_write_text` of ``json.dumps(obj, indent=indent, **kwargs)`` plus a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=indent, **kwargs) + "\n")


def atomic_save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` (no pickles, C-contiguous) with atomic replacement."""
    atomic_save_with(path, lambda fh: np.save(fh, np.ascontiguousarray(array), allow_pickle=False))


def atomic_save_with(path: str | os.PathLike[str], save: Callable[[BinaryIO], object]) -> None:
    """Atomically write what ``save(file_object)`` writes (e.g. ``lambda f: torch.save(obj, f)``), streamed to the
    temporary file rather than held in memory (checkpoints and embedding segments can be large)."""
    with atomic_writer(path) as tmp, open(tmp, "wb") as fh:
        save(fh)


def writable_dir(path: str | os.PathLike[str]) -> bool:
    """Whether files can be created at ``path``: the path, or (when it does not exist yet) its nearest existing
    ancestor, is a directory this process may write into (``os.access`` with ``W_OK | X_OK``).

    A query without side effects: nothing is created. ``os.access`` reports a read-only mount (``EROFS``) even
    for root; a directory made read-only with ``chmod`` still counts as writable for root, which it is. Callers
    call it as ``fileio.writable_dir`` so tests can replace it."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (``(N, D)`` or ``(D,)``) divided by their Euclidean norm, floored at ``eps``.

    Returns a new float array of the same shape; an all-zero row stays zero instead of becoming NaN.
    """
    x = np.asarray(x)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)
