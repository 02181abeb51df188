"""A patient's own earlier ECG (the *reference*) in the form the models read: ``(N, 12, length)`` float32 mV.

A reference comes as one of

* a NumPy array ``(12, length)`` or ``(N, 12, length)`` already at the models' rate and length (e.g. a row of a
  prepared run): it is checked, not changed - leads first in the canonical order
  (:data:`.leads.CANONICAL_LEADS`), ``length`` samples, finite, no lead constant for longer than the
  preprocessing's ``max_flat_s`` and plausible millivolt amplitudes (:func:`.preprocess.check_flat_leads`,
  :func:`.preprocess.check_amplitude`: the rules the prepare stage applies to training records);
* the path of a WFDB record (without extension, or its ``.hea``/``.dat``): read by :func:`.wfdb_io.read_record`
  and put through the prepare stage's own steps (:func:`.preprocess.preprocess_signal`: first ``window_s`` seconds,
  gap filling, flat-lead and amplitude checks, optional baseline filter; :func:`.preprocess.resample_window`: FFT
  resampling to ``out_len`` samples), so a file gives bit for bit the signal ``prepare`` would have stored for it;
* a list or tuple of those (arrays and paths may be mixed), stacked in the order given.

:func:`reference_from_run` takes a record a run has already prepared, by its ``record_id``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .leads import CANONICAL_LEADS
from .preprocess import (
    PreprocessConfig,
    SkipRecord,
    check_amplitude,
    check_flat_leads,
    preprocess_signal,
    resample_window,
)
from .store import SignalStore
from .wfdb_io import read_record

__all__ = [
    "reference_names",
    "ReferenceECGError",
    "ReferenceNotFoundError",
    "check_reference_array",
    "load_reference_ecgs",
    "reference_from_run",
]

_N_LEADS = len(CANONICAL_LEADS)


class ReferenceECGError(ValueError):
    """A reference ECG that cannot be used; the message names the array or file and what was expected."""


class ReferenceNotFoundError(KeyError):
    """A record id a run does not hold (or holds without a signal). ``str(err)`` is the message, unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def load_reference_ecgs(source, *, fs: float, length: int, preprocess: PreprocessConfig | None = None) -> np.ndarray:
    """Reference ECG(s) as the models read them (see the module doc for the accepted forms).

    Args:
        source: an array ``(12, length)`` / ``(N, 12, length)`` in mV, a WFDB record path (``str`` or
            ``os.PathLike``), or a list/tuple of them.
        fs: the models' sampling rate in Hz (102.4 for the prepared data: 10 s in 1024 samples).
        length: samples per lead the models read (1024).
        preprocess: how a WFDB record is turned into ``length`` samples, and the limits the checks use; pass the
            run's (:func:`.store.read_preprocess_config`) so that a file is prepared as the run's records were.
            ``None``: :class:`~.preprocess.PreprocessConfig` defaults with ``out_len = length`` and a window of
            ``length / fs`` seconds. Its ``expected_fs``, when set, refuses a record at another rate.

    Returns:
        ``(N, 12, length)`` float32 mV, canonical lead order, C-contiguous (a new array, never a view of ``source``).

    Raises:
        ReferenceECGError: an array of the wrong shape, length or dtype, with non-finite values, a flat lead or an
            implausible amplitude; a record shorter than the window or failing the preprocessing checks; an empty
            list. The message names the array (its position in a list) or the file, the lead and what was expected.
        RecordError: a WFDB record that cannot be read (:mod:`.wfdb_io`'s subclasses, each naming the file:
            ``RecordNotFoundError``, ``MissingLeadError`` listing the missing leads, ``UnexpectedSamplingRateError``
            giving the rate found and the one expected, ...).
        ValueError: ``preprocess`` makes another length or rate than ``length`` samples at ``fs`` Hz.
        TypeError: an item that is neither an array nor a path.
    """
    cfg = _config(fs, length, preprocess)
    many = isinstance(source, (list, tuple))
    items = list(source) if many else [source]
    if not items:
        raise ReferenceECGError("no reference ECG given (an empty list): give an array or a WFDB record path")
    parts = []
    for k, item in enumerate(items):
        where = f"reference {k}" if many else "the reference array"
        if isinstance(item, (str, os.PathLike)):
            parts.append(_from_record(item, cfg)[None])
        elif isinstance(item, np.ndarray):
            parts.append(check_reference_array(item, fs=fs, length=length, preprocess=cfg, where=where))
        else:
            raise TypeError(
                f"{where}: expected a numpy array (12, {length}) or a WFDB record path, got {type(item).__name__}"
            )
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


