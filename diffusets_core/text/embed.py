"""Embed the reports of a run directory (``run/data/manifest.csv`` -> ``run/embeddings/``).

``embed_run`` writes::

    run/embeddings/prompts.csv            record_id,prompt_index   (one row per ok manifest row, manifest order)
    run/embeddings/distinct_prompts.csv   prompt_index,prompt      (the distinct ordered prompts)
    run/embeddings/vectors.npy            float32 (n_distinct, dim); row i = prompt_index i
    run/embeddings/identity.json          backend, model, dim, prompt_mode, [base_url], package version, counts,
                                          window (the embedder's window and how many prompts exceeded it)
    run/embeddings/cache/                 the persistent cache (unless DIFFUSETS_CACHE or cache_dir says otherwise)

All files are written atomically (temp file + rename), ``identity.json`` last.  No secret is ever
written: the OpenAI key lives only in the ``OPENAI_API_KEY`` environment variable.

Reports become vectors only through :func:`embed_reports` / :func:`embed_plans`, which follow the rule of
:mod:`diffusets_core.text.window` for prompts longer than the embedder's window (split into chunks of whole
statements, or refused); prompts within the window are embedded exactly as before that rule existed.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import __version__, fileio
from ..fileio import atomic_save_with, atomic_write_text
from ..layout import DATA_DIR, EMBEDDING_CACHE_DIR, EMBEDDINGS_DIR, MANIFEST_FILE
from ..settings import dataclass_from_dict
from .cache import EmbeddingCache
from .embedders import (
    Embedder,
    EmbedderIdentity,
    EmbeddingError,
    PromptTooLongError,
    TokenWindow,
    make_embedder,
    token_window,
)
from .prompts import Statements
from .window import STRATEGY, PromptPlan, combine_chunks, plan_prompts, plan_summary

log = logging.getLogger(__name__)

CACHE_ENV = "DIFFUSETS_CACHE"
DEFAULT_AUTO_CONSOLIDATE = 256


def default_cache_dir(run_dir: str | os.PathLike) -> Path:
    """``$DIFFUSETS_CACHE`` if set (shared between runs), else ``run_dir/embeddings/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(run_dir) / EMBEDDINGS_DIR / EMBEDDING_CACHE_DIR


