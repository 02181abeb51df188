"""Execute the book's notebooks with papermill for one profile, then build the Jupyter Book.

The source notebooks are never modified: executed copies go to ``<run_dir>/executed/`` and stay papermill's
record. The book is assembled in a staging folder (``<run_dir>/book_src``) from ``_config.yml``, ``_toc.yml``,
``book/`` and *rendered* copies of the executed notebooks (:func:`render_for_book`: one parameters cell with the
values used, no absolute path of the build machine, cells meant for another profile removed), then built with
``jupyter-book build -W --keep-going`` (warnings are errors, and execution is off: the book shows what papermill
ran).

Cell tags the runner reads (Jupyter Book's own ``hide-input`` / ``remove-cell`` work as usual):

* ``parameters`` / ``injected-parameters``: merged into one cell showing the values used (see
  :func:`merge_parameter_cells`), folded like other plumbing;
* ``only-profile-<name>`` (one or more per cell): the cell appears only in the book of those profiles, for text
  true of one profile only (e.g. "on the smoke profile the models are toys").

Inside Markdown (the pages under ``book/`` and the notebooks' Markdown cells), lines between
``<!-- only-profile: NAME[, NAME...] -->`` and ``<!-- /only-profile -->`` (each marker on a line of its own) are kept
only in the book of those profiles; the marker lines are always removed (:func:`filter_profile_text`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import platform
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .config import (
    REPO_ROOT,
    Profile,
    ProfileError,
    TypedLoader,
    check_run_profile,
    describe_type,
    describe_value,
    load_profile,
    profile_changes,
    write_profile_record,
)
from .layout import BOOK_SRC_DIR, EXECUTED_DIR, EXPLORER_DIR
from .measured import GPU_PAGE_FILE, gpu_measurements_page
from .progress import ProgressFollower
from .text.embedders import known_text_dim

log = logging.getLogger(__name__)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
#: Staged folder whose files Sphinx copies verbatim into the HTML root (``html_extra_path`` in _config.yml).
EXTRA_DIR = "_extra"


class NotebookFailed(RuntimeError):
    """A notebook raised during execution; the message names the notebook and the failing cell."""


# What each chapter takes from the profile, beyond run_dir/profile/seed. Secrets never go here.
STAGE_PARAMETERS = {
    # the chapter draws the networks at the profile's text width; when the embedder's width is known only after a
    # first call (another server), the chapter's own default stands
    "00_methods": lambda p: {
        "vae_model": p.vae.model,
        "unet_model": p.unet.model,
        **({"text_dim": dim} if (dim := known_text_dim(p.text.backend, p.text.model, p.text.base_url)) else {}),
    },
    "01_data": lambda p: {
        "source": p.data.source,
        "data_dir": p.data.data_dir,
        "n": p.data.n,
        "workers": p.data.workers,
        "baseline_removal": p.data.baseline_removal,
        "subject_id": p.data.subject_id,
        "code_map": p.data.code_map,
        "exclude": p.data.exclude,
        # the text embedder's window decides which reports the data chapter counts as long
        "backend": p.text.backend,
        "model": p.text.model,
        "base_url": p.text.base_url,
        "prompt_mode": p.text.prompt_mode,
    },
    "02_text": lambda p: {
        "backend": p.text.backend,
        "model": p.text.model,
        "base_url": p.text.base_url,
        "prompt_mode": p.text.prompt_mode,
        "batch_size": p.text.batch_size,
    },
    "03_vae": lambda p: {"vae_model": p.vae.model, "vae_train": p.vae.train, "vae_extra": p.vae.extra},
    "04_diffusion": lambda p: {"unet_model": p.unet.model, "unet_train": p.unet.train, "unet_extra": p.unet.extra},
    "06_benchmark": lambda p: {"unet_model": p.unet.model, "unet_train": p.unet.train, "unet_extra": p.unet.extra},
}


@dataclass
class NotebookRun:
    name: str
    seconds: float
    output: Path


def _parameters_cell(nb_path: Path) -> str:
    """The source of the notebook's cell tagged ``parameters``. Raises ValueError when it has none."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return cell.source
    raise ValueError(f"{nb_path}: no cell tagged 'parameters'")


