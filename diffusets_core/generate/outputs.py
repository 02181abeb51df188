"""Output folders of the generation commands: checked before anything is written, locked while a process writes
into them, and tied to the one request that fills them.

* **Checked first.** :func:`check_out_dir` (no side effects) refuses an output path that is a file, lies under a
  file, or sits where this process may not write, with :class:`OutputDirError` naming the path and what to do;
  :func:`make_out_dir` creates the folder and probes it with a real temporary file (a read-only mount refuses it
  even for root).
* **One writer.** :func:`output_lock` holds an OS file lock (``filelock``: ``flock`` on POSIX, ``msvcrt`` on
  Windows) on ``DIR/.lock`` for as long as a command writes into ``DIR``; the kernel releases it when the process
  dies, so a killed run never leaves a stale lock. The holder's pid, start time and command are written beside it
  (``DIR/.lock.json``), so a second command fails at once with :class:`OutputBusyError` saying who holds the folder.
* **Resume the same request only.** A folder records the request that filled it (conditions, sampler settings,
  seed, batch size, formats, model identity); :func:`request_differences` lists what another request changes, as
  ``field: <recorded> recorded, <new> now``, so the caller refuses it instead of keeping ECGs of the old one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import fileio
from ..fileio import atomic_write_json

__all__ = [
    "foreign_outputs",
    "OutputDirError",
    "OutputBusyError",
    "RequestMismatchError",
    "LOCK_FILE",
    "LOCK_INFO_FILE",
    "check_out_dir",
    "make_out_dir",
    "output_lock",
    "request_differences",
    "format_differences",
    "REQUEST_RECORDS",
]

LOCK_FILE = ".lock"  #: the OS-locked file in an output folder
LOCK_INFO_FILE = ".lock.json"  #: who holds the lock: pid, started (UTC, ISO 8601), command
MAX_DIFFS_SHOWN = 8


class OutputDirError(ValueError):
    """The output path cannot hold generated files (a file, under a file, not writable); the message names the
    path and what to do."""


class OutputBusyError(RuntimeError):
    """Another process is writing into the output folder (it holds the folder's lock)."""


class RequestMismatchError(ValueError):
    """The output folder holds ECGs of another request; ``differences`` lists ``field: old recorded, new now``."""

    def __init__(self, message: str, differences: list[str]):
        super().__init__(message)
        self.differences = differences


def check_out_dir(out: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse, without writing anything, an output path that cannot become a folder of generated files.

    Returns the path. Raises :class:`OutputDirError` when ``out`` is an existing file, when a part of its parent
    path is a file, or when this process may not create files there (``fileio.writable_dir``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"{option} {out}: is a file, not a folder; give a new or existing folder path")
    up = out.absolute().parent
    while not up.exists() and up != up.parent:
        up = up.parent
    if not up.is_dir():
        raise OutputDirError(f"{option} {out}: {up} is a file, so no folder can be made below it; give a folder path")
    if not fileio.writable_dir(out):
        where = out if out.is_dir() else up
        raise OutputDirError(
            f"{option} {out}: cannot write into {where} (permission denied or a read-only file system); "
            "give a folder you may write into"
        )
    return out


def make_out_dir(out: str | os.PathLike, option: str = "--out") -> Path:
    """:func:`check_out_dir`, then create the folder (and its parents) and prove it writable by creating and
    removing a temporary file. Raises :class:`OutputDirError` naming the path on any OS error."""
    out = check_out_dir(out, option)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=fileio.TMP_PREFIX + "probe.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(
            f"{option} {out}: cannot write there ({exc.strerror or exc}); give a folder you may write into"
        ) from None
    return out


def _holder(out: Path) -> str:
    """'pid N, started T, command C' from the lock's info file, or a sentence saying it is unknown."""
    try:
        info = json.loads((out / LOCK_INFO_FILE).read_text())
        return f"pid {info['pid']}, started {info['started']}, `{info.get('command', '?')}`"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not recorded its pid yet"


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``out``'s lock while the block writes into it (``out`` must exist).

    Fails at once, without waiting, with :class:`OutputBusyError` naming the holder (pid, start time, command)
    when another process holds it. ``command`` is recorded for that message (e.g. ``diffusets generate ...``).
    Yields the lock file's path."""
    from filelock import FileLock, Timeout  # a dependency of torch; imported here to keep `import` light

    out = Path(out)
    path = out / LOCK_FILE
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputBusyError(
            f"{out}: another diffusets process is writing into this folder ({_holder(out)}); wait for it to "
            "finish (then rerun to resume or check its output), or use another --out"
        ) from None
    except OSError as exc:
        raise OutputDirError(
            f"{out}: cannot lock it ({exc.strerror or exc}); give a folder you may write into"
        ) from None
    try:
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(out / LOCK_INFO_FILE, {"pid": os.getpid(), "started": now, "command": command})
        yield path
    finally:
        with contextlib.suppress(OSError):
            (out / LOCK_INFO_FILE).unlink()  # before the release, so a new holder's info is never removed
        lock.release()


#: The record each kind of output folder keeps of the request that filled it, and what a user calls that kind.
REQUEST_RECORDS = {
    "request.json": "ECGs of a `generate --report` request",
    "dataset.json": "a dataset of `generate --conditions`",
}
#: What generation leaves in a folder besides its record (the lock files are not outputs).
_GENERATED = (".parts", ".tmp", "records", "manifest.csv", "conditions.csv")


def foreign_outputs(out: Path, own_record: str) -> str | None:
    """What in ``out`` was generated by something other than a request recorded in ``own_record``
    (``request.json`` or ``dataset.json``), as a phrase for an error message; None when the folder holds no
    generated output. Called when ``own_record`` is absent: the two kinds of folder share file names (``.parts``
    batch markers), so one must never take the other's files for its own."""
    for record, what in REQUEST_RECORDS.items():
        if record != own_record and (out / record).is_file():
            return f"{what} ({record})"
    made = sorted(p.name for p in out.iterdir() if p.name.startswith("ecg_") or p.name in _GENERATED)
    if not made:
        return None
    return f"generated files ({', '.join(made[:3])}{', ...' if len(made) > 3 else ''}) but no {own_record}"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: d}


def _show(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def request_differences(recorded: Mapping, new: Mapping, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every field (dotted path into nested dicts) whose value differs, as ``field: <recorded> recorded, <new>
    now``, in field order; a field absent on one side shows as ``(absent)``. Fields in ``ignore`` (or under
    them) are skipped. Values are compared after a JSON round trip, so a tuple equals the list it was saved as."""
    old = _flatten(json.loads(json.dumps(recorded, default=str)))
    cur = _flatten(json.loads(json.dumps(new, default=str)))
    diffs = []
    for key in list(dict.fromkeys([*cur, *old])):
        if any(key == i or key.startswith(i + ".") for i in ignore):
            continue
        if old.get(key, "(absent)") != cur.get(key, "(absent)"):
            a = old.get(key, "(absent)")
            b = cur.get(key, "(absent)")
            diffs.append(f"{key}: {_show(a) if key in old else a} recorded, {_show(b) if key in cur else b} now")
    return diffs


def format_differences(diffs: list[str]) -> str:
    """The first :data:`MAX_DIFFS_SHOWN` differences joined with ``; `` (and how many more)."""
    more = f"; and {len(diffs) - MAX_DIFFS_SHOWN} more" if len(diffs) > MAX_DIFFS_SHOWN else ""
    return "; ".join(diffs[:MAX_DIFFS_SHOWN]) + more