def user_cache_dir() -> Path:
    """The user's cache folder for this package: ``platformdirs.user_cache_dir("diffusets")`` when platformdirs
    is installed (``$XDG_CACHE_HOME/diffusets`` or ``~/.cache/diffusets`` on Linux, the platform's convention
    elsewhere), else ``$XDG_CACHE_HOME/diffusets`` or ``~/.cache/diffusets``."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "diffusets"
    return Path(platformdirs.user_cache_dir("diffusets", appauthor=False))


@dataclass(frozen=True)
class CachePlacement:
    """Where an inference process keeps text embeddings (:func:`inference_cache`).

    ``root``: the cache root new vectors are appended to (None: none is writable, vectors are computed and kept
    in memory only); ``read_only``: roots read as well but never written; ``note``: a sentence for the user when
    the cache is not where training put it (else None); ``read_only_first``: the read-only roots win over ``root``
    for a prompt both hold (a model folder's shipped vectors, the ones its run generated with)."""

    root: Path | None
    read_only: tuple[Path, ...] = ()
    note: str | None = None
    read_only_first: bool = False


def inference_cache(run_dir: str | os.PathLike, identity: EmbedderIdentity | None = None) -> CachePlacement:
    """Where generation from ``run_dir`` caches the embeddings of new prompts, without ever needing to write
    into the run: :func:`default_cache_dir` when this process may write there (``fileio.writable_dir`` of the
    identity's folder), else the user's cache (:func:`user_cache_dir` ``/embeddings``) with the run's cache still
    read, else no persistent cache. A run on a read-only file system, or one owned by another user, is thus used
    as it is."""
    first = default_cache_dir(run_dir)
    fallback = user_cache_dir() / "embeddings"

    def ok(root: Path) -> bool:
        return fileio.writable_dir(root / identity.slug() if identity is not None else root)

    if ok(first):
        return CachePlacement(first)
    read = (first,) if first.is_dir() else ()
    if ok(fallback):
        return CachePlacement(
            fallback,
            read,
            f"{first} is not writable: embeddings of new prompts are cached in {fallback} (set {CACHE_ENV} to "
            "choose another folder); the vectors already cached there are still read",
        )
    return CachePlacement(
        None,
        read,
        f"neither {first} nor {fallback} is writable: embeddings of new prompts are computed and not cached "
        f"(set {CACHE_ENV} to a writable folder to keep them)",
    )


def _package_version() -> str:
    return str(__version__)


def read_ok_manifest(run_dir: str | os.PathLike):
    """The ``status == "ok"`` rows of ``run_dir/data/manifest.csv`` (all columns as strings)."""
    path = Path(run_dir) / DATA_DIR / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"no manifest at {path}; prepare the data first (diffusets_core.data.prepare)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("record_id", "report", "status"):
        if col not in df.columns:
            raise ValueError(f"{path} has no {col!r} column (columns: {list(df.columns)})")
    return df[df["status"] == "ok"].reset_index(drop=True)


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: bool = True,
    desc: str | None = None,
    *,
    check_window: bool = True,
) -> tuple[np.ndarray, dict]:
    """Embed distinct ``texts`` through ``cache`` (each text embedded once, ever), each as a whole.

    Every batch is committed to the cache as soon as it is embedded, so an interruption loses at most
    the batch in flight.  Returns ``(matrix (len(texts), dim), stats)``.  Reports go through
    :func:`embed_reports` instead (long prompts are split there).

    Raises :class:`~diffusets_core.text.embedders.PromptTooLongError` for a text longer than the embedder's
    window, cached or not (a cache written by an older version may hold a truncated vector for it);
    ``check_window=False`` is for texts already counted by :func:`~diffusets_core.text.window.plan_prompts`.
    """
    texts = list(texts)
    if check_window:
        embedder.window.refuse(texts)
    if cache is not None:
        _, missing = cache.lookup(texts)
    else:
        missing = list(range(len(texts)))
    stats0 = dict(embedder.stats)
    new_rows: dict[int, np.ndarray] = {}
    bar = tqdm(
        total=len(missing),
        unit="prompt",
        disable=not progress,
        desc=desc or f"embedding ({embedder.backend}:{embedder.model})",
    )
    try:
        for start in range(0, len(missing), batch_size):
            idx = missing[start : start + batch_size]
            batch = [texts[i] for i in idx]
            vecs = embedder.embed(batch)
            if cache is not None:
                cache.add(batch, vecs)
            else:
                for i, v in zip(idx, vecs):
                    new_rows[i] = v
            bar.update(len(idx))
    finally:
        bar.close()
    if cache is not None:
        matrix = cache.get(texts) if texts else np.zeros((0, cache.dim or embedder.dim or 0), np.float32)
    else:
        dim = embedder.dim or 0
        matrix = np.zeros((len(texts), dim), np.float32)
        for i, v in new_rows.items():
            matrix[i] = v
    stats = {
        "distinct_prompts": len(texts),
        "cache_hits": len(texts) - len(missing),
        "newly_embedded": len(missing),
        "embed_batches": embedder.stats["embed_calls"] - stats0["embed_calls"],
        "api_requests": embedder.stats["api_requests"] - stats0["api_requests"],
        "api_retries": embedder.stats["retries"] - stats0["retries"],
    }
    return matrix, stats