def declared_parameters(nb_path: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (what papermill can override)."""
    import ast

    return {
        node.id
        for node in ast.walk(ast.parse(_parameters_cell(nb_path)))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }


# Types an annotation in a parameters cell may name (``guidance_scale: float | str = "auto"``).
_ANNOTATION_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def _annotation_type(node: Any) -> Any:
    """The type an annotation's ``ast`` node names (built-in names, ``None`` and ``|``); None when it is another."""
    import ast

    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.Name):
        return _ANNOTATION_TYPES.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _annotation_type(node.left), _annotation_type(node.right)
        return None if left is None or right is None else left | right
    return None


def parameter_types(nb_path: Path) -> dict[str, tuple[Any, bool]]:
    """``name -> (type, annotated)`` for each top-level assignment of the notebook's ``parameters`` cell: the type a
    profile's ``notebook_params`` value for it must have (:func:`check_profile_parameters`).

    The type is the annotation where the cell gives one (``guidance_scale: float | str = "auto"``; ``annotated`` is
    then true), else the type of the default: ``bool``, ``int``, ``float`` or ``str``. A default of ``None``, of
    another type (a list, a dict) or that is not a literal says nothing about the values the chapter takes: such a
    parameter accepts any value (``Any``). Raises ValueError when the notebook has no ``parameters`` cell.
    """
    import ast

    out: dict[str, tuple[Any, bool]] = {}
    for node in ast.parse(_parameters_cell(nb_path)).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            tp = _annotation_type(node.annotation)
            out[node.target.id] = (tp, True) if tp is not None else (Any, False)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                default = ast.literal_eval(node.value)
            except ValueError:
                default = None
            tp = type(default) if type(default) in (bool, int, float, str) else Any
            out[node.targets[0].id] = (tp, False)
    return out


#: The chapter that reads the dataset (its data.* settings are checked before a book run starts).
DATA_CHAPTER = "01_data"


def select_chapters(profile: Profile, only: Sequence[str] | None = None) -> list[str]:
    """The chapters a book run executes, in order: ``only`` (duplicates dropped) or the profile's ``notebooks``.

    Raises:
        ValueError: a name in ``only`` is not one of the profile's chapters (the message lists them; a notebook that
            exists but that the profile leaves out is named as such), or a chapter to run has no notebook file.
            The message does not say where the names came from: callers prefix it (``--only: ...``).
    """
    known = list(profile.notebooks)
    if only:
        chosen = list(dict.fromkeys(only))
        unknown = [c for c in chosen if c not in known]
        if unknown:
            left_out = [c for c in unknown if (NOTEBOOKS_DIR / f"{c}.ipynb").is_file()]
            typo = [c for c in unknown if c not in left_out]
            parts = []
            if typo:
                names = ", ".join(repr(c) for c in typo)
                parts.append(f"unknown chapter{'s' if len(typo) > 1 else ''} {names}")
            if left_out:
                names = ", ".join(repr(c) for c in left_out)
                parts.append(f"{names} not among the chapters of profile {profile.name!r}")
            raise ValueError("; ".join(parts) + f"; known: {', '.join(known)}")
    else:
        chosen = known
    missing = [c for c in chosen if not (NOTEBOOKS_DIR / f"{c}.ipynb").is_file()]
    if missing:
        raise ValueError(
            f"profile {profile.name!r} lists chapter(s) {missing} with no notebook in {NOTEBOOKS_DIR} "
            f"(notebooks there: {sorted(p.stem for p in NOTEBOOKS_DIR.glob('*.ipynb'))})"
        )
    return chosen


def check_data_inputs(profile: Profile, chapters: Sequence[str]) -> None:
    """When the data chapter runs, refuse before anything runs a ``data.*`` path that does not exist (the dataset
    folder of a real source, the code map, the exclusion list, a ``csv:`` subject table). Raises ValueError naming
    the key and the absolute path."""
    if DATA_CHAPTER not in chapters:
        return
    d = profile.data
    problems = []
    if d.source != "cohort" and d.data_dir and not Path(d.data_dir).is_dir():
        problems.append(f"data.data_dir: no such folder {d.data_dir} (give the dataset with --data-dir)")
    for key, value in (("code_map", d.code_map), ("exclude", d.exclude)):
        if value and not Path(value).is_file():
            problems.append(f"data.{key}: no such file {value}")
    if d.subject_id and d.subject_id.startswith("csv:") and not Path(d.subject_id[4:]).is_file():
        problems.append(f"data.subject_id: no such file {d.subject_id[4:]}")
    if problems:
        raise ValueError(f"profile {profile.name!r}: " + "; ".join(problems))