def check_reference_array(
    x: np.ndarray, *, fs: float, length: int, preprocess: PreprocessConfig, where: str = "the reference array"
) -> np.ndarray:
    """``x`` (``(12, length)`` or ``(N, 12, length)`` mV) checked and returned as a new ``(N, 12, length)`` float32.

    ``where`` names the array in messages. Raises ReferenceECGError (see :func:`load_reference_ecgs`); the flat-lead
    and amplitude limits are ``preprocess``'s (``max_flat_s``, ``max_amplitude_mv``, ``min_amplitude_mv``).
    """
    wanted = f"(12, {length}) or (N, 12, {length}): (leads, samples), leads in the order {', '.join(CANONICAL_LEADS)}"
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ReferenceECGError(f"{where}: an array of {x.dtype} values; expected real numbers in mV, {wanted}")
    if x.ndim not in (2, 3):
        raise ReferenceECGError(f"{where}: an array of {x.ndim} dimension(s), shape {x.shape}; expected {wanted}")
    batch = x[None] if x.ndim == 2 else x
    if batch.shape[0] == 0:
        raise ReferenceECGError(f"{where}: an array of shape {x.shape} holds no ECG; expected {wanted}")
    if batch.shape[1] != _N_LEADS:
        hint = ""
        if batch.shape[2] == _N_LEADS:
            hint = " It looks like (samples, leads): transpose it (x.T, or np.swapaxes(x, -1, -2) for a batch)."
        raise ReferenceECGError(
            f"{where}: shape {x.shape} has {batch.shape[1]} leads on the lead axis; 12 leads expected, {wanted}.{hint}"
        )
    if batch.shape[2] != length:
        raise ReferenceECGError(
            f"{where}: shape {x.shape} has {batch.shape[2]} samples per lead; an array must already be at {fs:g} Hz, "
            f"{length} samples = the {length / fs:g} s window the model reads. Resample it, or pass the WFDB record's "
            "path instead: a record is cropped to the window and resampled as the training records were."
        )
    out = batch.astype(np.float32)  # a copy: the caller's array is never changed or aliased
    for i in range(out.shape[0]):
        name = f"record {i} of {where}" if x.ndim == 3 else where
        _check_signal(out[i], fs, preprocess, name)
    return out


def _check_signal(signal: np.ndarray, fs: float, cfg: PreprocessConfig, name: str) -> None:
    """ReferenceECGError for a ``(12, L)`` signal with non-finite samples, a flat lead or implausible amplitudes."""
    bad = ~np.isfinite(signal)
    if bad.any():
        lead = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ReferenceECGError(
            f"{name}: lead {CANONICAL_LEADS[lead]} has {int(bad[lead].sum())} non-finite value(s) (NaN or inf) "
            f"of {signal.shape[1]}; a reference needs every sample (a WFDB record's short gaps are interpolated "
            "when it is given by path)"
        )
    window = signal.T.astype(np.float64)  # (L, 12), as the prepare stage's checks take it
    try:
        check_flat_leads(window, fs, cfg.max_flat_s)
        check_amplitude(window, cfg)
    except SkipRecord as exc:
        raise ReferenceECGError(f"{name}: {exc}") from exc


