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

Options the user names (fields of :class:`PrepareConfig`, CLI ``prepare`` flags, profile ``data.*`` keys):

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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import __version__
from ..fileio import TMP_PREFIX, atomic_save_npy, atomic_write_text
from ..layout import MANIFEST_FILE, PREPARE_FILE, SIGNALS_DIR
from ..layout import data_dir as _data_dir
from ..settings import dataclass_from_dict
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

__all__ = [
    "prepare_dataset",
    "PrepareConfig",
    "PrepareResult",
    "SOURCES",
    "list_records",
    "load_exclusions",
    "apply_exclusions",
]

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


# --------------------------------------------------------------------------- settings


@dataclass
class PrepareConfig:
    """What :func:`prepare_dataset` makes of a source's records: every setting recorded in the fingerprint of
    ``prepare.json`` besides the source and its folder (how many worker processes read the records, and the
    progress bar, change nothing in the files and are keyword arguments of :func:`prepare_dataset`).

    ``n`` keeps the first records in reader order (MIMIC by subject/study, PTB-XL by ecg_id, folders by relative
    path). ``header_fields`` names the WFDB header keys of age, sex and report (source ``wfdb``):
    ``["age=KEY", "sex=KEY", "report=KEY"]`` or a mapping (:func:`.headers.parse_header_field_map`). Relative
    paths (``code_map``, ``exclude``, a ``csv:`` subject table) are resolved against the current working
    directory when :func:`prepare_dataset` runs.

    Raises ValueError for ``shard_size`` < 1 or an unknown key of :meth:`from_dict`.
    """

    n: int | None = None  # keep the first n records; None = all
    seed: int = 0  # seed of the subject-level split
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / val / test
    shard_size: int = 1000  # records (ok or skipped) per shard; the unit of resumption
    preprocess: PreprocessConfig | dict | None = None  # a PreprocessConfig or its dict; None = PreprocessConfig()
    subject_id: str | None = None  # auto (None) | record | header:KEY | path:REGEX | csv:FILE (see .subjects)
    code_map: str | os.PathLike[str] | None = None  # CSV code,text for WFDB header diagnosis codes (source wfdb)
    exclude: str | os.PathLike[str] | None = None  # file of record ids to skip ("excluded: excluded by <file>")
    header_fields: Sequence[str] | dict | None = None  # WFDB header keys for age / sex / report (source wfdb)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig.from_dict(self.preprocess)
        self.preprocess = self.preprocess or PreprocessConfig()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrepareConfig:
        """The defaults with the settings of ``d`` applied. Raises ValueError naming any key that is not a field."""
        return dataclass_from_dict(cls, d)


@dataclass
class _Inputs:
    """The records of one :func:`prepare_dataset` call, in order, with the option files as absolute paths."""

    data_root: Path
    code_map: Path | None
    exclude: Path | None
    header_fields: dict
    refs: list[RecordRef]


#: The fingerprint entries ``prepare.json`` also records at its top level.
_RECORDED_SETTINGS = ("source", "data_dir", "n", "seed", "fractions", "shard_size", "preprocess", "package_version")


# --------------------------------------------------------------------------- main entry