def check_profile_parameters(profile: Profile, notebooks: Sequence[str], *, where: str | None = None) -> None:
    """Refuse, before anything runs, a profile whose ``notebook_params`` for one of ``notebooks`` name a parameter
    the notebook does not declare (papermill would inject it as an unused variable and the setting would silently
    do nothing), or give a value of another type than the parameter's (:func:`parameter_types`: its annotation, else
    the type of its default) with the rules of :class:`~diffusets_core.config.TypedLoader` (an int for an int: a
    float with a whole value such as ``2e1`` becomes that int, a bool is never a number; an int or a float for a
    float; a parameter whose default is ``None``, a list or a dict takes any value).

    The checked values replace the profile's (``2e1`` is injected as ``20``). ``where`` names the profile's source in
    the message (default ``profile '<name>'``).

    Raises:
        ProfileError: ``"<where>: notebook_params.<notebook>.<key>: expected <type> (the default in <notebook
            file>), got <type> <value>"``, every problem in one message.
    """
    where = where or f"profile {profile.name!r}"
    loader = TypedLoader(where)
    problems = []
    for nb in notebooks:
        given = profile.notebook_params.get(nb, {})
        path = NOTEBOOKS_DIR / f"{nb}.ipynb"
        if not given or not path.is_file():
            continue
        declared = declared_parameters(path)
        unknown = set(given) - declared
        if unknown:
            problems.append(
                f"notebook_params.{nb}: {sorted(unknown)} not declared in the parameters cell of {path} "
                f"(declared: {sorted(declared)})"
            )
            continue
        types = parameter_types(path)
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        checked = dict(given)
        for key, value in given.items():
            tp, annotated = types.get(key, (Any, False))
            try:
                checked[key] = loader.check(value, tp, f"notebook_params.{nb}.{key}")
            except ProfileError:
                source = "declared in" if annotated else "the default in"
                problems.append(
                    f"notebook_params.{nb}.{key}: expected {describe_type(tp)} ({source} {shown}), got {describe_value(value)}"
                )
        profile.notebook_params[nb] = checked
    if problems:
        raise ProfileError(f"{where}: " + "; ".join(problems))


def notebook_parameters(profile: Profile, notebook: str, run_dir: Path) -> dict:
    """Parameters papermill injects: the run directory, the profile, its seed, and per-notebook extras."""
    params = {"run_dir": str(run_dir), "profile": profile.name, "seed": profile.seed}
    params.update(STAGE_PARAMETERS.get(notebook, lambda p: {})(profile))
    params.update(profile.notebook_params.get(notebook, {}))
    return params


def _failing_cell(nb_path: Path) -> str:
    """Describe the first cell of an executed notebook that holds an error output."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for idx, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                src = "".join(cell.get("source", "")).strip().splitlines()
                first = src[0] if src else ""
                return (
                    f"cell {idx} (execution_count {cell.get('execution_count')}): "
                    f"{out.get('ename')}: {out.get('evalue')}\n    first line: {first}"
                )
    return "no cell with an error output was recorded"


@contextlib.contextmanager
def _quiet_kernel_warnings():
    """Silence the kernel-launch noise that says nothing to a reader (jupyter_client's warning about kernels on
    TCP without encryption, debugpy's frozen-modules note); errors still surface through papermill."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(TCP|frozen modules|Proactor).*")
        loggers = [logging.getLogger(n) for n in ("traitlets", "papermill")]
        prev = [lg.level for lg in loggers]
        # papermill's INFO lines repeat what "[book] executing ..." already says, and its parameter-inspection
        # warnings ("unable to parse line", "unknown parameter") misreport parameters that
        # check_profile_parameters has already checked against the notebook's parameters cell
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, prev):
                lg.setLevel(level)


