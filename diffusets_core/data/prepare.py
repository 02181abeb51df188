"""``prepare_dataset``: source records -> ``run/data/`` (manifest + float32 shards).

How it works:

1. The reader for ``source`` lists every record as a :class:`RecordRef` in a fixed order
   (a wrong ``data_dir`` fails here with a :class:`DatasetLayoutError` naming the path
   and the layout expected). ``n`` keeps the first ``n``.
2. The list is cut into shards of ``shard_size`` records. Worker processes read and
   preprocess records in small batches (:func:`.preprocess.process_ref`); the common
   path is read + FFT resample, R-peak detection runs only when the machine RR interval
   is implausible.
3. Each finished shard is *committed*: its ok signals as ``signals/shard_XXXXX.npy``, then
   its manifest rows as ``parts/part_XXXXX.csv``, both written atomically. An interrupted
   run restarts, keeps every committed shard whose fingerprint (inputs, config, seed)
   matches, and redoes the rest. Records are processed independently, so the final
   files are byte-identical whatever the interruption or number of workers.
4. Subject-level splits are assigned over all ok records, ``manifest.csv`` and
   ``prepare.json`` are written, and the parts are removed.

Nothing is dropped silently: every record gets a manifest row; skipped rows carry a
reason ``"<kind>: <message>"``, and a summary of the kinds is logged and returned. The
``notes`` column says what was done to a kept record that the user should know (a lead taken
from a duplicated or inverted channel, PTB-XL's age code).

Options the user names (CLI ``prepare`` flags, profile ``data.*`` keys):

* ``subject_id`` - where the patient id comes from (:mod:`.subjects`); before any record is
  read, subject ids that cannot give a subject-level split are an error (:class:`.SplitError`),
  and so are, at the end, no usable record at all and an empty validation/test split; the error names
  the most common skip reasons (:class:`.NoUsableRecordsError`, :class:`.SplitError`).
* ``code_map`` - CSV ``code,text`` turning diagnosis codes in WFDB headers into statements
  (:func:`.folder.load_code_map`).
* ``header_fields`` - the WFDB header keys holding age, sex or the report when the header conventions the
  folder reader knows (:data:`.headers.HEADER_CONVENTIONS`) do not find them (``["age=KEY", "report=KEY"]``).
* ``exclude`` - a file of record ids (one a line, ``#`` comments): each listed record gets a
  ``skipped`` row with reason ``"excluded: excluded by <file>"``; ids are matched against the
  manifest's ``record_id`` or ``source_path``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import __version__
from ..fileio import TMP_PREFIX, atomic_save_npy, atomic_write_text
from ..layout import MANIFEST_FILE, PREPARE_FILE, SIGNALS_DIR
from ..layout import data_dir as _data_dir
from .cohort.labels import read_cohort
from .folder import read_folder
from .headers import parse_header_field_map
from .leads import CANONICAL_LEADS
from .mimic import read_mimic
from .preprocess import PreprocessConfig, ProcessedRecord, heart_rate_from_rr, process_ref
from .ptbxl import read_ptbxl
from .records import RecordRef
from .splits import assign_splits
from .store import MANIFEST_COLUMNS, read_manifest, shard_path
from .subjects import SubjectRule, apply_subject_rule, check_splits, check_subjects, check_usable

__all__ = ["prepare_dataset", "PrepareResult", "SOURCES", "list_records", "load_exclusions", "apply_exclusions"]

log = logging.getLogger(__name__)

SOURCES: dict[str, Callable[[Path], list[RecordRef]]] = {
    "cohort": read_cohort,
    "mimic": lambda root: read_mimic(root, source="mimic"),
    "ptbxl": read_ptbxl,
    "wfdb": lambda root: read_folder(root, source="wfdb"),
}
_PART_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c != "split")
_BATCH = 25  # records per worker task: large enough to amortise IPC, small enough to balance


@dataclass
class PrepareResult:
    """Summary of one ``prepare_dataset`` call."""

    run_dir: Path
    n_total: int
    n_ok: int
    n_skipped: int
    reasons: pd.DataFrame  # columns: kind, count, example
    splits: dict[str, int]
    seconds: float
    records_per_s: float  # records processed in this call (resumed shards excluded) per second
    n_processed: int = 0
    resumed_shards: int = 0
    hr_sources: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [
            f"prepared {self.n_total} records into {self.run_dir}/data: {self.n_ok} ok, {self.n_skipped} skipped "
            f"({self.seconds:.1f} s, {self.records_per_s:.0f} records/s, {self.resumed_shards} shard(s) resumed)",
            f"splits: {self.splits}   hr_source: {self.hr_sources}",
        ]
        if len(self.reasons):
            lines.append("skip reasons:\n" + self.reasons.to_string(index=False))
        return "\n".join(lines)


def load_exclusions(path: str | os.PathLike[str]) -> list[str]:
    """Record ids from an exclusion file: one a line; blank lines and ``#`` comments ignored.

    Raises:
        FileNotFoundError: naming the absolute path tried.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: exclusion list not found (expected a text file of record ids, one a line)")
    ids = []
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