def prepare_dataset(
    source: str,
    data_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    config: PrepareConfig | None = None,
    *,
    workers: int | None = 2,
    progress: bool = True,
) -> PrepareResult:
    """Prepare ``source`` records under ``data_dir`` into ``run_dir/data`` (see module doc).

    Args:
        source: ``"cohort"``, ``"mimic"``, ``"ptbxl"`` or ``"wfdb"`` (any WFDB folder).
        data_dir: the dataset root in that source's layout.
        run_dir: the run directory; output goes to ``run_dir/data``.
        config: what to make of the records (:class:`PrepareConfig`: ``n``, the split's ``seed`` and
            ``fractions``, ``shard_size``, ``preprocess``, ``subject_id``, ``code_map``, ``exclude``,
            ``header_fields``); default ``PrepareConfig()``.
        workers: worker processes; ``0``/``1`` processes in this process, None = all CPUs.
        progress: show a tqdm progress bar.

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
    config = PrepareConfig() if config is None else config
    inputs = _list_inputs(source, data_dir, config)
    out = _data_dir(run_dir)
    parts_dir = out / "parts"
    (out / SIGNALS_DIR).mkdir(parents=True, exist_ok=True)
    _clean_tmp(out, out / SIGNALS_DIR, parts_dir)

    fingerprint = _fingerprint(source, inputs, config)
    n_shards = (len(inputs.refs) + config.shard_size - 1) // config.shard_size
    if _already_prepared(out, fingerprint):  # nothing to do (leftover parts are removed)
        shutil.rmtree(parts_dir, ignore_errors=True)
        log.info("%s already prepared with the same inputs and config", out)
        return _result_from_manifest(Path(run_dir), t0, n_shards)

    _open_parts(out, fingerprint)
    part_rows = _committed_parts(run_dir, out, n_shards)
    resumed = len(part_rows)
    pending = [k for k in range(n_shards) if k not in part_rows]
    if resumed:
        log.info("resuming: %d of %d shard(s) already committed", resumed, n_shards)
    n_processed, work_s = _process_shards(source, run_dir, inputs, config, pending, part_rows, workers, progress)

    rows = [r for k in range(n_shards) for r in part_rows[k]]
    manifest, n_ok_subjects = _write_manifest(out, rows, config)
    _write_prepare_json(out, fingerprint, inputs, config, manifest, n_ok_subjects)
    shutil.rmtree(parts_dir, ignore_errors=True)

    result = _make_result(Path(run_dir), manifest, t0, n_processed, work_s, resumed)
    _log_summary(result)
    return result


# --------------------------------------------------------------------------- steps of prepare_dataset


def _list_inputs(source: str, data_dir: str | os.PathLike[str], config: PrepareConfig) -> _Inputs:
    """The option files as absolute paths and the records (:func:`list_records`), whose subject ids are checked
    before any record is read (:func:`.subjects.check_subjects`)."""
    data_root = Path(data_dir).expanduser().resolve()
    code_map = None if config.code_map is None else Path(config.code_map).expanduser().resolve()
    exclude = None if config.exclude is None else Path(config.exclude).expanduser().resolve()
    field_map = parse_header_field_map(config.header_fields)
    refs = list_records(
        source,
        data_root,
        config.n,
        subject_id=config.subject_id,
        code_map=code_map,
        exclude=exclude,
        header_fields=field_map,
    )
    check_subjects(refs)
    return _Inputs(data_root, code_map, exclude, field_map, refs)


def _fingerprint(source: str, inputs: _Inputs, config: PrepareConfig) -> dict:
    """What the output depends on: the source, its records (digest), the settings and the package version;
    JSON-normalised (tuples -> lists) so that it compares equal to the one stored in ``prepare.json`` and
    ``parts/fingerprint.json``."""
    code_map = inputs.code_map
    fingerprint = {
        "source": source,
        "data_dir": str(inputs.data_root),
        "n": config.n,
        "seed": config.seed,
        "fractions": list(config.fractions),
        "shard_size": config.shard_size,
        "preprocess": config.preprocess.to_dict(),
        "package_version": _package_version(),
        "n_records": len(inputs.refs),
        "inputs_sha256": _inputs_digest(inputs.refs),
        "subject_id": SubjectRule.parse(config.subject_id).describe(),
        "code_map": None if code_map is None else str(code_map),
        "code_map_sha256": None if code_map is None else hashlib.sha256(code_map.read_bytes()).hexdigest(),
        "exclude": None if inputs.exclude is None else str(inputs.exclude),
    }
    if inputs.header_fields:  # only when given: fingerprints of runs prepared without one stay as they were
        fingerprint["header_fields"] = inputs.header_fields
    return json.loads(_fingerprint_text(fingerprint))


def _fingerprint_text(fingerprint: dict) -> str:
    return json.dumps(fingerprint, indent=2, sort_keys=True)


def _already_prepared(out: Path, fingerprint: dict) -> bool:
    """A finished run (``manifest.csv`` and ``prepare.json``) whose stored fingerprint equals ``fingerprint``."""
    prep_json = out / PREPARE_FILE
    if not ((out / MANIFEST_FILE).is_file() and prep_json.is_file()):
        return False
    try:
        done = json.loads(prep_json.read_text()).get("fingerprint")
    except json.JSONDecodeError:
        done = None
    return done == fingerprint


def _open_parts(out: Path, fingerprint: dict) -> None:
    """Starting or resuming: remove the final files (invalid until rewritten at the end) and the partial results
    of other inputs or settings, then record ``fingerprint`` in ``parts/fingerprint.json``."""
    for stale in (out / MANIFEST_FILE, out / PREPARE_FILE):
        stale.unlink(missing_ok=True)
    parts_dir = out / "parts"
    fp_text = _fingerprint_text(fingerprint)
    fp_path = parts_dir / "fingerprint.json"
    if parts_dir.is_dir() and (not fp_path.is_file() or fp_path.read_text() != fp_text):
        log.info("discarding partial results made with other inputs or config in %s", parts_dir)
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    if not fp_path.is_file():
        atomic_write_text(fp_path, fp_text)


def _committed_parts(run_dir: str | os.PathLike[str], out: Path, n_shards: int) -> dict[int, list[list[str]]]:
    """The manifest rows of every committed shard (a readable part file and its shard), by shard index; shard
    files without a committed part, leftovers of an interrupted or other run, are removed."""
    parts_dir = out / "parts"
    part_rows: dict[int, list[list[str]]] = {}
    for k in range(n_shards):
        part = parts_dir / f"part_{k:05d}.csv"
        if part.is_file() and shard_path(run_dir, k).is_file():
            try:
                part_rows[k] = _read_part(part)
            except (ValueError, csv.Error):
                part.unlink()
    for p in (out / SIGNALS_DIR).glob("shard_*.npy"):
        try:
            k = int(p.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        if k not in part_rows:
            p.unlink()
    return part_rows


class _ShardCommitter:
    """Collects the processed records of each pending shard, batch by batch, and commits a shard as soon as all its
    batches are in: its ok signals as ``signals/shard_XXXXX.npy``, then its manifest rows as
    ``parts/part_XXXXX.csv`` (the commit marker), both atomic; the rows also go to ``part_rows``."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        inputs: _Inputs,
        config: PrepareConfig,
        batches: list[tuple[int, list[RecordRef]]],
        part_rows: dict[int, list[list[str]]],
        bar: tqdm | None,
    ):
        self.run_dir, self.inputs, self.config, self.part_rows, self.bar = run_dir, inputs, config, part_rows, bar
        self.n_batches_of = Counter(k for k, _ in batches)
        self.collected: dict[int, list[ProcessedRecord]] = {}

    def __call__(self, k: int, results: list[ProcessedRecord]) -> None:
        self.collected.setdefault(k, []).extend(results)
        self.n_batches_of[k] -= 1
        if self.bar is not None:
            self.bar.update(len(results))
        if self.n_batches_of[k] == 0:
            self.commit(k, self.collected.pop(k))

    def commit(self, k: int, results: list[ProcessedRecord]) -> None:
        size, root = self.config.shard_size, self.inputs.data_root
        chunk = self.inputs.refs[k * size : (k + 1) * size]
        ok = [r.signal for r in results if r.status == "ok"]
        arr = np.stack(ok) if ok else np.zeros((0, len(CANONICAL_LEADS), self.config.preprocess.out_len), np.float32)
        rows, i = [], 0
        for ref, res in zip(chunk, results):
            if res.status == "ok":
                rows.append(_manifest_row(ref, res, root, k, i))
                i += 1
            else:
                rows.append(_manifest_row(ref, res, root, None, None))
        # Order matters: the part file is the commit marker, so the shard must exist first.
        atomic_save_npy(shard_path(self.run_dir, k), arr.astype(np.float32, copy=False))
        atomic_write_text(_data_dir(self.run_dir) / "parts" / f"part_{k:05d}.csv", _csv_text(_PART_COLUMNS, rows))
        self.part_rows[k] = rows


