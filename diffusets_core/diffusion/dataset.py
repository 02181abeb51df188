"""Synthetic ECG datasets from a conditions file: ``diffusets generate --conditions FILE.csv --out DIR``.

The conditions file has one row per condition: ``report`` (statements joined with ``|``), ``age`` (years),
``sex`` (``M``/``F``), ``hr`` (bpm), and optionally ``n`` (ECGs for the row, default 1) and ``seed`` (the
row's first seed; its ECG ``j`` uses ``seed + j``; default ``--seed`` + the ECG's index in the dataset).

Output layout (``DIR``)::

    records/00000/ecg_0000000.hea/.dat   WFDB, one record per ECG, 1000 records a folder; the header comments
                                         carry report/age/sex/hr (readable by `prepare --source wfdb`), seed,
                                         sampler settings, model identity, sampling rate and resampling
    manifest.csv                         one row per ECG (MANIFEST_COLUMNS); record_id/subject_id as
                                         `prepare --source wfdb` names the records, so it also serves as
                                         `--subject-id csv:DIR/manifest.csv`
    npy/shard_00000.npy                  float32 (b, 12, L) mV, canonical lead order, one shard per batch
    npy/index.csv                        record_id, shard, row (np.load(npy/shard_{shard:05d}.npy)[row])
    dataset.json                         conditions file hash, rate, sampler settings, model identity, counts
    .lock, .lock.json                    the folder's lock while a command writes (holder pid, start, command)
    .parts/batch_000000.csv              per-batch commit markers (resume; merged into manifest.csv)

Why it is shaped this way:

* **Every bad row before any ECG.** The whole file is checked in a streaming pass (sex, age/HR within the
  ranges :func:`~diffusets_core.text.patient.encode_patient` accepts, non-empty report and statements, ``n`` and
  ``seed`` integers, and every distinct prompt through the embedder, which also fills the embedding cache);
  :class:`ConditionsError` lists each problem with its row, the file line the row starts on (a quoted report may
  span lines) and field, and nothing is written. Counts, seed and sampler settings are checked first as well.
* **Same ECG whatever the batch, rank or interruption.** ECG ``i`` (the file's rows expanded by ``n``, in
  order) always has the same seed and lands in global batch ``i // batch_size``; torchrun rank ``r`` of ``K``
  generates batches ``k % K == r``, so each batch is computed with the same contents under any number of
  processes (bitwise-equal signals on a fixed thread count).
* **Resume.** A batch is written to ``.tmp/``, its files moved into place, and only then its part file is
  committed atomically; a rerun skips batches with a part file and redoes the others (same names, same
  seeds), so nothing is duplicated or lost. A rerun with different settings (another conditions file content,
  rate, batch size, seed, sampler settings or model) is refused, naming each field with its recorded and new
  value; while a command writes, the folder is locked, and a second command fails at once naming the holder
  (:mod:`~diffusets_core.diffusion.outputs`).
* **Bounded memory.** The conditions file is read in chunks and one batch of signals is held at a time.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch.distributed as dist
from tqdm import tqdm

from .. import __version__
from ..data.leads import CANONICAL_LEADS, reorder_leads
from ..data.preprocess import MODEL_FS
from ..data.wfdb_io import encode_comment_value, header_comments
from ..fileio import atomic_save_npy, atomic_write_text, atomic_writer
from ..text.cache import EmbeddingCache
from ..text.embed import embed_plans
from ..text.patient import AGE_RANGE, HR_RANGE
from ..text.prompts import ordered_prompt
from ..text.window import plan_prompts
from .export import write_wfdb
from .outputs import (
    RequestMismatchError,
    check_out_dir,
    foreign_outputs,
    format_differences,
    make_out_dir,
    output_lock,
    positive_int,
    request_differences,
    resolve_sampling,
)

log = logging.getLogger(__name__)

__all__ = [
    "ConditionsError",
    "OUTPUT_RATES",
    "MANIFEST_COLUMNS",
    "validate_conditions",
    "iter_batches",
    "resample",
    "generate_dataset",
    "merge_parts",
    "RECORDS_PER_FOLDER",
]

#: Output sampling rates (Hz) -> ``scipy.signal.resample_poly`` (up, down) from the model's 102.4 Hz.
#: 100 Hz is PTB-XL's low-rate files; 500 Hz is PTB-XL's high-rate files and MIMIC-IV-ECG.
OUTPUT_RATES: dict[float, tuple[int, int] | None] = {MODEL_FS: None, 100.0: (125, 128), 500.0: (625, 128)}
REQUIRED = ("report", "age", "sex", "hr")
OPTIONAL = ("n", "seed")
MANIFEST_COLUMNS = [
    "record_id",
    "subject_id",
    "report",
    "age",
    "sex",
    "hr",
    "seed",
    "row",
    "index",
    "fs",
    "sampler",
    "steps",
    "guidance_scale",
    "guidance_on",
    "shard",
    "shard_row",
]
RECORDS_PER_FOLDER = 1000  # keeps directory listings short at millions of records
MAX_ERRORS_SHOWN = 20
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F"}


class ConditionsError(ValueError):
    """The conditions file has bad rows. ``problems`` holds ``(row, line, field, message)`` for each one
    (``row`` 1-based among the data rows, ``line`` the file line the row starts on, the header being line 1;
    a quoted field with a line break spans several lines)."""

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int, int, str, str]], total: int | None = None):
        self.path, self.problems = str(path), problems
        total = len(problems) if total is None else total
        shown = "\n".join(f"  row {r} (line {ln}), field '{f}': {m}" for r, ln, f, m in problems[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {total - MAX_ERRORS_SHOWN} more" if total > MAX_ERRORS_SHOWN else ""
        super().__init__(f"{self.path}: {total} bad row(s); nothing was generated\n{shown}{more}")


def _read_chunks(path: Path, chunksize: int) -> Iterator[list[dict[str, Any]]]:
    """The file's data rows in chunks of ``chunksize``: dicts of raw strings by column name, plus ``row``
    (1-based among the data rows) and ``line`` (the file line the row starts on, the header being line 1, so a
    quoted field spanning lines shifts the rows after it as an editor shows them). Blank lines are skipped; a row
    with more fields than the header carries a ``_fields`` message (one with fewer gets empty fields).

    Raises FileNotFoundError (no such file) or ValueError naming the file: empty, missing or repeated columns,
    not UTF-8 text, or a CSV syntax error (with its line)."""
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; --conditions takes a CSV file (columns report, age, sex, hr)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: conditions file not found")
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # utf-8-sig: a spreadsheet's BOM is not a column name
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the conditions file ({exc.strerror or exc})") from None
    # the csv module, not pandas: its line_num says where a row with a quoted line break starts and ends
    with fh:
        reader = csv.reader(fh, skipinitialspace=True)
        last = 0  # the line the previous record ended on
        try:
            header = None
            for rec in reader:
                last = reader.line_num
                if rec and any(f.strip() for f in rec):
                    header = [h.strip() for h in rec]
                    break
            if header is None:
                raise ValueError(f"{path}: empty conditions file; expected a header with columns {', '.join(REQUIRED)}")
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValueError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)} "
                    f"and optionally {', '.join(OPTIONAL)} (got {', '.join(header)})"
                )
            repeated = sorted({h for h in header if header.count(h) > 1 and h in REQUIRED + OPTIONAL})
            if repeated:
                raise ValueError(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header")
            chunk: list[dict[str, Any]] = []
            row = 0
            for rec in reader:
                line, last = last + 1, reader.line_num
                if not rec or (len(rec) == 1 and not rec[0].strip()):
                    continue  # a blank line
                row += 1
                d: dict[str, Any] = dict(zip(header, rec + [""] * (len(header) - len(rec))))
                d["row"], d["line"] = row, line
                if len(rec) > len(header):
                    d["_fields"] = (
                        f"{len(rec)} fields but the header has {len(header)} (a comma in an unquoted "
                        'report? put the report in double quotes: "a, b|c")'
                    )
                chunk.append(d)
                if len(chunk) == chunksize:
                    yield chunk
                    chunk = []
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text (line {last + 1}: {exc.reason}); save it as UTF-8") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
        if chunk:
            yield chunk


def _row_problems(rec: dict) -> tuple[list[tuple[str, str]], dict]:
    """Problems ``(field, message)`` of one raw row, and its parsed values."""
    out: list[tuple[str, str]] = []
    val: dict[str, Any] = {}
    if rec.get("_fields"):
        out.append(("columns", rec["_fields"]))
    report = str(rec["report"]).strip()
    statements = [s.strip() for s in report.split("|")]
    if not report:
        out.append(("report", "empty report; expected statements joined with '|'"))
    elif any(not s for s in statements):
        out.append(("report", f"empty statement in {report!r} (two '|' in a row, or one at an end)"))
    val["report"] = "|".join(statements)
    sex = _SEX.get(str(rec["sex"]).strip().lower())
    if sex is None:
        out.append(("sex", f"expected M or F, got {rec['sex']!r}"))
    val["sex"] = sex
    for name, (lo, hi), unit in (("age", AGE_RANGE, "years"), ("hr", HR_RANGE, "bpm")):
        try:
            x = float(str(rec[name]).strip())
        except ValueError:
            out.append((name, f"expected a number in {unit}, got {rec[name]!r}"))
            continue
        if not (math.isfinite(x) and lo <= x <= hi):
            out.append(
                (name, f"expected {lo:g}-{hi:g} {unit} (the range the model's conditioning accepts), got {rec[name]!r}")
            )
        val[name] = x
    for name, default, lo in (("n", "1", 1), ("seed", "", 0)):
        raw = str(rec.get(name, "")).strip() or default
        if raw == "":
            val[name] = None
            continue
        try:
            f = float(raw)
            if f != int(f):
                raise ValueError
            val[name] = int(f)
        except (ValueError, OverflowError):
            out.append((name, f"expected a whole number, got {rec[name]!r}"))
            continue
        if val[name] < lo or val[name] >= 2**62:
            out.append((name, f"expected a whole number >= {lo}, got {rec[name]!r}"))
    return out, val


def _embedder_problems(pipe: Any, prompts: dict[str, tuple[int, int, str]]) -> list[tuple[int, int, str, str]]:
    """Embed every distinct prompt (``prompt -> (row, line, report)`` of its first row) through the run's cache, as
    the pipeline will (so generation never meets an embedding error and never embeds twice); a report longer than
    the embedder's window is handled by the text layer's one rule (``plan_prompts``: split into chunks, or refused
    with its token count and the limit), and a refusal is a problem of the first row that uses it."""
    emb = pipe.embedder
    problems: list[tuple[int, int, str, str]] = []
    texts = list(prompts)
    refused: dict[int, Exception] = {}
    plans = plan_prompts([prompts[t][2] for t in texts], emb.window, emb.prompt_mode, refused=refused)
    for i, exc in refused.items():
        problems.append((prompts[texts[i]][0], prompts[texts[i]][1], "report", str(exc)))
    plans = [p for p in plans if p is not None]
    make_cache = getattr(pipe, "embedding_cache", None)  # the pipeline's (it knows a read-only run's fallback)
    if make_cache is not None:
        cache = make_cache()
    else:
        cache = EmbeddingCache(pipe.cache_dir, emb.identity) if pipe.cache_dir else None
    step = 256
    for start in range(0, len(plans), step):
        part = plans[start : start + step]
        try:
            embed_plans(part, emb, cache, progress=False)
        except Exception:
            for p in part:  # find which prompt(s) it refuses
                try:
                    embed_plans([p], emb, cache, progress=False)
                except Exception as exc:  # noqa: BLE001 - any refusal is reported against the row
                    r, ln, _ = prompts[p.prompt]
                    problems.append((r, ln, "report", f"the {emb.backend} embedder refused it: {exc}"))
    return problems


@dataclass
class ConditionsSummary:
    """What a valid conditions file asks for."""

    path: str
    rows: int
    ecgs: int
    distinct_reports: int
    sha256: str


def validate_conditions(path: str | os.PathLike, pipe: Any = None, *, chunksize: int = 50_000) -> ConditionsSummary:
    """Check every row of a conditions file before anything is generated.

    Args:
        path: the CSV (columns report, age, sex, hr; optional n, seed).
        pipe: a :class:`~diffusets_core.diffusion.pipeline.DiffuSETSPipeline`; when given, every distinct
            report is embedded (through the run's cache) as the check that the embedder takes it.
        chunksize: rows read at a time (memory is bounded by this and the distinct prompts).

    Raises:
        FileNotFoundError: no such file. ValueError: missing columns or empty file.
        ConditionsError: every bad row, with row number, file line and field.
    """
    path = Path(path)
    problems: list[tuple[int, int, str, str]] = []
    total_bad = rows = ecgs = 0
    prompts: dict[str, tuple[int, int, str]] = {}
    reports: set[str] = set()
    mode = getattr(getattr(pipe, "embedder", None), "prompt_mode", "paper")
    for chunk in _read_chunks(path, chunksize):
        for rec in chunk:
            rows += 1
            probs, val = _row_problems(rec)
            if not probs:
                ecgs += val["n"]
                if val["report"] not in reports:
                    reports.add(val["report"])
                    try:
                        key = ordered_prompt(val["report"], mode)
                        prompts.setdefault(key, (rec["row"], rec["line"], val["report"]))
                    except (TypeError, ValueError) as exc:
                        probs.append(("report", f"cannot make a prompt of it: {exc}"))
            total_bad += len(probs)
            problems.extend((rec["row"], rec["line"], f, m) for f, m in probs[: max(0, 200 - len(problems))])
    if rows == 0:
        raise ValueError(f"{path}: no rows; expected one row per condition ({', '.join(REQUIRED)})")
    if not problems and pipe is not None:
        problems = _embedder_problems(pipe, prompts)
        total_bad = len(problems)
    if problems:
        raise ConditionsError(path, sorted(problems), total_bad)
    return ConditionsSummary(str(path.resolve()), rows, ecgs, len(reports), _sha256(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_id(index: int) -> str:
    """Where ECG ``index`` lives, relative to the output folder, without extension."""
    return f"records/{index // RECORDS_PER_FOLDER:05d}/ecg_{index:07d}"


def iter_batches(
    path: str | os.PathLike, batch_size: int, *, base_seed: int = 0, chunksize: int = 50_000
) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(k, batch)`` for global batch ``k``: the rows of a *validated* conditions file expanded to one line per ECG
    (columns report, age, sex, hr, seed, row, index, record_id), ``batch_size`` ECGs each, in file order.
    ECG ``index`` of a row with ``seed`` s and ECGs j = 0..n-1 gets seed ``s + j``; without one,
    ``base_seed + index``."""
    buf: list[dict] = []
    k = index = 0
    for chunk in _read_chunks(Path(path), chunksize):
        for rec in chunk:
            _, val = _row_problems(rec)
            for j in range(val["n"]):
                seed = val["seed"] + j if val["seed"] is not None else base_seed + index
                buf.append(
                    {
                        "report": val["report"],
                        "age": val["age"],
                        "sex": val["sex"],
                        "hr": val["hr"],
                        "seed": seed,
                        "row": rec["row"],
                        "index": index,
                        "record_id": record_id(index),
                    }
                )
                index += 1
                if len(buf) == batch_size:
                    yield k, pd.DataFrame(buf)
                    buf, k = [], k + 1
    if buf:
        yield k, pd.DataFrame(buf)


def resample(signals: np.ndarray, fs_out: float) -> tuple[np.ndarray, str]:
    """``(B, 12, L)`` mV at 102.4 Hz -> the same at ``fs_out`` (one of :data:`OUTPUT_RATES`), and a sentence
    saying how (for the header). Uses ``scipy.signal.resample_poly`` (polyphase FIR, Kaiser window): the exact
    rational ratio, so 10 s of 1024 samples become 1000 (100 Hz) or 5000 (500 Hz). ValueError: another rate."""
    key = _rate_key(fs_out)
    ratio = OUTPUT_RATES[key]
    if ratio is None:
        return signals.astype(np.float32), "none (the model's native rate)"
    from scipy.signal import resample_poly  # scipy.signal loads in ~0.3 s; only resampled datasets need it

    up, down = ratio
    out = resample_poly(signals.astype(np.float64), up, down, axis=-1).astype(np.float32)
    return out, f"scipy.signal.resample_poly up={up} down={down} from {MODEL_FS:g} Hz"


def _rate_key(fs: float) -> float:
    for k in OUTPUT_RATES:
        if abs(float(fs) - k) < 1e-6:
            return k
    raise ValueError(f"output sampling rate {fs:g} Hz: expected one of {', '.join(f'{k:g}' for k in OUTPUT_RATES)}")


# ---- ranks (torchrun) without importing the training package ----------------------------------------------------
def _dist():
    return dist if dist.is_available() and dist.is_initialized() else None


def init_ranks(device: Any) -> tuple[int, int]:
    """``(rank, world)``: joins torchrun's process group (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if getattr(device, "type", str(device)) == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _barrier() -> None:
    group = _dist()
    if group is not None:
        group.barrier()


def _first_error_everywhere(err: str | None) -> str | None:
    """Share rank 0's error (or None) with every rank, so all stop together instead of hanging at a barrier."""
    group = _dist()
    if group is None:
        return err
    box = [err]
    group.broadcast_object_list(box, src=0)
    return box[0]


# ---- writing ---------------------------------------------------------------------------------------------------
def _header(row: dict, model: dict, fs: float, how: str) -> list[str]:
    # report/age/sex/hr through the readers' own encoder, so `prepare --source wfdb` reads them back
    lines = header_comments(row["report"], age=row["age"], sex=row["sex"], hr=row["hr"])
    lines += [
        f"seed: {row['seed']}",
        f"conditions_row: {row['row']}",
        f"sampler: {row['sampler']} steps: {row['steps']} guidance: {row['guidance_scale']} on {row['guidance_on']}",
        f"sampling_rate: {fs:g} Hz; resampling: {how}",
        "generated by diffusets_core (DiffuSETS), synthetic",
        "model: " + encode_comment_value(json.dumps(model, sort_keys=True, default=str)),
    ]
    return lines


def _write_batch(
    k: int, batch: pd.DataFrame, signals: np.ndarray, model: dict, fs: float, how: str, out: Path, formats: set[str]
) -> None:
    """Write batch ``k`` into ``out/.tmp``, move its files into place, then commit its part file (last, atomic)."""
    tmp = out / ".tmp" / f"batch_{k:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    table = batch.copy()
    table["subject_id"] = table["record_id"]
    table["fs"] = fs
    table["shard"], table["shard_row"] = (k, np.arange(len(table))) if "npy" in formats else (-1, -1)
    moves = []
    if "wfdb" in formats:
        for i, row in enumerate(table.to_dict("records")):
            name = Path(row["record_id"]).name
            write_wfdb(signals[i], fs, tmp, name, _header(row, model, fs, how))
            moves += [(tmp / f"{name}{ext}", out / f"{row['record_id']}{ext}") for ext in (".hea", ".dat")]
    if "npy" in formats:
        atomic_save_npy(tmp / f"shard_{k:05d}.npy", signals.astype(np.float32))
        moves.append((tmp / f"shard_{k:05d}.npy", out / "npy" / f"shard_{k:05d}.npy"))
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    atomic_write_text(out / ".parts" / f"batch_{k:06d}.csv", table[MANIFEST_COLUMNS].to_csv(index=False))
    shutil.rmtree(tmp, ignore_errors=True)


def merge_parts(out_dir: str | os.PathLike, n_batches: int) -> Path:
    """Concatenate the committed part files in batch order into ``manifest.csv`` and ``npy/index.csv``
    (streamed, atomic). RuntimeError names missing batches (an unfinished run: rerun the same command)."""
    out = Path(out_dir)
    parts = [out / ".parts" / f"batch_{k:06d}.csv" for k in range(n_batches)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise RuntimeError(
            f"{out}: {len(missing)} batch(es) not written yet ({', '.join(missing[:5])}...); "
            "rerun the same command to finish"
        )
    has_npy = False
    # the index streams to a scratch file and is committed only when the batches wrote .npy shards
    with tempfile.TemporaryFile("w+", newline="", dir=out) as index_rows:
        with atomic_writer(out / "manifest.csv") as tmp_manifest, open(tmp_manifest, "w", newline="") as fh:
            for k, p in enumerate(parts):
                part = pd.read_csv(p, dtype={"report": str, "sex": str}, keep_default_na=False)
                part.to_csv(fh, index=False, header=(k == 0))
                if (part["shard"] >= 0).all():
                    has_npy = True
                    part[["record_id", "shard", "shard_row"]].rename(columns={"shard_row": "row"}).to_csv(
                        index_rows, index=False, header=(k == 0)
                    )
        if has_npy:
            index_rows.seek(0)
            with atomic_writer(out / "npy" / "index.csv") as tmp_index, open(tmp_index, "w", newline="") as fi:
                shutil.copyfileobj(index_rows, fi)
    return out / "manifest.csv"


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


def generate_dataset(
    pipe: Any,
    conditions: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fs: float = MODEL_FS,
    batch_size: int = 32,
    formats: Iterable[str] = ("wfdb", "npy"),
    seed: int = 0,
    progress: bool = True,
    sampler: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    guidance_on: str | None = None,
    chunksize: int = 50_000,
    command: str = "generate_dataset",
) -> dict:
    """Generate the dataset a conditions file asks for into ``out_dir`` (layout: module docstring).

    Under torchrun (process group initialised, see :func:`init_ranks`) rank ``r`` of ``K`` generates global
    batches ``k % K == r``; rank 0 validates first, holds the folder's lock
    (:func:`~diffusets_core.diffusion.outputs.output_lock`) until the end, and after a barrier merges the manifest.

    Args:
        pipe: a loaded pipeline; its validated sampling settings apply to arguments left at None.
        fs: output rate in Hz, one of :data:`OUTPUT_RATES`.
        batch_size: ECGs per sampler call (and per ``.npy`` shard), a whole number >= 1; fixed for an output folder.
        formats: ``wfdb`` and/or ``npy``.
        seed: base seed (>= 0) for rows without a ``seed`` value (ECG ``index`` gets ``seed + index``).
        command: recorded in the lock so a concurrent command is told what holds the folder.

    Returns: ``{"ecgs", "generated", "resumed", "out_dir", "manifest", "embedding_cache", ...}`` (on every rank).

    Raises:
        ConditionsError: bad rows (nothing written). ValueError: bad rate/format/batch size/seed/sampler settings
        (nothing written), or ``out_dir`` holds a dataset made with other settings
        (:class:`~diffusets_core.diffusion.outputs.RequestMismatchError`, naming each field with its recorded
        and new value). OutputDirError: ``out_dir`` is a file, under a file, or not writable.
        OutputBusyError: another process is writing into ``out_dir``.
    """
    out = Path(out_dir)
    formats = [f.strip() for f in formats if f.strip()]
    unknown = set(formats) - {"wfdb", "npy"}
    if unknown or not formats:
        raise ValueError(f"formats: expected wfdb and/or npy, got {','.join(formats) or 'nothing'}")
    batch_size = positive_int("batch_size (--batch-size)", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    fs = _rate_key(fs)
    sampling = resolve_sampling(pipe, sampler, num_inference_steps, guidance_scale, guidance_on)
    group = _dist()
    rank, world = (group.get_rank(), group.get_world_size()) if group is not None else (0, 1)

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
        err = _first_error_everywhere(err)
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
    meta = out / "dataset.json"
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
    other = foreign_outputs(out, "dataset.json")
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
    settings = json.loads((out / "dataset.json").read_text())
    n_batches, total = settings["batches"], settings["ecgs"]
    mine = [k for k in range(n_batches) if k % world == rank]
    done = {k for k in mine if (out / ".parts" / f"batch_{k:06d}.csv").is_file()}
    my_total = sum(min(batch_size, total - k * batch_size) for k in mine)
    resumed = sum(min(batch_size, total - k * batch_size) for k in done)
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
            if k % world != rank or k in done:
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
            _write_batch(k, batch, sig, res.model, fs, how, out, set(formats))
            generated += len(batch)
            bar.update(len(batch))
    finally:
        bar.close()
    _barrier()
    if rank == 0:
        merge_parts(out, n_batches)
        shutil.rmtree(out / ".tmp", ignore_errors=True)
    _barrier()
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
