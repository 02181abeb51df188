"""``diffusets generate --report``: ECGs of one request (a conditions table: one row per ECG) written into one output
folder, batch by batch, resumable.

Layout (``DIR``)::

    ecg_NNNNNN.hea/.dat/.npy/.png   one record per ECG in the formats asked for (:func:`~.writer.export_batch`)
    conditions.csv                  one row per ECG, ``record`` naming its files
    request.json                    the request: conditions, seed, batch size, formats, sampler settings, model
    .lock, .lock.json               the folder's lock while a call writes (holder pid, start, command)
    .parts/batch_000000.csv         per-batch commit markers (resume; merged into conditions.csv)

The request is recorded in ``request.json`` and only the same request may resume the folder
(:mod:`~diffusets_core.generate.outputs`).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from .. import __version__
from ..diffusion.sampling import positive_int, resolve_sampling
from ..fileio import atomic_write_json
from .conditions import CONDITION_COLUMNS, check_condition_table
from .outputs import (
    RequestMismatchError,
    check_out_dir,
    foreign_outputs,
    format_differences,
    make_out_dir,
    output_lock,
    request_differences,
)
from .writer import TMP_DIR, PlotFn, commit_export_batch, merge_export_parts, part_file

__all__ = ["FORMATS", "REQUEST_FILE", "INDEX_FILE", "generate_to_disk"]

FORMATS = ("wfdb", "npy", "png")
REQUEST_FILE = "request.json"  #: the request that fills a generate_to_disk folder
INDEX_FILE = "conditions.csv"  #: one row per ECG written, with its record name
MAX_CONDITIONS_RECORDED = 100  #: rows of a multi-condition request kept in request.json (a hash covers all)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _request(
    pipe: Any, table: pd.DataFrame, seed: int, batch_size: int, formats: list[str], sampling: dict, options: dict
) -> dict:
    """What makes the ECGs of a ``generate_to_disk`` call: a rerun into the same folder resumes only when all of
    it is equal (:data:`REQUEST_FILE`)."""
    canon = table.astype({"report": str, "sex": str, "age": float, "hr": float})
    req: dict[str, Any] = {"kind": "diffusets.generate", "ecgs": len(canon)}
    if len(canon.drop_duplicates()) == 1:  # the CLI's `--report ... -n N`: one condition, N ECGs
        req["condition"] = canon.iloc[0].to_dict()
    else:  # shown field by field when they differ; the hash covers the rest
        req["conditions"] = {
            f"row {i}": r for i, r in enumerate(canon.head(MAX_CONDITIONS_RECORDED).to_dict("records"))
        }
    req["conditions_sha256"] = _sha256_text(canon.to_csv(index=False))
    req.update(
        {
            "seed": seed,
            "batch_size": batch_size,
            "formats": formats,
            "sampling": sampling,
            "options": options,
            "model": dict(getattr(pipe, "identity", None) or {}),
            "package_version": __version__,
        }
    )
    return json.loads(json.dumps(req, default=str))


def _claim_or_resume(out: Path, request: dict) -> None:
    """Record ``request`` in a fresh folder, or check that the folder was filled by the same request.

    Raises RequestMismatchError naming every differing field (old vs new value), or when the folder holds
    generated files with no record of the request that made them."""
    path = out / REQUEST_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}); use another --out, or delete {out}") from None
        diffs = request_differences(old, request)
        if any(d.startswith("condition") and not d.startswith("conditions_sha256") for d in diffs):
            diffs = [d for d in diffs if not d.startswith("conditions_sha256")]  # the fields say it better
        if diffs:
            raise RequestMismatchError(
                f"{out}: holds ECGs of another request ({format_differences(diffs)}); nothing was written. "
                f"Resuming is only for the same request: use another --out, or delete {out} to replace them",
                diffs,
            )
        return
    other = foreign_outputs(out, REQUEST_FILE)
    if other:
        raise RequestMismatchError(
            f"{out}: holds {other}, not ECGs of this request, so nothing was written and nothing can be resumed; "
            "use another --out, or delete that folder",
            [],
        )
    atomic_write_json(path, request)


def _checked_options(batch_size: Any, seed: Any, formats: Iterable[str], plot: PlotFn | None) -> tuple[int, int, list]:
    """``(batch_size, seed, formats)`` checked: a batch size >= 1, a seed >= 0, formats among :data:`FORMATS`
    (sorted, without repeats), ``png`` only with ``plot``. ValueError naming the bad argument otherwise."""
    batch_size = positive_int("batch_size (--batch-size)", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    seed = int(seed)
    formats = sorted({f.strip() for f in formats if f.strip()})
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats: expected one or more of {', '.join(FORMATS)}, got {','.join(formats) or 'nothing'}")
    if "png" in formats and plot is None:
        raise ValueError(
            "generate_to_disk: formats include 'png' but no plot= function was given "
            "(pass e.g. diffusets_core.viz.ecgplot.plot_12lead)"
        )
    return batch_size, seed, formats


def _write_batches(
    pipe: Any,
    conditions: pd.DataFrame,
    out: Path,
    *,
    batch_size: int,
    seed: int,
    formats: list[str],
    plot: PlotFn | None,
    sampling: dict,
    options: dict,
    progress: bool,
) -> tuple[int, int]:
    """Generate and commit every batch of ``conditions`` that has no part file in ``out`` (the folder is claimed
    and locked); batch ``k`` holds rows ``k * batch_size ..`` and its ECG ``i`` gets seed ``seed + i``.
    Returns ``(generated, skipped)`` ECG counts."""
    done = skipped = 0
    bar = tqdm(total=len(conditions), disable=not progress, unit="ecg")
    try:
        for k, start in enumerate(range(0, len(conditions), batch_size)):
            part = conditions.iloc[start : start + batch_size]
            if part_file(out, k).is_file():
                skipped += len(part)
                bar.update(len(part))
                continue
            res = pipe(
                part["report"].tolist(),
                age=part["age"].tolist(),
                sex=part["sex"].tolist(),
                hr=part["hr"].tolist(),
                seed=seed + start,
                batch_size=batch_size,
                **sampling,
                **options,
            )
            commit_export_batch(res, out, k, start, formats, plot)
            done += len(part)
            bar.update(len(part))
    finally:
        bar.close()
    return done, skipped


def generate_to_disk(
    pipe: Any,
    conditions: Any,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 32,
    formats: Iterable[str] = ("wfdb", "npy"),
    progress: bool = True,
    command: str = "generate_to_disk",
    **generate_kwargs: Any,
) -> dict:
    """Generate one ECG per row of ``conditions`` (columns report, age, sex, hr) into ``out_dir`` in batches,
    writing each batch before generating the next, so memory stays bounded by one batch.

    Layout: ``ecg_NNNNNN.{hea,dat,npy,png}`` (``formats``), ``conditions.csv`` (one row per ECG, ``record``
    naming its files), ``request.json`` (the request: conditions, seed, batch size, formats, sampler settings,
    model identity). A batch is written to ``.tmp/``, moved into place, then committed by ``.parts/batch_K.csv``.

    A rerun of the **same** request into the same folder resumes: committed batches are skipped, the others
    redone with the same seeds. Any other request is refused (nothing written) with the fields that differ;
    while a call writes, the folder is locked (:func:`~diffusets_core.generate.outputs.output_lock`) and a
    concurrent call fails at once naming the holder.

    Args:
        pipe: a pipeline (``__call__(reports, age=, sex=, hr=, seed=, batch_size=, sampler=, ...)``); its
            ``sampling``, ``identity``, ``conditions()`` and ``cache_dir`` are used when present.
        batch_size: ECGs per pipeline call, a whole number >= 1.
        formats: ``wfdb``, ``npy`` and/or ``png`` (``png`` needs ``plot=``, see :func:`~.writer.export_batch`).
        command: recorded in the lock so a concurrent caller is told what holds the folder.
        generate_kwargs: ``seed`` (int >= 0; ECG ``i`` gets ``seed + i``), ``plot``, the sampler settings
            (``sampler``, ``num_inference_steps``, ``guidance_scale``, ``guidance_on``; None = the pipeline's),
            and other pipeline options (part of the request).

    Returns: ``{"ecgs", "generated", "skipped_existing", "out_dir", "conditions", "request", "embedding_cache"}``.

    Raises:
        ValueError: bad counts, formats, settings or conditions, before anything is written.
        OutputDirError: ``out_dir`` is a file, under a file, or not writable (the message names the path).
        RequestMismatchError: the folder holds ECGs of another request. OutputBusyError: another process holds it.
    """
    plot = generate_kwargs.pop("plot", None)
    seed = generate_kwargs.pop("seed", 0)
    batch_size, seed, formats = _checked_options(batch_size, seed, formats, plot)
    sampling = resolve_sampling(
        pipe,
        generate_kwargs.pop("sampler", None),
        generate_kwargs.pop("num_inference_steps", None),
        generate_kwargs.pop("guidance_scale", None),
        generate_kwargs.pop("guidance_on", None),
    )
    conditions = check_condition_table(pipe, conditions)
    request = _request(
        pipe, conditions[list(CONDITION_COLUMNS)], seed, batch_size, formats, sampling, dict(generate_kwargs)
    )
    out = make_out_dir(check_out_dir(out_dir))
    with output_lock(out, command):
        _claim_or_resume(out, request)
        done, skipped = _write_batches(
            pipe,
            conditions,
            out,
            batch_size=batch_size,
            seed=seed,
            formats=formats,
            plot=plot,
            sampling=sampling,
            options=generate_kwargs,
            progress=progress,
        )
        merge_export_parts(out, math.ceil(len(conditions) / batch_size), out / INDEX_FILE)
        shutil.rmtree(out / TMP_DIR, ignore_errors=True)
    cache = getattr(pipe, "cache_dir", None)
    return {
        "ecgs": len(conditions),
        "generated": done,
        "skipped_existing": skipped,
        "out_dir": str(out),
        "conditions": str(out / INDEX_FILE),
        "request": str(out / REQUEST_FILE),
        "embedding_cache": str(cache) if cache is not None else None,
    }