def _process_shards(
    source: str,
    run_dir: str | os.PathLike[str],
    inputs: _Inputs,
    config: PrepareConfig,
    pending: list[int],
    part_rows: dict[int, list[list[str]]],
    workers: int | None,
    progress: bool,
) -> tuple[int, float]:
    """Read and preprocess the records of the ``pending`` shards in batches of :data:`_BATCH` (in ``workers``
    processes) and commit each shard (:class:`_ShardCommitter`). Returns ``(records processed, seconds)``."""
    refs, size = inputs.refs, config.shard_size
    n_processed = sum(len(refs[k * size : (k + 1) * size]) for k in pending)
    t_work = time.perf_counter()
    bar = None
    if progress:
        bar = tqdm(total=len(refs), initial=len(refs) - n_processed, desc=f"prepare {source}", unit="rec")
    batches: list[tuple[int, list[RecordRef]]] = []
    for k in pending:
        chunk = refs[k * size : (k + 1) * size]
        batches.extend((k, chunk[i : i + _BATCH]) for i in range(0, len(chunk), _BATCH))
    on_result = _ShardCommitter(run_dir, inputs, config, batches, part_rows, bar)
    if batches:
        _preload_worker_modules(refs[k * size : (k + 1) * size] for k in pending)
    try:
        _run_batches(batches, config.preprocess, workers, on_result)
    finally:
        if bar is not None:
            bar.close()
    return n_processed, time.perf_counter() - t_work


