"""Synthetic ECG datasets from a conditions file: ``diffusets generate --conditions FILE.csv --out DIR``.

The conditions file has one row per condition: ``report`` (statements joined with ``|``), ``age`` (years),
``sex`` (``M``/``F``), ``hr`` (bpm), and optionally ``n`` (ECGs for the row, default 1) and ``seed`` (the
row's first seed; its ECG ``j`` uses ``seed + j``; default ``--seed`` + the ECG's index in the dataset).

Output layout (``DIR``)::

    records/00000/ecg_0000000.hea/.dat   WFDB, one record per ECG, 1000 records a folder; the header comments
                                         carry report/age/sex/hr (readable by `prepare --source wfdb`), seed,
                                         sampler settings, model identity, sampling rate and resampling
    manifest.csv                         one row per ECG (writer.MANIFEST_COLUMNS); record_id/subject_id as
                                         `prepare --source wfdb` names the records, so it also serves as
                                         `--subject-id csv:DIR/manifest.csv`
    npy/shard_00000.npy                  float32 (b, 12, L) mV, canonical lead order, one shard per batch
    npy/index.csv                        record_id, shard, row (np.load(npy/shard_{shard:05d}.npy)[row])
    dataset.json                         conditions file hash, rate, sampler settings, model identity, counts
    .lock, .lock.json                    the folder's lock while a command writes (holder pid, start, command)
    .parts/batch_000000.csv              per-batch commit markers (resume; merged into manifest.csv)

Why it is shaped this way:

* **Every bad row before any ECG.** The whole file is checked in a streaming pass
  (:func:`~diffusets_core.generate.conditions.validate_conditions`: sex, age/HR within the ranges
  :func:`~diffusets_core.text.patient.encode_patient` accepts, non-empty report and statements, ``n`` and ``seed``
  integers, and every distinct prompt through the embedder, which also fills the embedding cache);
  :class:`~diffusets_core.generate.conditions.ConditionsError` lists each problem with its row, the file line the
  row starts on (a quoted report may span lines) and field, and nothing is written. Counts, seed and sampler
  settings are checked first as well.
* **Same ECG whatever the batch, rank or interruption.** ECG ``i`` (the file's rows expanded by ``n``, in
  order) always has the same seed and lands in global batch ``i // batch_size``; torchrun rank ``r`` of ``K``
  generates batches ``k % K == r`` (:mod:`~diffusets_core.generate.sharding`), so each batch is computed with the same contents under any number of
  processes (bitwise-equal signals on a fixed thread count).
* **Resume.** A batch is written to ``.tmp/``, its files moved into place, and only then its part file is
  committed atomically (:mod:`~diffusets_core.generate.writer`); a rerun skips batches with a part file and redoes the others (same names, same
  seeds), so nothing is duplicated or lost. A rerun with different settings (another conditions file content,
  rate, batch size, seed, sampler settings or model) is refused, naming each field with its recorded and new
  value; while a command writes, the folder is locked, and a second command fails at once naming the holder
  (:mod:`~diffusets_core.generate.outputs`).
* **Bounded memory.** The conditions file is read in chunks and one batch of signals is held at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..data.leads import CANONICAL_LEADS, reorder_leads
from ..data.preprocess import MODEL_FS
from ..diffusion.sampling import positive_int, resolve_sampling
from ..fileio import atomic_write_text
from .conditions import ConditionsSummary, iter_batches, validate_conditions
from .outputs import (
    RequestMismatchError,
    check_out_dir,
    foreign_outputs,
    format_differences,
    make_out_dir,
    output_lock,
    request_differences,
)
from .rates import output_rate, resample
from .sharding import barrier, batches_of_rank, first_error_everywhere, rank_and_world
from .writer import RECORDS_PER_FOLDER, TMP_DIR, merge_parts, part_file, write_dataset_batch

__all__ = ["DatasetConfig", "DATASET_FILE", "generate_dataset"]

DATASET_FILE = "dataset.json"  #: the settings that fill a dataset folder


def _settings(
    summary: ConditionsSummary,
    pipe: Any,
    fs: float,
    batch_size: int,
    formats: list[str],
    base_seed: int,
    sampling: dict,
) -> dict:
    return {
        "conditions": summary.path,
        "conditions_sha256": summary.sha256,
        "rows": summary.rows,
        "ecgs": summary.ecgs,
        "batch_size": batch_size,
        "batches": math.ceil(summary.ecgs / batch_size),
        "fs": fs,
        "resampling": resample(np.zeros((1, 12, 1024), np.float32), fs)[1],
        "formats": sorted(formats),
        "base_seed": base_seed,
        "sampling": sampling,
        "model": pipe.identity,
        "leads": list(CANONICAL_LEADS),
        "records_per_folder": RECORDS_PER_FOLDER,
        "package_version": __version__,
    }


@dataclass
class DatasetConfig:
    """What a generated dataset is made with (recorded in ``dataset.json``; a resumed folder must match it).

    ``fs``: output rate in Hz, one of :data:`~diffusets_core.generate.rates.OUTPUT_RATES`; ``batch_size``: ECGs per
    sampler call (and per ``.npy`` shard), a whole number >= 1; ``formats``: ``wfdb`` and/or ``npy``; ``seed``: base
    seed (>= 0) for rows without a ``seed`` value (ECG ``index`` gets ``seed + index``); ``sampler``,
    ``num_inference_steps``, ``guidance_scale``, ``guidance_on``: None takes the pipeline's validated setting;
    ``chunksize``: conditions rows read at a time."""

    fs: float = MODEL_FS
    batch_size: int = 32
    formats: Iterable[str] = ("wfdb", "npy")
    seed: int = 0
    sampler: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    guidance_on: str | None = None
    chunksize: int = 50_000


def generate_dataset(
    pipe: Any,
    conditions: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: DatasetConfig | None = None,
    *,
    progress: bool = True,
    command: str = "generate_dataset",
) -> dict:
    """Generate the dataset a conditions file asks for into ``out_dir`` (layout: module docstring).

    Under torchrun (process group initialised, see :func:`~diffusets_core.generate.sharding.init_ranks`) rank
    ``r`` of ``K`` generates global batches ``k % K == r``; rank 0 validates first, holds the folder's lock
    (:func:`~diffusets_core.generate.outputs.output_lock`) until the end, and after a barrier merges the manifest.

    Args:
        pipe: a loaded pipeline; its validated sampling settings apply to settings left at None.
        config: :class:`DatasetConfig` (default: its defaults); fixed for an output folder.
        command: recorded in the lock so a concurrent command is told what holds the folder.

    Returns: ``{"ecgs", "generated", "resumed", "out_dir", "manifest", "embedding_cache", ...}`` (on every rank).

    Raises:
        ConditionsError: bad rows (nothing written). ValueError: bad rate/format/batch size/seed/sampler settings
        (nothing written), or ``out_dir`` holds a dataset made with other settings
        (:class:`~diffusets_core.generate.outputs.RequestMismatchError`, naming each field with its recorded
        and new value). OutputDirError: ``out_dir`` is a file, under a file, or not writable.
        OutputBusyError: another process is writing into ``out_dir``.
    """
    out = Path(out_dir)
    c = config or DatasetConfig()
    fs, batch_size, seed, chunksize = c.fs, c.batch_size, c.seed, c.chunksize
    formats = [f.strip() for f in c.formats if f.strip()]
    unknown = set(formats) - {"wfdb", "npy"}
    if unknown or not formats:
        raise ValueError(f"formats: expected wfdb and/or npy, got {','.join(formats) or 'nothing'}")
    batch_size = positive_int("batch_size (--batch-size)", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    fs = output_rate(fs)
    sampling = resolve_sampling(pipe, c.sampler, c.num_inference_steps, c.guidance_scale, c.guidance_on)
    rank, world = rank_and_world()

    err: str | None = None
    first: Exception | None = None
    with contextlib.ExitStack() as held:
        if rank == 0:
            try:
                check_out_dir(out)  # before the (long) validation; nothing is written yet
                summary = validate_conditions(conditions, pipe, chunksize=chunksize)
                settings = _settings(summary, pipe, fs, batch_size, formats, seed, sampling)
                held.enter_context(output_lock(make_out_dir(out), command))
                _claim_or_resume(out, settings)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                first, err = exc, f"{type(exc).__name__}\0{exc}"
        err = first_error_everywhere(err)
        if err is not None:
            if first is not None:
                raise first  # rank 0: the original exception, with its type and problem list
            kind, msg = err.split("\0", 1)
            raise (FileNotFoundError if kind == "FileNotFoundError" else ValueError)(msg)
        return _generate(
            pipe, conditions, out, batch_size, seed, sampling, fs, formats, chunksize, progress, rank, world
        )


def _claim_or_resume(out: Path, settings: dict) -> None:
    """Record ``settings`` in a fresh folder, or check that the folder holds a dataset of the same settings.

    Raises RequestMismatchError naming every differing field (recorded vs new value), or when the folder holds
    generated files but no ``dataset.json``."""
    meta = out / DATASET_FILE
    if meta.is_file():
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{meta}: not valid JSON ({exc}); use another --out, or delete {out}") from None
        # the conditions file may move; its content (conditions_sha256) is what must not change
        diffs = request_differences(old, settings, ignore=("conditions",))
        if diffs:
            raise RequestMismatchError(
                f"{out}: holds a dataset made with other settings ({format_differences(diffs)}); nothing was "
                f"written. Resuming is only for the same request: use another --out, or delete {out}",
                diffs,
            )
        return
    other = foreign_outputs(out, DATASET_FILE)
    if other:
        raise RequestMismatchError(
            f"{out}: holds {other}, not a dataset of this request, so nothing was written and nothing can be "
            "resumed; use another --out, or delete that folder",
            [],
        )
    atomic_write_text(meta, json.dumps(settings, indent=2, default=str))


def _generate(
    pipe: Any,
    conditions: str | os.PathLike,
    out: Path,
    batch_size: int,
    seed: int,
    sampling: dict,
    fs: float,
    formats: list[str],
    chunksize: int,
    progress: bool,
    rank: int,
    world: int,
) -> dict:
    """The batches of this rank (the folder is validated, claimed and locked), then rank 0 merges the parts."""
    settings = json.loads((out / DATASET_FILE).read_text())
    n_batches, total = settings["batches"], settings["ecgs"]
    mine = batches_of_rank(n_batches, rank, world)
    done = {k for k in mine if part_file(out, k).is_file()}
    my_total = sum(min(batch_size, total - k * batch_size) for k in mine)
    resumed = sum(min(batch_size, total - k * batch_size) for k in done)
    todo = set(mine) - done
    generated = 0
    bar = tqdm(
        total=my_total,
        initial=resumed,
        unit="ECG",
        disable=not progress or rank != 0,
        desc=f"generating (rank 0 of {world})" if world > 1 else "generating",
    )
    try:
        for k, batch in iter_batches(conditions, batch_size, base_seed=seed, chunksize=chunksize):
            if k not in todo:
                continue
            res = pipe(
                batch["report"].tolist(),
                age=batch["age"].tolist(),
                sex=batch["sex"].tolist(),
                hr=batch["hr"].tolist(),
                seed=batch["seed"].tolist(),
                batch_size=batch_size,
                sampler=sampling["sampler"],
                num_inference_steps=sampling["num_inference_steps"],
                guidance_scale=sampling["guidance_scale"],
                guidance_on=sampling["guidance_on"],
            )
            # by name into canonical order (a model that declares another channel order, e.g. a released network's
            # native one, is written with canonical names in canonical order; an unknown lead raises before writing)
            declared = tuple(getattr(res, "leads", None) or CANONICAL_LEADS)
            sig, how = resample(reorder_leads(np.asarray(res.signals), declared, CANONICAL_LEADS, axis=-2), fs)
            batch = batch.assign(
                sampler=sampling["sampler"],
                steps=int(sampling["num_inference_steps"]),
                guidance_scale=float(sampling["guidance_scale"]),
                guidance_on=sampling["guidance_on"],
            )
            write_dataset_batch(k, batch, sig, res.model, fs, how, out, set(formats))
            generated += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
    barrier()
    if rank == 0:
        merge_parts(out, n_batches)
        shutil.rmtree(out / TMP_DIR, ignore_errors=True)
    barrier()
    cache = getattr(pipe, "cache_dir", None)
    return {
        "ecgs": total,
        "generated": generated,
        "resumed": resumed,
        "rank": rank,
        "world_size": world,
        "batches": n_batches,
        "fs": fs,
        "out_dir": str(out),
        "manifest": str(out / "manifest.csv"),
        "embedding_cache": str(cache) if cache is not None else None,
    }