def execute_notebook(
    profile: Profile, notebook: str, run_dir: Path, *, kernel: str = "python3", progress_interval: float = 2.0
) -> NotebookRun:
    """Run one notebook with papermill into ``<run_dir>/executed/<notebook>.ipynb``."""
    import papermill as pm

    src = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if not src.is_file():
        raise FileNotFoundError(f"notebook not found: {src} (listed in profile {profile.name!r})")
    out_dir = run_dir / EXECUTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{notebook}.ipynb"
    params = notebook_parameters(profile, notebook, run_dir)
    t0 = time.perf_counter()
    try:
        # the kernel's output goes into the executed notebook; long stages also write progress files, which
        # the follower shows here as a bar (stage, step, loss, time left)
        with ProgressFollower(run_dir, notebook, interval=progress_interval), _quiet_kernel_warnings():
            pm.execute_notebook(
                str(src),
                str(out),
                parameters=params,
                kernel_name=kernel,
                cwd=str(NOTEBOOKS_DIR),
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=True,
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except pm.PapermillExecutionError as exc:
        raise NotebookFailed(
            f"notebook {notebook} failed at cell {exc.cell_index} (execution_count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n  executed copy with the traceback: {out}"
        ) from None
    except Exception as exc:  # kernel death etc.: still point at the failing cell when we can
        detail = _failing_cell(out) if out.exists() else str(exc)
        raise NotebookFailed(f"notebook {notebook} failed: {exc}\n  {detail}\n  executed copy: {out}") from exc
    return NotebookRun(notebook, time.perf_counter() - t0, out)


def _build_info(profile: Profile, run_dir: Path, runs: Sequence[NotebookRun]) -> str:
    import torch

    rows = "\n".join(
        f"| `{r.name}` | {r.seconds:.1f} |"
        if r.seconds == r.seconds
        else f"| `{r.name}` | executed in an earlier run |"
        for r in runs
    )
    total = sum(r.seconds for r in runs if r.seconds == r.seconds)
    changed = ""
    try:  # settings that differ from the profile's file (`diffusets book --set ...`, or a file edited since)
        changes = profile_changes(load_profile(profile.name), profile)
    except ProfileError:
        changes = []
    # paths of the build machine stay out of the book: a changed path setting is named, not shown
    path_keys = ("run_dir:", "data.data_dir:", "data.code_map:", "data.exclude:", "data.subject_id:")
    changes = [c.split(":")[0] + " (a path)" if c.startswith(path_keys) else c for c in changes]
    if changes:
        shown = "; ".join(f"`{c}`" for c in changes[:12]) + (
            f"; ... ({len(changes)} in all)" if len(changes) > 12 else ""
        )
        changed = f"| settings changed from `profiles/{profile.name}.yaml` | {shown} |\n"
    return f"""# About this build

This book was built by `diffusets book --profile {profile.name}` on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC.
Every figure and number in it comes from the notebooks executed for this build; nothing was typed by hand.

| | |
|---|---|
| profile | `{profile.name}`: {profile.description} |
{changed}| seed | {profile.seed} |
| data source | `{profile.data.source}` (n = {profile.data.n}) |
| text embedder | `{profile.text.backend}` / prompt mode `{profile.text.prompt_mode}` |
| diffusets_core | {__version__} |
| Python / torch | {platform.python_version()} / {torch.__version__} |
| machine | {platform.machine()}, {platform.system()} {platform.release()} |

Notebook execution wall time (seconds):

| notebook | seconds |
|---|---|
{rows}
| **total** | **{total:.1f}** |
"""


def stage_book(profile: Profile, run_dir: Path, runs: Sequence[NotebookRun]) -> Path:
    """Assemble the book sources (config, toc, chapters, executed notebooks) in ``<run_dir>/book_src``."""
    stage = run_dir / BOOK_SRC_DIR
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "_config.yml", stage / "_config.yml")
    shutil.copy2(REPO_ROOT / "_toc.yml", stage / "_toc.yml")
    shutil.copytree(REPO_ROOT / "book", stage / "book")
    for page in (stage / "book").rglob("*.md"):
        try:
            page.write_text(filter_profile_text(page.read_text(), profile.name))
        except ValueError as exc:
            raise ValueError(f"{page.relative_to(stage)}: {exc}") from None
    # the GPU figures: tables from the results files under book/measured/, else "not yet measured on a GPU"
    try:
        gpu_budget = load_profile("gpu").budget_minutes
    except ProfileError:
        gpu_budget = None
    measured = stage / "book" / "measured"
    measured.mkdir(parents=True, exist_ok=True)
    (measured / GPU_PAGE_FILE).write_text(gpu_measurements_page(measured, budget_minutes=gpu_budget))
    (stage / "notebooks").mkdir()
    paths = PathDisplay.for_run(profile, run_dir)
    for r in runs:
        render_for_book(r.output, stage / "notebooks" / r.output.name, profile=profile.name, paths=paths)
    (stage / "book" / "build_info.md").write_text(_build_info(profile, run_dir, runs))
    _write_toc(stage, [r.name for r in runs])
    # files copied as they are into the built HTML (_config.yml: html_extra_path): the pre-rendered ECG explorer that
    # chapter 10 writes to <run_dir>/explorer lands at _build/html/explorer/index.html
    (stage / EXTRA_DIR).mkdir()
    if (run_dir / EXPLORER_DIR / "index.html").is_file():
        shutil.copytree(run_dir / EXPLORER_DIR, stage / EXTRA_DIR / "explorer")
    return stage