def _preload_worker_modules(chunks: Iterable[Sequence[RecordRef]]) -> None:
    """Import the heavy modules once here (not at the top: `import diffusets_core.data` stays light): forked
    workers inherit them instead of each paying the import (about 1 s for scipy.signal, 1.3 s for neurokit2) on
    its own. neurokit2 only when a record of ``chunks`` will need the R-peak path."""
    import scipy.signal  # noqa: F401
    import wfdb  # noqa: F401

    if any(heart_rate_from_rr(r.rr_interval_ms) is None and not r.skip_reason for chunk in chunks for r in chunk):
        import neurokit2  # noqa: F401  (R-peak path will be needed)


def _run_batches(
    batches: list[tuple[int, list[RecordRef]]],
    preprocess: PreprocessConfig,
    workers: int | None,
    on_result: Callable[[int, list[ProcessedRecord]], None],
) -> None:
    """Process every ``(shard, refs)`` batch and hand the results to ``on_result`` in submission order (so shards
    commit in order): in this process for ``workers`` <= 1 or a single batch, else in a process pool."""
    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if n_workers <= 1 or len(batches) <= 1:
        for k, batch in batches:
            on_result(k, _process_batch(batch, preprocess))
        return
    # A bounded number of batches in flight, so memory stays flat on 800k-record datasets.
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=_mp_context()) as pool:
        inflight: deque[tuple[int, Future]] = deque()
        try:
            for k, batch in batches:
                inflight.append((k, pool.submit(_process_batch, batch, preprocess)))
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


def _write_manifest(out: Path, rows: list[list[str]], config: PrepareConfig) -> tuple[pd.DataFrame, int]:
    """All parts' rows in order, with the subject-level split over the ok rows, as ``manifest.csv``. Returns the
    manifest and the number of subjects with an ok record.

    Raises NoUsableRecordsError / SplitError (no usable record, an empty validation or test split) before
    ``manifest.csv`` is written; the committed shards (and their reasons, in parts/) stay for a rerun."""
    cols = list(_PART_COLUMNS)
    i_status, i_subject = cols.index("status"), cols.index("subject_id")
    ok_subjects = {r[i_subject] for r in rows if r[i_status] == "ok"}
    split_of = assign_splits(ok_subjects, seed=config.seed, fractions=config.fractions)
    n_per_split = Counter(split_of[r[i_subject]] for r in rows if r[i_status] == "ok")
    i_reason = cols.index("reason")
    skipped = [r[i_reason] for r in rows if r[i_status] != "ok"]
    check_usable(len(rows), skipped, where=out / "parts")
    check_splits(
        {s: n_per_split.get(s, 0) for s in ("train", "val", "test")},
        config.fractions,
        len(ok_subjects),
        skipped=skipped,
    )
    full_rows = []
    for r in rows:
        d = dict(zip(cols, r))
        d["split"] = split_of[d["subject_id"]] if d["status"] == "ok" else ""
        full_rows.append([d[c] for c in MANIFEST_COLUMNS])
    atomic_write_text(out / MANIFEST_FILE, _csv_text(MANIFEST_COLUMNS, full_rows))
    return pd.DataFrame(full_rows, columns=list(MANIFEST_COLUMNS)), len(ok_subjects)


def _write_prepare_json(
    out: Path, fingerprint: dict, inputs: _Inputs, config: PrepareConfig, manifest: pd.DataFrame, n_subjects: int
) -> None:
    """``prepare.json``: the settings (from ``fingerprint``, also stored whole), the output's sampling rate and
    leads, the versions, the counts, splits, HR sources, skip reasons, subject rule and exclusions."""
    kinds, _ = _summarise(manifest)
    ok = manifest[manifest["status"] == "ok"]
    refs = inputs.refs
    info = {
        **{key: fingerprint[key] for key in _RECORDED_SETTINGS},
        "fs": config.preprocess.out_fs,
        "leads": list(CANONICAL_LEADS),
        "versions": _dep_versions(),
        "counts": {"total": len(manifest), "ok": len(ok), "skipped": len(manifest) - len(ok)},
        "splits": {s: int((ok["split"] == s).sum()) for s in ("train", "val", "test")},
        "hr_source": {k: int(v) for k, v in sorted(Counter(ok["hr_source"]).items())},
        "skip_reasons": dict(sorted(kinds.items())),
        "subjects": {
            "rule": fingerprint["subject_id"],
            "n_ok": n_subjects,
            "from": {
                k: int(v)
                for k, v in sorted(Counter(str(r.extra.get("subject_from", "dataset table")) for r in refs).items())
            },
        },
        "exclude": None if inputs.exclude is None else _exclusion_summary(refs, inputs.exclude),
        "fingerprint": fingerprint,
    }
    atomic_write_text(out / PREPARE_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")


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
