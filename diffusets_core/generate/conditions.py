"""The conditions of a generation: the conditions file of ``diffusets generate --conditions FILE.csv``, read,
checked and expanded into ECGs, and the conditions table of ``generate --report`` / :func:`generate_to_disk
<diffusets_core.generate.to_disk.generate_to_disk>`, checked.

The conditions file has one row per condition: ``report`` (statements joined with ``|``), ``age`` (years),
``sex`` (``M``/``F``), ``hr`` (bpm), and optionally ``n`` (ECGs for the row, default 1) and ``seed`` (the
row's first seed; its ECG ``j`` uses ``seed + j``; default ``--seed`` + the ECG's index in the dataset).

* **Every bad row before any ECG.** :func:`validate_conditions` checks the whole file in a streaming pass (sex,
  age/HR within the ranges :func:`~diffusets_core.text.patient.encode_patient` accepts, non-empty report and
  statements, ``n`` and ``seed`` integers, and every distinct prompt through the embedder, which also fills the
  embedding cache); :class:`ConditionsError` lists each problem with its row, the file line the row starts on (a
  quoted report may span lines) and field.
* **Same ECG whatever the batch.** :func:`iter_batches` expands the rows by ``n`` in file order: ECG ``i`` always
  has the same seed and lands in global batch ``i // batch_size``.
* **Bounded memory.** The file is read in chunks; only the distinct prompts are held.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..text.cache import EmbeddingCache
from ..text.embed import embed_plans
from ..text.patient import AGE_RANGE, HR_RANGE
from ..text.prompts import ordered_prompt
from ..text.window import plan_prompts
from .writer import record_id

__all__ = [
    "CONDITION_COLUMNS",
    "ConditionsError",
    "ConditionsSummary",
    "validate_conditions",
    "iter_batches",
    "check_condition_table",
]

REQUIRED = ("report", "age", "sex", "hr")
OPTIONAL = ("n", "seed")
CONDITION_COLUMNS = REQUIRED  #: the columns of a conditions table (one row per ECG)
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


def check_condition_table(pipe: Any, conditions: Any) -> pd.DataFrame:
    """The conditions table of :func:`~diffusets_core.generate.to_disk.generate_to_disk` (one row per ECG, columns
    :data:`CONDITION_COLUMNS`), checked before anything is written: the columns are there, there is a row, every
    row passes ``pipe.conditions`` (ranges, sex; when the pipeline has it, which also normalises the values), and
    every distinct report fits the embedder's window (the text layer's rule,
    :func:`~diffusets_core.text.window.plan_prompts`).

    Returns the table, indexed 0 .. n-1.

    Raises:
        ValueError: a missing column, no rows, a row the pipeline refuses, or a report longer than the embedder
            reads (``PromptTooLongError``).
    """
    conditions = pd.DataFrame(conditions).reset_index(drop=True)
    missing = [c for c in CONDITION_COLUMNS if c not in conditions.columns]
    if missing:
        raise ValueError(f"conditions: missing column(s) {', '.join(missing)}; expected {', '.join(CONDITION_COLUMNS)}")
    if len(conditions) == 0:
        raise ValueError("conditions: no rows, so no ECG to generate; ask for at least one")
    check = getattr(pipe, "conditions", None)
    if callable(check):  # every row checked (ranges, sex) before the first batch is written
        c = conditions
        conditions = check(c["report"].tolist(), c["age"].tolist(), c["sex"].tolist(), c["hr"].tolist(), n=len(c))
    embedder = getattr(pipe, "embedder", None)
    if embedder is not None and hasattr(embedder, "window"):
        # the text layer's window rule (a statement longer than the embedder reads is refused), applied before
        # --out is claimed: a refused request must leave no record that would block the corrected one
        plan_prompts(conditions["report"].drop_duplicates().tolist(), embedder.window, embedder.prompt_mode)
    return conditions