def apply_exclusions(refs: Sequence[RecordRef], path: str | os.PathLike[str], root: Path) -> dict:
    """Mark every ref listed in the exclusion file ``path`` as skipped (in place).

    A listed id matches a ref's ``record_id`` or its path relative to ``root`` (no extension).
    Returns a summary for ``prepare.json``: file, listed, matched, unmatched (first 20).
    """
    p = Path(path).expanduser().resolve()
    listed = load_exclusions(p)
    wanted = set(listed)
    matched: set[str] = set()
    for ref in refs:
        keys = {ref.record_id, _rel_path(ref.path, root)} & wanted
        if keys:
            matched |= keys
            ref.skip_reason = f"excluded by {p}"
            ref.extra["skip_kind"] = "excluded"
    unmatched = [i for i in listed if i not in matched]
    if unmatched:
        log.warning(
            "%s: %d of %d listed record id(s) are not in the data (e.g. %s)",
            p,
            len(unmatched),
            len(listed),
            ", ".join(unmatched[:3]),
        )
    return {"file": str(p), "listed": len(listed), "matched": len(matched), "unmatched": unmatched[:20]}


def list_records(
    source: str,
    data_dir: str | os.PathLike[str],
    n: int | None = None,
    *,
    subject_id: str | None = None,
    code_map: str | os.PathLike[str] | None = None,
    exclude: str | os.PathLike[str] | None = None,
    header_fields: Sequence[str] | dict | None = None,
) -> list[RecordRef]:
    """The RecordRefs ``prepare_dataset`` would use, in its order (options as there)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    rule = SubjectRule.parse(subject_id)  # a malformed rule fails before the data are listed
    field_map = parse_header_field_map(header_fields)  # so does a malformed field map
    root = Path(data_dir)
    if field_map and source != "wfdb":
        raise ValueError(f"a header field map (--header-field) applies to source 'wfdb' (WFDB headers), not {source!r}")
    if code_map is not None or field_map:
        if source != "wfdb":
            raise ValueError(
                f"a code mapping (--code-map) applies to source 'wfdb' (WFDB header diagnosis codes), not {source!r}"
            )
        refs = read_folder(root, source="wfdb", code_map=code_map, header_fields=field_map)
    else:
        refs = SOURCES[source](root)
    if n is not None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        refs = refs[:n]
    refs = apply_subject_rule(refs, rule, root, source=source)
    if exclude is not None:
        apply_exclusions(refs, exclude, root)
    return refs


# --------------------------------------------------------------------------- workers


def _process_batch(refs: Sequence[RecordRef], config: PreprocessConfig) -> list[ProcessedRecord]:
    return [process_ref(ref, config) for ref in refs]


def _mp_context():
    """Process start method for the workers.

    ``fork`` on Linux, as PyTorch's DataLoader does: workers start instantly and inherit
    the imported modules (``spawn``/``forkserver`` re-import the main script - with torch
    that costs seconds per run). Workers only use numpy/scipy/wfdb/neurokit2, never torch.
    Elsewhere the platform default. ``DIFFUSETS_MP_START`` overrides.
    """
    method = os.environ.get("DIFFUSETS_MP_START") or ("fork" if sys.platform.startswith("linux") else None)
    return mp.get_context(method)


# --------------------------------------------------------------------------- helpers


def _fmt_float(x: float | None, spec: str) -> str:
    return "" if x is None or not np.isfinite(x) else format(float(x), spec)


def _rel_path(path: str, root: Path) -> str:
    """Record path relative to the dataset root (keeps manifests relocatable)."""
    if not path:
        return ""
    p = Path(path)
    for cand in (p, p.resolve()):
        try:
            return cand.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.as_posix()


def _manifest_row(ref: RecordRef, res: ProcessedRecord, root: Path, shard: int | None, row: int | None) -> list[str]:
    age = res.age if res.status == "ok" else ref.age
    sex = res.sex if res.status == "ok" else ref.sex
    values = {
        "record_id": ref.record_id,
        "subject_id": ref.subject_id,
        "report": ref.report,
        "findings": ref.findings,
        "age": _fmt_float(age, "g"),
        "sex": sex or "",
        "hr": _fmt_float(res.hr, ".2f"),
        "hr_source": res.hr_source,
        "source": ref.source,
        "source_path": _rel_path(ref.path, root),
        "status": res.status,
        "reason": res.reason,
        "shard": "" if shard is None else str(shard),
        "row": "" if row is None else str(row),
        "notes": "; ".join(res.manifest_notes),
    }
    return [values[c] for c in _PART_COLUMNS]


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _read_part(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != _PART_COLUMNS:
        raise ValueError(f"{path}: not a manifest part")
    return rows[1:]


def _inputs_digest(refs: Sequence[RecordRef]) -> str:
    h = hashlib.sha256()
    for r in refs:
        h.update(
            repr(
                (r.record_id, r.subject_id, r.path, r.report, r.age, r.sex, r.rr_interval_ms, r.source, r.skip_reason)
                + ((r.findings,) if r.findings else ())
            ).encode()
        )
    return h.hexdigest()


def _package_version() -> str:
    return str(__version__)


def _dep_versions() -> dict[str, str]:
    out = {}
    for pkg in ("numpy", "scipy", "wfdb", "neurokit2", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "absent"
    return out


def _clean_tmp(*dirs: Path) -> None:
    """Remove temp files left by an interrupted atomic write."""
    for d in dirs:
        if d.is_dir():
            for p in d.glob(TMP_PREFIX + "*"):
                p.unlink(missing_ok=True)


def _reasons_table(kinds: Counter, examples: dict[str, str]) -> pd.DataFrame:
    rows = [(k, c, examples.get(k, "")) for k, c in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))]
    return pd.DataFrame(rows, columns=["kind", "count", "example"])


# --------------------------------------------------------------------------- main entry


def prepare_dataset(
    source: str,
    data_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    n: int | None = None,
    seed: int = 0,
    workers: int | None = 2,
    preprocess: PreprocessConfig | dict | None = None,
    progress: bool = True,
    shard_size: int = 1000,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    subject_id: str | None = None,
    code_map: str | os.PathLike[str] | None = None,
    exclude: str | os.PathLike[str] | None = None,
    header_fields: Sequence[str] | dict | None = None,
) -> PrepareResult:
    """Prepare ``source`` records under ``data_dir`` into ``run_dir/data`` (see module doc).

    Args:
        source: ``"cohort"``, ``"mimic"``, ``"ptbxl"`` or ``"wfdb"`` (any WFDB folder).
        data_dir: the dataset root in that source's layout.
        run_dir: the run directory; output goes to ``run_dir/data``.
        n: keep only the first ``n`` records (reader order: MIMIC by subject/study,
            PTB-XL by ecg_id, folders by relative path).
        seed: seed of the subject-level split.
        workers: worker processes; ``0``/``1`` processes in this process, None = all CPUs.
        preprocess: a PreprocessConfig (or its dict); default PreprocessConfig().
        progress: show a tqdm progress bar.
        shard_size: records (ok or skipped) per shard; the unit of resumption.
        fractions: train/val/test fractions.
        subject_id: where subject ids come from: ``auto`` (default), ``record``, ``header:KEY``,
            ``path:REGEX`` or ``csv:FILE`` (see :mod:`.subjects`).
        code_map: CSV ``code,text`` for diagnosis codes in WFDB headers (source ``wfdb``).
        exclude: file of record ids to skip (reason ``"excluded: excluded by <file>"``).
        header_fields: WFDB header keys for age/sex/report (source ``wfdb``): ``["age=KEY", "sex=KEY",
            "report=KEY"]`` or a mapping (:func:`.headers.parse_header_field_map`).

    Relative paths (``data_dir``, ``code_map``, ``exclude``, a ``csv:`` subject table) are
    resolved against the current working directory; errors name the absolute path tried.

    Raises:
        DatasetLayoutError: ``data_dir`` does not look like ``source`` (the message names the
            absolute path).
        SplitError: the subject ids cannot give a subject-level split (before any record is
            read), or a validation/test split ends up empty with 3 or more usable records (the
            message names the most common skip reasons).
        NoUsableRecordsError: no record is usable (a SplitError; the message names the most common
            skip reasons, with counts and an example). Both are raised before ``manifest.csv`` is
            written; the per-record reasons are in ``data/parts/``.
        FileNotFoundError / ValueError: a missing or malformed option file, a malformed rule.
    """
    t0 = time.perf_counter()
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if isinstance(preprocess, dict):
        preprocess = PreprocessConfig.from_dict(preprocess)
    config = preprocess or PreprocessConfig()
    data_root = Path(data_dir).expanduser().resolve()
    code_map = None if code_map is None else Path(code_map).expanduser().resolve()
    exclude = None if exclude is None else Path(exclude).expanduser().resolve()
    field_map = parse_header_field_map(header_fields)
    refs = list_records(
        source, data_root, n, subject_id=subject_id, code_map=code_map, exclude=exclude, header_fields=field_map
    )
    check_subjects(refs)

    out = _data_dir(run_dir)
    sig_dir = out / SIGNALS_DIR
    parts_dir = out / "parts"
    sig_dir.mkdir(parents=True, exist_ok=True)
    _clean_tmp(out, sig_dir, parts_dir)

    fingerprint = {
        "source": source,
        "data_dir": str(data_root),
        "n": n,
        "seed": seed,
        "fractions": list(fractions),
        "shard_size": shard_size,
        "preprocess": config.to_dict(),
        "package_version": _package_version(),
        "n_records": len(refs),
        "inputs_sha256": _inputs_digest(refs),
        "subject_id": SubjectRule.parse(subject_id).describe(),
        "code_map": None if code_map is None else str(code_map),
        "code_map_sha256": None if code_map is None else hashlib.sha256(code_map.read_bytes()).hexdigest(),
        "exclude": None if exclude is None else str(exclude),
    }
    if field_map:  # only when given: fingerprints of runs prepared without one stay as they were
        fingerprint["header_fields"] = field_map
    fp_text = json.dumps(fingerprint, indent=2, sort_keys=True)
    fingerprint = json.loads(fp_text)  # JSON-normalised (tuples -> lists) so it compares equal to a stored one
    n_shards = (len(refs) + shard_size - 1) // shard_size

    # A finished run with the same fingerprint: nothing to do (leftover parts are removed).
    prep_json = out / PREPARE_FILE
    if (out / MANIFEST_FILE).is_file() and prep_json.is_file():
        try:
            done = json.loads(prep_json.read_text()).get("fingerprint")
        except json.JSONDecodeError:
            done = None
        if done == fingerprint:
            shutil.rmtree(parts_dir, ignore_errors=True)
            log.info("%s already prepared with the same inputs and config", out)
            return _result_from_manifest(Path(run_dir), t0, n_shards)

    # Starting or resuming: the old final files are invalid until rewritten at the end.
    for stale in (out / MANIFEST_FILE, prep_json):
        stale.unlink(missing_ok=True)
    fp_path = parts_dir / "fingerprint.json"
    if parts_dir.is_dir() and (not fp_path.is_file() or fp_path.read_text() != fp_text):
        log.info("discarding partial results made with other inputs or config in %s", parts_dir)
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    if not fp_path.is_file():
        atomic_write_text(fp_path, fp_text)

    part_rows: dict[int, list[list[str]]] = {}
    for k in range(n_shards):
        part = parts_dir / f"part_{k:05d}.csv"
        if part.is_file() and shard_path(run_dir, k).is_file():
            try:
                part_rows[k] = _read_part(part)
            except (ValueError, csv.Error):
                part.unlink()
    # Shard files without a committed part are leftovers of an interrupted or other run.
    for p in sig_dir.glob("shard_*.npy"):
        try:
            k = int(p.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        if k not in part_rows:
            p.unlink()
    resumed = len(part_rows)
    pending = [k for k in range(n_shards) if k not in part_rows]
    if resumed:
        log.info("resuming: %d of %d shard(s) already committed", resumed, n_shards)

    n_processed = sum(len(refs[k * shard_size : (k + 1) * shard_size]) for k in pending)
    t_work = time.perf_counter()
    bar = None
    if progress:
        bar = tqdm(total=len(refs), initial=len(refs) - n_processed, desc=f"prepare {source}", unit="rec")

    def commit(k: int, results: list[ProcessedRecord]) -> None:
        chunk = refs[k * shard_size : (k + 1) * shard_size]
        ok = [r.signal for r in results if r.status == "ok"]
        arr = np.stack(ok) if ok else np.zeros((0, len(CANONICAL_LEADS), config.out_len), np.float32)
        rows, i = [], 0
        for ref, res in zip(chunk, results):
            if res.status == "ok":
                rows.append(_manifest_row(ref, res, data_root, k, i))
                i += 1
            else:
                rows.append(_manifest_row(ref, res, data_root, None, None))
        # Order matters: the part file is the commit marker, so the shard must exist first.
        atomic_save_npy(shard_path(run_dir, k), arr.astype(np.float32, copy=False))
        atomic_write_text(parts_dir / f"part_{k:05d}.csv", _csv_text(_PART_COLUMNS, rows))
        part_rows[k] = rows

    batches: list[tuple[int, list[RecordRef]]] = []
    for k in pending:
        chunk = refs[k * shard_size : (k + 1) * shard_size]
        batches.extend((k, chunk[i : i + _BATCH]) for i in range(0, len(chunk), _BATCH))
    n_batches_of = Counter(k for k, _ in batches)

    collected: dict[int, list[ProcessedRecord]] = {}

    def on_result(k: int, results: list[ProcessedRecord]) -> None:
        collected.setdefault(k, []).extend(results)
        n_batches_of[k] -= 1
        if bar is not None:
            bar.update(len(results))
        if n_batches_of[k] == 0:
            commit(k, collected.pop(k))

    if batches:
        # Import the heavy modules once here (not at the top: `import diffusets_core.data` stays light): forked
        # workers inherit them instead of each paying the import (about 1 s for scipy.signal, 1.3 s for
        # neurokit2) on its own.
        import scipy.signal  # noqa: F401
        import wfdb  # noqa: F401

        if any(
            heart_rate_from_rr(r.rr_interval_ms) is None and not r.skip_reason
            for k in pending
            for r in refs[k * shard_size : (k + 1) * shard_size]
        ):
            import neurokit2  # noqa: F401  (R-peak path will be needed)
    try:
        n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if n_workers <= 1 or len(batches) <= 1:
            for k, batch in batches:
                on_result(k, _process_batch(batch, config))
        else:
            # Batches are consumed in submission order (so shards commit in order) with a
            # bounded number in flight, so memory stays flat on 800k-record datasets.
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=_mp_context()) as pool:
                inflight: deque[tuple[int, Future]] = deque()
                try:
                    for k, batch in batches:
                        inflight.append((k, pool.submit(_process_batch, batch, config)))
                        if len(inflight) >= 4 * n_workers:
                            hk, fut = inflight.popleft()
                            on_result(hk, fut.result())
                    while inflight:
                        hk, fut = inflight.popleft()
                        on_result(hk, fut.result())
                except BaseException:
                    # Ctrl-C or a failure: drop queued work instead of finishing it; the
                    # committed shards are kept for the next run.
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    work_s = time.perf_counter() - t_work

    # ---- final manifest: all parts in order + subject-level split over ok rows
    rows = [r for k in range(n_shards) for r in part_rows[k]]
    cols = list(_PART_COLUMNS)
    i_status, i_subject = cols.index("status"), cols.index("subject_id")
    ok_subjects = {r[i_subject] for r in rows if r[i_status] == "ok"}
    split_of = assign_splits(ok_subjects, seed=seed, fractions=fractions)
    n_per_split = Counter(split_of[r[i_subject]] for r in rows if r[i_status] == "ok")
    # Raised before manifest.csv is written; the committed shards (and their reasons, in parts/) stay for a rerun.
    i_reason = cols.index("reason")
    skipped = [r[i_reason] for r in rows if r[i_status] != "ok"]
    check_usable(len(rows), skipped, where=parts_dir)
    check_splits(
        {s: n_per_split.get(s, 0) for s in ("train", "val", "test")}, fractions, len(ok_subjects), skipped=skipped
    )
    full_rows = []
    for r in rows:
        d = dict(zip(cols, r))
        d["split"] = split_of[d["subject_id"]] if d["status"] == "ok" else ""
        full_rows.append([d[c] for c in MANIFEST_COLUMNS])
    atomic_write_text(out / MANIFEST_FILE, _csv_text(MANIFEST_COLUMNS, full_rows))

    manifest = pd.DataFrame(full_rows, columns=list(MANIFEST_COLUMNS))
    kinds, examples = _summarise(manifest)
    ok = manifest[manifest["status"] == "ok"]
    info = {
        "source": source,
        "data_dir": str(data_root),
        "n": n,
        "seed": seed,
        "fractions": list(fractions),
        "shard_size": shard_size,
        "preprocess": config.to_dict(),
        "fs": config.out_fs,
        "leads": list(CANONICAL_LEADS),
        "package_version": _package_version(),
        "versions": _dep_versions(),
        "counts": {"total": len(manifest), "ok": len(ok), "skipped": len(manifest) - len(ok)},
        "splits": {s: int((ok["split"] == s).sum()) for s in ("train", "val", "test")},
        "hr_source": {k: int(v) for k, v in sorted(Counter(ok["hr_source"]).items())},
        "skip_reasons": dict(sorted(kinds.items())),
        "subjects": {
            "rule": SubjectRule.parse(subject_id).describe(),
            "n_ok": len(ok_subjects),
            "from": {
                k: int(v)
                for k, v in sorted(Counter(str(r.extra.get("subject_from", "dataset table")) for r in refs).items())
            },
        },
        "exclude": None if exclude is None else _exclusion_summary(refs, exclude),
        "fingerprint": fingerprint,
    }
    atomic_write_text(prep_json, json.dumps(info, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(parts_dir, ignore_errors=True)

    result = _make_result(Path(run_dir), manifest, t0, n_processed, work_s, resumed)
    _log_summary(result)
    return result


def _exclusion_summary(refs: Sequence[RecordRef], exclude: Path) -> dict:
    listed = load_exclusions(exclude)
    excluded = sum(r.extra.get("skip_kind") == "excluded" for r in refs)
    return {"file": str(exclude), "listed": len(listed), "excluded_records": int(excluded)}


def _summarise(manifest: pd.DataFrame) -> tuple[Counter, dict[str, str]]:
    skipped = manifest[manifest["status"] != "ok"]
    kinds: Counter = Counter()
    examples: dict[str, str] = {}
    for reason in skipped["reason"]:
        kind = reason.split(":", 1)[0]
        kinds[kind] += 1
        examples.setdefault(kind, reason)
    return kinds, examples


def _make_result(
    run_dir: Path, manifest: pd.DataFrame, t0: float, n_processed: int, work_s: float, resumed: int
) -> PrepareResult:
    kinds, examples = _summarise(manifest)
    ok = manifest[manifest["status"] == "ok"]
    seconds = time.perf_counter() - t0
    return PrepareResult(
        run_dir=run_dir,
        n_total=len(manifest),
        n_ok=len(ok),
        n_skipped=len(manifest) - len(ok),
        reasons=_reasons_table(kinds, examples),
        splits={s: int((ok["split"] == s).sum()) for s in ("train", "val", "test")},
        seconds=seconds,
        records_per_s=n_processed / work_s if work_s > 0 and n_processed else 0.0,
        n_processed=n_processed,
        resumed_shards=resumed,
        hr_sources={k: int(v) for k, v in sorted(Counter(ok["hr_source"]).items())},
    )


def _result_from_manifest(run_dir: Path, t0: float, n_shards: int) -> PrepareResult:
    m = read_manifest(_data_dir(run_dir) / MANIFEST_FILE).fillna({"split": "", "hr_source": "", "reason": ""})
    return _make_result(run_dir, m.astype({"status": str}), t0, 0, 0.0, n_shards)


def _log_summary(result: PrepareResult) -> None:
    log.info("%s", result)