def _from_record(path: str | os.PathLike[str], cfg: PreprocessConfig) -> np.ndarray:
    """``(12, out_len)`` float32 mV of a WFDB record, prepared as :func:`.preprocess.process_ref` prepares one."""
    record_path = os.fspath(path)
    for ext in (".hea", ".dat"):
        if record_path.endswith(ext):
            record_path = record_path[: -len(ext)]
    record = read_record(record_path, expected_fs=cfg.expected_fs, verify_checksums=cfg.verify_checksums)
    try:
        window = preprocess_signal(record, cfg)
    except SkipRecord as exc:
        raise ReferenceECGError(f"{record_path}.hea: {exc} (check {exc.kind!r} of the prepare stage)") from exc
    signal = resample_window(window, cfg.out_len)
    if not np.isfinite(signal).all():
        raise ReferenceECGError(f"{record_path}.hea: non-finite values after resampling to {cfg.out_len} samples")
    return signal


def _config(fs: float, length: int, preprocess: PreprocessConfig | None) -> PreprocessConfig:
    """``preprocess``, or the defaults for ``length`` samples at ``fs`` Hz; ValueError when they disagree."""
    if not (fs > 0 and int(length) == length and length > 0):
        raise ValueError(f"fs must be > 0 Hz and length a positive whole number of samples, got {fs!r}, {length!r}")
    if preprocess is None:
        return PreprocessConfig(out_len=int(length), window_s=round(length / fs, 9))
    if preprocess.out_len != length or abs(preprocess.out_fs - fs) > 1e-6 * fs:
        raise ValueError(
            f"preprocess makes {preprocess.out_len} samples at {preprocess.out_fs:g} Hz "
            f"({preprocess.window_s:g} s), the model reads {length} samples at {fs:g} Hz"
        )
    return preprocess


def reference_from_run(run_dir: str | os.PathLike[str], record_id) -> np.ndarray:
    """The ``(12, L)`` float32 mV signal a prepared run stores for ``record_id`` (its ``data/manifest.csv`` id,
    compared as text; the row's ``shard`` and ``row`` locate it in ``data/signals/``). A copy, not a memory map.

    Raises:
        ReferenceNotFoundError (a KeyError): the manifest has no such id, or the record was skipped when the run
            was prepared (no stored signal; the message gives the skip reason). The message names id and run.
        FileNotFoundError: ``run_dir`` holds no prepared data.
    """
    store = SignalStore(run_dir)
    manifest = store.manifest
    rows = manifest[manifest["record_id"] == str(record_id)]
    if rows.empty:
        some = ", ".join(repr(r) for r in manifest["record_id"].head(3))
        raise ReferenceNotFoundError(
            f"record {str(record_id)!r} is not in run {store.run_dir} (its data/manifest.csv has "
            f"{len(manifest)} record ids, e.g. {some})"
        )
    row = rows.iloc[0]
    if row["status"] != "ok":
        raise ReferenceNotFoundError(
            f"record {str(record_id)!r} of run {store.run_dir} was skipped when the run was prepared "
            f"({row['reason']}): it has no stored signal"
        )
    return np.array(store.shard(int(row["shard"]))[int(row["row"])], dtype=np.float32)


def reference_names(source: Any, n: int) -> list[str]:
    """A name for each of the ``n`` ECGs :func:`load_reference_ecgs` read from ``source``: a record's path, or
    ``array[i]`` for the rows of an array (in a list: ``k:array[i]``, k its place in the list)."""

    def one(item: Any, prefix: str) -> list[str]:
        if isinstance(item, (str, os.PathLike)):
            return [str(item)]
        rows = 1 if np.ndim(item) == 2 else len(item)
        return [f"{prefix}array[{i}]" for i in range(rows)]

    if isinstance(source, (list, tuple)):
        names = [name for k, item in enumerate(source) for name in one(item, f"{k}:")]
    else:
        names = one(source, "")
    return names if len(names) == n else (names * n)[:n]