def embed_plans(
    plans: Sequence[PromptPlan],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: bool = True,
    desc: str | None = None,
) -> tuple[np.ndarray, dict]:
    """Vectors of ``plans`` (from :func:`~diffusets_core.text.window.plan_prompts` with ``embedder.window``):
    each distinct chunk embedded once through ``cache``; a one-chunk plan gets its chunk's vector as is, a longer
    one :func:`~diffusets_core.text.window.combine_chunks`. Returns ``(matrix (len(plans), dim), stats)`` with
    :func:`embed_texts`'s counts over the texts embedded (``distinct_texts``: the prompts, or the chunks of a
    prompt longer than the window) and ``distinct_prompts``."""
    chunk_texts = list(dict.fromkeys(c for p in plans for c in p.chunks))
    matrix, stats = embed_texts(
        chunk_texts, embedder, cache, batch_size=batch_size, progress=progress, desc=desc, check_window=False
    )
    row = {c: i for i, c in enumerate(chunk_texts)}
    out = np.zeros((len(plans), matrix.shape[1]), dtype=np.float32)
    for i, p in enumerate(plans):
        if p.split:
            out[i] = combine_chunks(matrix[[row[c] for c in p.chunks]], p.chunk_tokens)
        else:
            out[i] = matrix[row[p.chunks[0]]]  # a prompt within the window: its vector, untouched
    stats = {**stats, "distinct_prompts": len({p.prompt for p in plans}), "distinct_texts": len(chunk_texts)}
    return out, stats


def embed_reports(
    reports: Sequence[Statements],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = 64,
    progress: bool = False,
    desc: str | None = None,
) -> tuple[np.ndarray, dict]:
    """The text vectors of ``reports`` (``|``-joined statements), one row per report, in order: ordered prompts in
    ``embedder.prompt_mode``, planned by :func:`~diffusets_core.text.window.plan_prompts` (the rule for prompts
    longer than the embedder's window) and embedded through ``cache``. What every path that turns reports into
    vectors calls (``embed_run``, the pipeline, ``generate --conditions``).

    Returns ``(matrix (len(reports), dim) float32, stats)``: :func:`embed_texts`'s counts plus
    :func:`~diffusets_core.text.window.plan_summary`'s. Raises PromptTooLongError (a statement longer than the
    window; count and limit in the message)."""
    window = embedder.window
    plans = plan_prompts(reports, window, embedder.prompt_mode)
    distinct = list({p.prompt: p for p in plans}.values())
    matrix, stats = embed_plans(distinct, embedder, cache, batch_size=batch_size, progress=progress, desc=desc)
    row = {p.prompt: i for i, p in enumerate(distinct)}
    out = matrix[[row[p.prompt] for p in plans]] if plans else matrix
    return out, {**stats, **plan_summary(plans, window)}


@dataclass
class EmbedConfig:
    """Which embedder turns a run's reports into vectors, and how (:func:`embed_run`; the profile's ``text``
    settings and the ``diffusets embed`` options).

    Raises ValueError for ``batch_size`` < 1 or an unknown key of :meth:`from_dict`.
    """

    backend: str = "local"  # local | openai | hash (text.embedders.make_embedder)
    model: str | None = None  # None = the backend's default
    base_url: str | None = None  # OpenAI-compatible server; the key is only read from OPENAI_API_KEY
    prompt_mode: str = "paper"  # paper | clean: the ordered-prompt template (text.prompts)
    batch_size: int = 64  # distinct texts per embedder call (one API request for openai)
    device: str = "auto"  # the local backend's device

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbedConfig:
        """The defaults with the settings of ``d`` applied. Raises ValueError naming any key that is not a field."""
        return dataclass_from_dict(cls, d)


@dataclass
class _RunPrompts:
    """The ordered prompts of a run's ok records: their plans (record order), the distinct prompts (first-seen
    order) with the plan of each, every record's row in the distinct prompts, the records with an empty report and
    :func:`~diffusets_core.text.window.plan_summary`."""

    by_prompt: dict[str, PromptPlan]
    prompt_index: np.ndarray  # (n_records,) int64
    n_empty: int
    window_info: dict

    @property
    def distinct(self) -> list[str]:
        return list(self.by_prompt)