ONLY_PROFILE_TAG = "only-profile-"
_ONLY_OPEN = re.compile(r"^\s*<!--\s*only-profile:\s*([\w.,\s-]+?)\s*-->\s*$")
_ONLY_CLOSE = re.compile(r"^\s*<!--\s*/only-profile\s*-->\s*$")


def filter_profile_text(text: str, profile: str) -> str:
    """``text`` (Markdown) with each ``<!-- only-profile: a, b -->`` ... ``<!-- /only-profile -->`` block kept only
    when ``profile`` is one of the names, and the marker lines removed. Raises ``ValueError`` on a block left open,
    a nested block or a close without an open (a typo must not silently publish or hide text)."""
    out: list[str] = []
    keep: bool | None = None  # None: outside a block
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        opened, closed = _ONLY_OPEN.match(line), _ONLY_CLOSE.match(line)
        if opened:
            if keep is not None:
                raise ValueError(f"line {n}: only-profile block opened inside another")
            keep = profile in {p.strip() for p in opened.group(1).split(",")}
        elif closed:
            if keep is None:
                raise ValueError(f"line {n}: <!-- /only-profile --> without an opening marker")
            keep = None
        elif keep is None or keep:
            out.append(line)
    if keep is not None:
        raise ValueError("an only-profile block is not closed")
    return "".join(out)


@dataclass(frozen=True)
class PathDisplay:
    """How absolute paths of the build machine are shown in the book: ``(absolute, shown)`` pairs, longest first.

    The run directory becomes its path relative to the repository (``runs/cpu``) when it lies inside the
    repository, else ``runs/<profile>`` (where ``diffusets book --profile <profile>`` puts it by default); any other
    path inside the repository becomes relative to it, and the home directory becomes ``~``.
    """

    pairs: tuple[tuple[str, str], ...]
    run_dir_shown: str

    @classmethod
    def for_run(
        cls, profile: Profile, run_dir: Path, repo_root: Path = REPO_ROOT, home: Path | None = None
    ) -> PathDisplay:
        run_dir, repo_root = Path(run_dir), Path(repo_root)
        try:
            shown = Path(run_dir).resolve().relative_to(repo_root.resolve()).as_posix()
        except ValueError:
            shown = f"runs/{profile.name}"
        home = Path.home() if home is None else Path(home)
        pairs: dict[str, str] = {}
        for p in (run_dir, run_dir.resolve()):
            pairs[str(p)] = shown
        for p in (repo_root, repo_root.resolve()):
            pairs[str(p) + "/"] = ""
            pairs[str(p)] = "."
        if str(home) not in ("/", ""):
            pairs[str(home)] = "~"
        return cls(tuple(sorted(pairs.items(), key=lambda kv: -len(kv[0]))), shown)

    def __call__(self, text: str) -> str:
        """``text`` with every known absolute path replaced by its display form. A path matches only as a whole:
        not preceded by a path character and, unless it ends with ``/``, followed by ``/`` or a character that
        cannot continue a file name (``/work/main`` is not rewritten inside ``/work/main2`` or base64 data)."""
        for absolute, shown in self.pairs:
            if absolute in text:
                end = "" if absolute.endswith("/") else r"(?![\w+=-]|\.\w)"
                text = re.sub(r"(?<![\w./+-])" + re.escape(absolute) + end, lambda _m, s=shown: s, text)
        return text


def _assignments(source: str) -> list[tuple[str, int, int, str, str]]:
    """``(name, first line, last line, value source, trailing comment)`` of each top-level ``name = value`` (or
    ``name: type = value``) in
    ``source`` (lines 1-based; the comment, ``""`` when none, is what follows the value on its last line)."""
    import ast

    lines = source.splitlines()
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target, node.value  # an annotated parameter (``x: float | str = "auto"``)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0], node.value
        else:
            continue
        last = node.end_lineno or node.lineno
        # ast column offsets count UTF-8 bytes, not characters
        tail = lines[last - 1].encode()[node.end_col_offset :].decode() if node.end_col_offset is not None else ""
        rest = tail.strip()
        segment = ast.get_source_segment(source, value) or ""
        out.append((target.id, node.lineno, last, segment, rest if rest.startswith("#") else ""))
    return out


