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
    .parts/batch_000000.csv              per-batch commit markers (resume; merged into manifest.csv)

Why it is shaped this way:

* **Every bad row before any ECG.** The whole file is checked in a streaming pass (sex, age/HR within the
  ranges :func:`~diffusets_core.text.patient.encode_patient` accepts, non-empty report and statements, ``n`` and
  ``seed`` integers, and every distinct prompt through the embedder, which also fills the embedding cache);
  :class:`ConditionsError` lists each problem with its row, line and field, and nothing is written.
* **Same ECG whatever the batch, rank or interruption.** ECG ``i`` (the file's rows expanded by ``n``, in
  order) always has the same seed and lands in global batch ``i // batch_size``; torchrun rank ``r`` of ``K``
  generates batches ``k % K == r``, so each batch is computed with the same contents under any number of
  processes (bitwise-equal signals on a fixed thread count).
* **Resume.** A batch is written to ``.tmp/``, its files moved into place, and only then its part file is
  committed atomically; a rerun skips batches with a part file and redoes the others (same names, same
  seeds), so nothing is duplicated or lost. A rerun with different settings is refused.
* **Bounded memory.** The conditions file is read in chunks and one batch of signals is held at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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
from ..data.leads import CANONICAL_LEADS
from ..data.preprocess import MODEL_FS
from ..data.wfdb_io import encode_comment_value, header_comments
from ..fileio import atomic_save_npy, atomic_write_text, atomic_writer
from ..text.cache import EmbeddingCache
from ..text.embed import embed_plans
from ..text.patient import AGE_RANGE, HR_RANGE
from ..text.prompts import ordered_prompt
from ..text.window import plan_prompts
from .export import write_wfdb

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
    (``row`` 1-based among the data rows, ``line`` the file line, the header being line 1)."""

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int, int, str, str]], total: int | None = None):
        self.path, self.problems = str(path), problems
        total = len(problems) if total is None else total
        shown = "\n".join(f"  row {r} (line {ln}), field '{f}': {m}" for r, ln, f, m in problems[:MAX_ERRORS_SHOWN])
        more = f"\n  ... and {total - MAX_ERRORS_SHOWN} more" if total > MAX_ERRORS_SHOWN else ""
        super().__init__(f"{self.path}: {total} bad row(s); nothing was generated\n{shown}{more}")


def _read_chunks(path: Path, chunksize: int) -> Iterator[pd.DataFrame]:
    """The file in chunks of raw strings, with ``row`` (1-based) and ``line`` columns; ValueError names a
    missing file or required column."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: conditions file not found")
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunksize, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path}: empty conditions file; expected a header with columns {', '.join(REQUIRED)}"
        ) from None
    start = 0
    for chunk in reader:
        if start == 0:
            missing = [c for c in REQUIRED if c not in chunk.columns]
            if missing:
                raise ValueError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)} "
                    f"and optionally {', '.join(OPTIONAL)} (got {', '.join(map(str, chunk.columns))})"
                )
        chunk = chunk.reset_index(drop=True)
        chunk["row"] = np.arange(start + 1, start + 1 + len(chunk))
        chunk["line"] = chunk["row"] + 1  # no multi-line fields expected; the header is line 1
        start += len(chunk)
        yield chunk


def _row_problems(rec: dict) -> tuple[list[tuple[str, str]], dict]:
    """Problems ``(field, message)`` of one raw row, and its parsed values."""
    out: list[tuple[str, str]] = []
    val: dict[str, Any] = {}
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
        for rec in chunk.to_dict("records"):
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
        for rec in chunk.to_dict("records"):
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
) -> dict:
    """Generate the dataset a conditions file asks for into ``out_dir`` (layout: module docstring).

    Under torchrun (process group initialised, see :func:`init_ranks`) rank ``r`` of ``K`` generates global
    batches ``k % K == r``; rank 0 validates first, and after a barrier merges the manifest.

    Args:
        pipe: a loaded pipeline; its validated sampling settings apply to arguments left at None.
        fs: output rate in Hz, one of :data:`OUTPUT_RATES`.
        batch_size: ECGs per sampler call (and per ``.npy`` shard); fixed for an output folder.
        formats: ``wfdb`` and/or ``npy``.
        seed: base seed for rows without a ``seed`` value (ECG ``index`` gets ``seed + index``).

    Returns: ``{"ecgs", "generated", "resumed", "out_dir", "manifest", ...}`` (on every rank).

    Raises:
        ConditionsError: bad rows (nothing written). ValueError: bad rate/format/batch size, or ``out_dir``
        holds a dataset made with other settings.
    """
    out = Path(out_dir)
    formats = [f.strip() for f in formats if f.strip()]
    unknown = set(formats) - {"wfdb", "npy"}
    if unknown or not formats:
        raise ValueError(f"formats: expected wfdb and/or npy, got {','.join(formats) or 'nothing'}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    fs = _rate_key(fs)
    group = _dist()
    rank, world = (group.get_rank(), group.get_world_size()) if group is not None else (0, 1)
    sampling = {**pipe.sampling}
    for key, v in (
        ("sampler", sampler),
        ("num_inference_steps", num_inference_steps),
        ("guidance_scale", guidance_scale),
        ("guidance_on", guidance_on),
    ):
        if v is not None:
            sampling[key] = v
    sampling = {k: sampling[k] for k in ("sampler", "num_inference_steps", "guidance_scale", "guidance_on")}

    err: str | None = None
    first: Exception | None = None
    if rank == 0:
        try:
            summary = validate_conditions(conditions, pipe, chunksize=chunksize)
            settings = _settings(summary, pipe, fs, batch_size, formats, seed, sampling)
            meta = out / "dataset.json"
            if meta.is_file():
                old = json.loads(meta.read_text())
                diff = sorted(k for k in settings if old.get(k) != settings[k] and k != "conditions")
                if diff:
                    raise ValueError(
                        f"{out}: holds a dataset made with other settings ({', '.join(diff)} differ); "
                        "use another --out, or delete it"
                    )
            else:
                atomic_write_text(meta, json.dumps(settings, indent=2, default=str))
        except (ValueError, FileNotFoundError) as exc:
            first, err = exc, f"{type(exc).__name__}\0{exc}"
    err = _first_error_everywhere(err)
    if err is not None:
        if first is not None:
            raise first  # rank 0: the original exception, with its type and problem list
        kind, msg = err.split("\0", 1)
        raise (FileNotFoundError if kind == "FileNotFoundError" else ValueError)(msg)
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
            sig, how = resample(res.signals, fs)
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
    }