def embed_run(
    run_dir: str | os.PathLike,
    config: EmbedConfig | None = None,
    *,
    embedder: Embedder | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    auto_consolidate: int = DEFAULT_AUTO_CONSOLIDATE,
    **embedder_kwargs: Any,
) -> dict:
    """Embed the ordered prompts of every ok record of ``run_dir`` with the embedder of ``config`` (default
    :class:`EmbedConfig`) and write ``run_dir/embeddings/``.

    ``embedder`` overrides ``config.backend`` / ``model`` / ``base_url`` (its own identity is used; its prompt
    mode must be ``config.prompt_mode``). Extra keyword arguments go to the embedder constructor (e.g.
    ``allow_no_key``, ``max_retries``, ``backoff_base``, ``timeout`` for ``openai``; ``dim`` for ``hash``).
    ``cache_dir``: the persistent cache (default :func:`default_cache_dir`), consolidated when it holds more than
    ``auto_consolidate`` segments (0: never).

    Returns counts:

    ``records``                 ok manifest rows
    ``distinct_prompts``        distinct ordered prompts among them
    ``cache_hits``              distinct texts found in the cache (the prompts; for a prompt longer than the
                                window, its chunks)
    ``newly_embedded``          distinct texts embedded now (and added to the cache)
    ``embed_batches``           batches sent to the embedder (one API call each for ``openai``)
    ``api_calls``               HTTP requests made (incl. retries; 0 for local backends)
    ``api_retries``             of which retries
    ``prompts_saved_by_dedup``  records - distinct prompts (embeddings not computed thanks to
                                de-duplication; the reference made one API call per prompt)
    ``api_calls_saved_by_dedup`` ceil(records needing a new vector / batch_size) - embed_batches
    ``empty_reports``           records with no statement
    ``window``, ``token_count``, ``max_prompt_tokens``, ``long_records``, ``long_prompts``, ``strategy``
                                the embedder's window and how the reports met it
                                (:func:`~diffusets_core.text.window.plan_summary`; also in ``identity.json``)

    Raises PromptTooLongError, naming up to five records, before anything is written, when a report has a
    statement longer than the embedder's window (:func:`~diffusets_core.text.window.plan_prompts`); ValueError
    when ``embedder``'s prompt mode is not ``config.prompt_mode``.
    """
    t0 = time.perf_counter()
    config = EmbedConfig() if config is None else config
    run_dir = Path(run_dir)
    df = read_ok_manifest(run_dir)
    record_ids = df["record_id"].tolist()
    embedder = _run_embedder(config, embedder, embedder_kwargs)
    prompts = _plan_run_prompts(run_dir, df["report"].tolist(), record_ids, embedder.window, config.prompt_mode)

    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir(run_dir)
    cache = EmbeddingCache(cache_root, embedder.identity)
    missing_before = _prompts_missing_from(cache, prompts)
    matrix, st = embed_plans(
        list(prompts.by_prompt.values()), embedder, cache, batch_size=config.batch_size, progress=progress
    )
    if auto_consolidate and len(cache.segment_names()) > auto_consolidate:
        cache.consolidate()

    ident = embedder.identity.to_dict()
    ident["dim"] = int(matrix.shape[1]) or int(embedder.dim or cache.dim or 0)
    n_rec_new = int(sum(1 for i in prompts.prompt_index if i in missing_before))
    counts = {
        "records": len(record_ids),
        "distinct_prompts": len(prompts.by_prompt),
        "cache_hits": st["cache_hits"],
        "newly_embedded": st["newly_embedded"],
        "embed_batches": st["embed_batches"],
        "api_calls": st["api_requests"],
        "api_retries": st["api_retries"],
        "prompts_saved_by_dedup": len(record_ids) - len(prompts.by_prompt),
        "api_calls_saved_by_dedup": max(0, math.ceil(n_rec_new / config.batch_size) - st["embed_batches"]),
        "empty_reports": prompts.n_empty,
        **prompts.window_info,
    }
    out, elapsed = _write_run_embeddings(run_dir, record_ids, prompts, matrix, ident, t0)
    counts.update({"identity": ident, "out_dir": str(out), "cache_dir": str(cache.dir), "seconds": round(elapsed, 3)})
    log.info("embedded run %s: %s", run_dir, {k: v for k, v in counts.items() if k != "identity"})
    return counts