PARAMETERS_HEADER = "# Parameters of this build (the profile's values, injected by papermill)"


def merge_parameter_cells(defaults: str, injected: str, paths: PathDisplay | None = None) -> str:
    """One parameters cell showing the values a chapter ran with.

    ``defaults`` is the notebook's ``parameters`` cell, ``injected`` papermill's ``injected-parameters`` cell. Each
    assignment of the defaults keeps its place and comment, with the injected value where papermill set one;
    names only papermill set are appended; a leading ``# Parameters ...`` comment becomes
    :data:`PARAMETERS_HEADER`; injected values pass through ``paths`` (machine paths -> repository-relative).
    """
    given = {name: paths(value) if paths is not None else value for name, _, _, value, _ in _assignments(injected)}
    declared = _assignments(defaults)
    lines = defaults.splitlines()
    out: list[str] = []
    pos = 0
    for name, first, last, _, comment in declared:
        out.extend(lines[pos : first - 1])
        pos = last
        if name not in given:
            out.extend(lines[first - 1 : last])
            continue
        new = f"{name} = {given[name]}"
        if comment:
            width = len(lines[last - 1]) - len(comment)  # keep the comment's column where the value fits
            new = f"{new.ljust(width)}{comment}" if len(new) < width else f"{new}  {comment}"
        out.append(new)
    out.extend(lines[pos:])
    names = {d[0] for d in declared}
    out.extend(f"{name} = {value}" for name, value in given.items() if name not in names)
    while out and (not out[0].strip() or out[0].lstrip().startswith("# Parameters")):
        out.pop(0)
    return "\n".join([PARAMETERS_HEADER] + out)


def _scrub(obj, paths: PathDisplay):
    """Every string inside ``obj`` (nested dicts/lists, as in notebook JSON) passed through ``paths``, except
    base64 images (``image/png`` ... output data), which carry no path and must stay byte-exact."""
    if isinstance(obj, str):
        return paths(obj)
    if isinstance(obj, list):
        return [_scrub(v, paths) for v in obj]
    if isinstance(obj, dict):
        return {k: v if k.startswith("image/") and k != "image/svg+xml" else _scrub(v, paths) for k, v in obj.items()}
    return obj