def _run_embedder(config: EmbedConfig, embedder: Embedder | None, embedder_kwargs: dict[str, Any]) -> Embedder:
    """``embedder`` (checked against ``config.prompt_mode``), else the embedder of ``config`` built with
    ``embedder_kwargs`` (the local backend also gets ``config.device``, the local and openai backends
    ``config.batch_size``, unless ``embedder_kwargs`` say otherwise)."""
    if embedder is not None:
        if embedder.prompt_mode != config.prompt_mode:
            raise ValueError(f"embedder prompt_mode {embedder.prompt_mode!r} != prompt_mode {config.prompt_mode!r}")
        return embedder
    if config.backend == "local":
        embedder_kwargs.setdefault("device", config.device)
        embedder_kwargs.setdefault("batch_size", config.batch_size)
    elif config.backend == "openai":
        embedder_kwargs.setdefault("batch_size", config.batch_size)
    return make_embedder(
        config.backend, model=config.model, base_url=config.base_url, prompt_mode=config.prompt_mode, **embedder_kwargs
    )


def _plan_run_prompts(
    run_dir: Path, reports: list[str], record_ids: list[str], window: TokenWindow, prompt_mode: str
) -> _RunPrompts:
    """The prompts of ``reports`` planned by the one rule for prompts longer than ``window``
    (:func:`~diffusets_core.text.window.plan_prompts`). Raises PromptTooLongError naming up to five refused
    records (of ``record_ids``) before anything is written."""
    refused: dict[int, PromptTooLongError] = {}
    plans = plan_prompts(reports, window, prompt_mode, refused=refused)
    if refused:
        first = sorted(refused)[:5]
        shown = "\n".join(f"  record {record_ids[i]}: {refused[i]}" for i in first)
        more = f"\n  ... and {len(refused) - len(first)} more" if len(refused) > len(first) else ""
        raise PromptTooLongError(
            f"{len(refused)} report(s) of {run_dir / DATA_DIR / MANIFEST_FILE} cannot be embedded without losing "
            f"part of them; nothing was written\n{shown}{more}",
            tokens=refused[first[0]].tokens,
            limit=refused[first[0]].limit,
        )
    prompts = [p.prompt for p in plans]
    n_empty = sum(1 for p in prompts if not p)
    if n_empty:
        log.warning("%d ok record(s) have an empty report; they get the vector of the empty prompt", n_empty)
    by_prompt = {p.prompt: p for p in plans}
    pindex = {p: i for i, p in enumerate(by_prompt)}
    prompt_index = np.array([pindex[p] for p in prompts], dtype=np.int64)
    window_info = plan_summary(plans, window)
    if window_info["long_records"]:
        log.info(
            "%d record(s) (%d distinct prompts) are longer than the %d-token window of %s: embedded in chunks of "
            "whole statements (%s)",
            window_info["long_records"],
            window_info["long_prompts"],
            window.max_tokens,
            window.name,
            STRATEGY,
        )
    return _RunPrompts(by_prompt, prompt_index, n_empty, window_info)


def _prompts_missing_from(cache: EmbeddingCache, prompts: _RunPrompts) -> set[int]:
    """Rows of the distinct prompts with a chunk that ``cache`` does not hold yet (before embedding)."""
    chunks = list(dict.fromkeys(c for p in prompts.by_prompt.values() for c in p.chunks))
    missing_chunks = {chunks[i] for i in cache.lookup(chunks)[1]} if chunks else set()
    return {i for i, p in enumerate(prompts.by_prompt.values()) if any(c in missing_chunks for c in p.chunks)}


def _write_run_embeddings(
    run_dir: Path, record_ids: list[str], prompts: _RunPrompts, matrix: np.ndarray, ident: dict, t0: float
) -> tuple[Path, float]:
    """``run_dir/embeddings/``: ``prompts.csv``, ``distinct_prompts.csv``, ``vectors.npy`` and, last,
    ``identity.json`` (``ident`` with the package version, counts, window and creation time), all atomic.
    Returns the folder and the seconds since ``t0`` once the vectors are written."""
    out = run_dir / EMBEDDINGS_DIR
    out.mkdir(parents=True, exist_ok=True)
    distinct = prompts.distinct

    def write_csv(name: str, frame) -> None:
        atomic_write_text(out / name, frame.to_csv(index=False))

    write_csv("prompts.csv", pd.DataFrame({"record_id": record_ids, "prompt_index": prompts.prompt_index}))
    write_csv("distinct_prompts.csv", pd.DataFrame({"prompt_index": np.arange(len(distinct)), "prompt": distinct}))
    atomic_save_with(
        out / "vectors.npy", lambda f: np.save(f, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    )
    elapsed = time.perf_counter() - t0
    meta = dict(ident)
    meta.update(
        {
            "package_version": _package_version(),
            "records": len(record_ids),
            "distinct_prompts": len(distinct),
            "window": prompts.window_info,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {"prompts": "prompts.csv", "distinct_prompts": "distinct_prompts.csv", "vectors": "vectors.npy"},
        }
    )
    atomic_write_text(out / "identity.json", json.dumps(meta, indent=2))
    return out, elapsed


def _refuse_truncated_legacy(run_dir: Path, out: Path, identity: dict) -> None:
    """Embeddings written before the window rule: refuse them if a prompt exceeds the embedder's window (its
    vector was truncated), with what to do; runs whose prompts all fit are read as before."""
    try:
        window = token_window(identity["backend"], identity.get("model"), identity.get("base_url"))
    except (EmbeddingError, ValueError, KeyError) as exc:
        log.warning("cannot check %s against its embedder's window (%s)", out, exc)
        return
    if window.max_tokens is None or not (out / "distinct_prompts.csv").exists():
        return
    prompts = pd.read_csv(out / "distinct_prompts.csv", dtype={"prompt": str}, keep_default_na=False)["prompt"]
    over = [n for n in window.counts(prompts.tolist()) if n > window.max_tokens]
    if over:
        raise ValueError(
            f"{out} was written by an older version that cut off prompts longer than the embedder's window: "
            f"{len(over)} prompt(s) exceed the {window.max_tokens}-token window of {window.name} (the longest "
            f"{window.describe(max(over))}). Re-run `diffusets embed {run_dir}` (prompts within the window keep "
            "their cached vectors)."
        )


def load_run_embeddings(run_dir: str | os.PathLike) -> tuple[list[str], np.ndarray, dict]:
    """``(record_ids, matrix, identity)`` with ``matrix[i]`` the vector of ``record_ids[i]``.

    Rows follow the ok rows of ``run_dir/data/manifest.csv`` (when present); a record of the manifest
    without an embedding raises ``ValueError`` (re-run :func:`embed_run`), and so do embeddings written before
    the window rule when one of their prompts was longer than the window (its vector was truncated).
    """
    run_dir = Path(run_dir)
    out = run_dir / EMBEDDINGS_DIR
    if not (out / "identity.json").exists():
        raise FileNotFoundError(f"no embeddings in {out}; run embed_run({str(run_dir)!r}) first")
    identity = json.loads((out / "identity.json").read_text(encoding="utf-8"))
    if "window" not in identity:
        _refuse_truncated_legacy(run_dir, out, identity)
    table = pd.read_csv(out / "prompts.csv", dtype={"record_id": str, "prompt_index": np.int64}, keep_default_na=False)
    vectors = np.load(out / "vectors.npy")
    if len(table) and (table["prompt_index"].max() >= len(vectors) or table["prompt_index"].min() < 0):
        raise ValueError(f"{out}/prompts.csv points outside vectors.npy ({len(vectors)} rows)")
    ids = table["record_id"].tolist()
    rows = table["prompt_index"].to_numpy()
    if (run_dir / DATA_DIR / MANIFEST_FILE).exists():
        want = read_ok_manifest(run_dir)["record_id"].tolist()
        if want != ids:
            pos = {r: i for i, r in enumerate(ids)}
            absent = [r for r in want if r not in pos]
            if absent:
                raise ValueError(
                    f"{len(absent)} ok manifest record(s) have no embedding (e.g. {absent[0]!r}); "
                    f"re-run embed_run on {run_dir}"
                )
            rows = rows[[pos[r] for r in want]]
            ids = want
    return ids, vectors[rows], identity