def render_for_book(executed: Path, dest: Path, *, profile: str, paths: PathDisplay) -> Path:
    """Write the page version of an executed notebook to ``dest`` (``executed`` is not changed).

    * the ``parameters`` and ``injected-parameters`` cells become one cell with the values used
      (:func:`merge_parameter_cells`), tagged ``hide-input`` as well as ``parameters``;
    * cells tagged ``only-profile-<name>`` are dropped unless ``profile`` is one of their names, and Markdown cells
      pass through :func:`filter_profile_text`;
    * every string of the notebook (sources, outputs, metadata) passes through ``paths``, so no absolute path of
      the build machine reaches the HTML or the downloadable ``.ipynb``.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    cells = []
    tags_of = [c.metadata.get("tags", []) for c in nb.cells]
    injected = next((c for c, t in zip(nb.cells, tags_of) if "injected-parameters" in t), None)
    for index, (cell, tags) in enumerate(zip(nb.cells, tags_of)):
        only = [t[len(ONLY_PROFILE_TAG) :] for t in tags if t.startswith(ONLY_PROFILE_TAG)]
        if (only and profile not in only) or cell is injected:
            continue
        if cell.cell_type == "markdown":
            try:
                cell.source = filter_profile_text(cell.source, profile)
            except ValueError as exc:
                raise ValueError(f"{executed.name}, cell {index}: {exc}") from None
        if "parameters" in tags and cell.cell_type == "code":
            if injected is not None:
                cell.source = merge_parameter_cells(cell.source, injected.source, paths)
                cell.outputs = injected.get("outputs", [])
                cell.execution_count = injected.get("execution_count")
            cell.metadata["tags"] = list(tags) + ([] if "hide-input" in tags else ["hide-input"])
        cells.append(cell)
    nb.cells = cells
    nb = nbformat.from_dict(_scrub(nb, paths))
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def _write_toc(stage: Path, notebooks: Sequence[str]) -> None:
    """Keep only the notebook chapters this profile executed, so the TOC never points at missing pages."""
    import yaml

    toc_path = stage / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    keep = set(f"notebooks/{n}" for n in notebooks)

    def prune(entries):
        out = []
        for e in entries:
            f = e.get("file")
            if f and f.startswith("notebooks/") and f not in keep:
                continue
            if "sections" in e:
                e = {**e, "sections": prune(e["sections"])}
            out.append(e)
        return out

    for part in toc.get("parts", []):
        part["chapters"] = prune(part.get("chapters", []))
    toc["parts"] = [p for p in toc.get("parts", []) if p["chapters"]]
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))


def build_html(stage: Path, out_dir: Path) -> Path:
    """``jupyter-book build -W --keep-going`` the staged sources; the HTML lands in ``out_dir/_build/html``."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(stage),
        "--path-output",
        str(out_dir),
        "-W",
        "--keep-going",
        "--all",
    ]
    log.info("building: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).splitlines()
        # Sphinx reports the cause (a warning turned error, a config problem) far above the traceback.
        causes = [l for l in lines if re.search(r"WARNING|ERROR|Sphinx error|SphinxError|Exception occurred", l)]
        raise RuntimeError(
            f"jupyter-book build of {stage} failed (exit {proc.returncode}):\n" + "\n".join(causes[:40] or lines[-40:])
        )
    return out_dir / "_build" / "html"


def run_book(
    profile: Profile,
    *,
    run_dir: Path | None = None,
    only: Sequence[str] | None = None,
    build: bool = True,
    out_dir: Path | None = None,
    reprofile: bool = False,
) -> dict:
    """Execute the profile's notebooks in order (``only``: these chapters of it), then build the book. Stops at the
    first failing notebook (:class:`NotebookFailed`).

    Every input is checked before anything is written into ``run_dir``: the chapters (:func:`select_chapters`),
    their ``notebook_params`` (:func:`check_profile_parameters`), the data paths when the data chapter runs
    (:func:`check_data_inputs`), and the run's recorded profile (:func:`~diffusets_core.config.check_run_profile`:
    a run recorded with a profile of another name is refused unless ``reprofile``). Only then is the profile recorded
    in ``run_dir/profile.json`` (rewritten only when a setting changes) and the first chapter run.

    Raises:
        ValueError: a bad input, as above (``ProfileMismatch`` for the recorded profile); nothing was written.
        NotebookFailed: a chapter raised.
    """
    run_dir = profile.resolved_run_dir(run_dir)
    try:
        notebooks = select_chapters(profile, only)
    except ValueError as exc:
        raise ValueError(f"only: {exc}" if only else str(exc)) from None
    check_profile_parameters(profile, notebooks)
    check_data_inputs(profile, notebooks)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run directory {run_dir} is a file, not a folder")
    recorded = check_run_profile(run_dir, profile, reprofile=reprofile)
    if recorded is None or profile_changes(recorded, profile):
        write_profile_record(run_dir, profile)  # creates run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    runs: list[NotebookRun] = []
    for nb in notebooks:
        print(f"[book] executing {nb} (profile {profile.name}) ...", flush=True)
        r = execute_notebook(profile, nb, run_dir)
        print(f"[book] {nb} done in {r.seconds:.1f} s -> {r.output}", flush=True)
        runs.append(r)
    result = {"run_dir": str(run_dir), "notebooks": {r.name: round(r.seconds, 1) for r in runs}}
    if build:
        # With --only, chapters executed earlier for this run directory still belong in the book.
        done = {r.name for r in runs}
        previous = [
            NotebookRun(nb, float("nan"), run_dir / EXECUTED_DIR / f"{nb}.ipynb")
            for nb in profile.notebooks
            if nb not in done and (run_dir / EXECUTED_DIR / f"{nb}.ipynb").is_file()
        ]
        order = {nb: i for i, nb in enumerate(profile.notebooks)}
        runs = sorted(runs + previous, key=lambda r: order.get(r.name, len(order)))
        stage = stage_book(profile, run_dir, runs)
        html = build_html(stage, (out_dir or REPO_ROOT).resolve())
        result["html"] = str(html)
        print(f"[book] built {html / 'index.html'}", flush=True)
    return result
