"""The book's GPU figures, rendered only from results files under ``book/measured/`` (never typed by hand).

``benchmarks/gpu_check.py`` writes two files there, each with one header row and the columns below:

* :data:`GPU_CHECK_FILE` (``gpu_check.csv``), :data:`GPU_CHECK_COLUMNS`: one row per check made on one CUDA machine
  (``check`` = ``tests``, ``train``, ``sample``, ``ddp`` or ``reference``); ``value`` is in ``unit`` (samples/s for
  training, ECGs/s for sampling); ``model`` is ``unet_paper``, ``vae_paper``, ``unet_paper+vae_paper`` or
  ``unet_reference`` (the authors' U-Net, imported from a clone given to ``--reference-dir``); ``precision`` is
  ``fp32`` or ``bf16`` (autocast); ``batch`` and ``steps`` (timed steps for training, sampler steps for sampling);
  ``peak_gib`` the peak GPU memory; ``device``, ``torch``, ``cuda``, ``commit`` and ``measured_utc`` say where and
  when; ``mode`` is ``full`` (``--smoke`` rows are CPU plumbing checks and are refused here).
* :data:`GPU_TIMES_FILE` (``gpu_profile_times.csv``), :data:`GPU_TIMES_COLUMNS`: one row per chapter of a complete
  ``make book PROFILE=gpu`` run with the profile's own settings, its seconds as papermill recorded them, the GPU the
  run trained on (``python benchmarks/gpu_check.py --book-times runs/gpu``).

:func:`gpu_measurements_page` turns them into Markdown: a table where a file exists, otherwise a statement that the
figure is not yet measured on a GPU. ``diffusets book`` writes it into the staged book as
``book/measured/gpu_measurements.md``, which ``book/reproducibility.md`` includes.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = [
    "GPU_CHECK_COLUMNS",
    "GPU_CHECK_FILE",
    "GPU_PAGE_FILE",
    "GPU_TIMES_COLUMNS",
    "GPU_TIMES_FILE",
    "MeasuredFileError",
    "gpu_measurements_page",
    "read_measured",
]

GPU_CHECK_FILE = "gpu_check.csv"
GPU_TIMES_FILE = "gpu_profile_times.csv"
#: the generated page (staged book only; not a file of the repository)
GPU_PAGE_FILE = "gpu_measurements.md"
GPU_CHECK_COLUMNS: tuple[str, ...] = (
    "check",
    "what",
    "model",
    "precision",
    "batch",
    "steps",
    "value",
    "unit",
    "peak_gib",
    "detail",
    "device",
    "torch",
    "cuda",
    "commit",
    "measured_utc",
    "mode",
)
GPU_TIMES_COLUMNS: tuple[str, ...] = (
    "chapter",
    "seconds",
    "device",
    "torch",
    "cuda",
    "commit",
    "measured_utc",
    "profile",
)
NOT_MEASURED = "**Not yet measured on a GPU.**"


class MeasuredFileError(ValueError):
    """A results file under ``book/measured/`` that the book cannot show (wrong columns, smoke rows, bad numbers)."""


def read_measured(path: str | os.PathLike, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a results file with exactly ``columns`` (in any order). Raises :class:`MeasuredFileError` naming
    the file for missing or unknown columns, an empty file, or rows a ``--smoke`` run wrote."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        rows = list(reader)
    missing = [c for c in columns if c not in header]
    unknown = [c for c in header if c not in columns]
    if missing or unknown:
        raise MeasuredFileError(
            f"{path}: columns {list(header)} are not the documented ones {list(columns)} "
            f"(missing {missing}, unknown {unknown}); rewrite it with benchmarks/gpu_check.py"
        )
    if not rows:
        raise MeasuredFileError(f"{path}: no rows; delete it or rewrite it with benchmarks/gpu_check.py")
    smoke = [r for r in rows if r.get("mode", "full") != "full"]
    if smoke:
        raise MeasuredFileError(
            f"{path}: {len(smoke)} row(s) with mode {smoke[0].get('mode')!r}: a --smoke run's rows are CPU plumbing "
            "checks, not GPU measurements; delete the file or rerun gpu_check.py on a CUDA machine"
        )
    return rows


def _number(path: Path, row: dict[str, str], key: str) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise MeasuredFileError(f"{path}: column {key!r} holds {text!r}, not a number") from None


def _fmt(v: float | None, digits: int = 0) -> str:
    return "" if v is None else f"{v:,.{digits}f}"


def _provenance(rows: list[dict[str, str]], source: str) -> str:
    first = rows[0]
    parts = [f"on {first.get('device') or 'an unnamed device'}"]
    if first.get("torch"):
        parts.append(f"torch {first['torch']}")
    if first.get("cuda"):
        parts.append(f"CUDA {first['cuda']}")
    if first.get("commit"):
        parts.append(f"commit `{first['commit']}`")
    if first.get("measured_utc"):
        parts.append(first["measured_utc"] + " UTC")
    return f"Measured {', '.join(parts)} by `{source}`."


def _check_section(measured: Path) -> str:
    path = measured / GPU_CHECK_FILE
    head = "### Training and sampling speed on one GPU\n\n"
    if not path.is_file():
        return head + (
            f"{NOT_MEASURED} `python benchmarks/gpu_check.py` on a CUDA machine writes `book/measured/{GPU_CHECK_FILE}` "
            "and this section then shows its table: training samples/s of the paper-size VAE and U-Net in fp32 and "
            "under bf16 autocast, sampling ECGs/s with DDPM-1000, DDIM-50 and DPM-Solver++-20 (U-Net and VAE "
            "decoding), a `torchrun` DistributedDataParallel run over NCCL, the CUDA tests, and the peak GPU memory "
            "of each. It needs only PyTorch on that machine (no wfdb, neurokit2 or papermill).\n"
        )
    rows = [r for r in read_measured(path, GPU_CHECK_COLUMNS) if r["check"] != "reference"]
    if not rows:
        raise MeasuredFileError(
            f"{path}: only 'reference' rows; the gpu_check.py run that wrote it made no other check"
        )
    lines = ["| check | what | result | peak GPU memory |", "|---|---|---|---|"]
    for r in rows:
        value = _number(path, r, "value")
        peak = _number(path, r, "peak_gib")
        result = f"{_fmt(value, 1 if value is not None and value < 100 else 0)} {r['unit']}".strip()
        if r.get("detail"):
            result = f"{result} ({r['detail']})" if result else r["detail"]
        lines.append(f"| {r['check']} | {r['what']} | {result} | {'' if peak is None else f'{peak:.2f} GiB'} |")
    return head + _provenance(rows, "python benchmarks/gpu_check.py") + "\n\n" + "\n".join(lines) + "\n"


def _times_section(measured: Path, budget_minutes: float | None) -> str:
    path = measured / GPU_TIMES_FILE
    head = "### The gpu profile's chapter times\n\n"
    budget = (
        f"The profile's budget, `budget_minutes: {budget_minutes:g}` in `profiles/gpu.yaml`, is an estimate made by "
        "arithmetic from CPU measurements (the file shows how), not a measurement."
        if budget_minutes is not None
        else "The profile's time is an estimate, not a measurement (`profiles/gpu.yaml`)."
    )
    if not path.is_file():
        return head + (
            f"{NOT_MEASURED} {budget} After a complete `make book PROFILE=gpu` on a GPU, "
            f"`python benchmarks/gpu_check.py --book-times runs/gpu` writes `book/measured/{GPU_TIMES_FILE}` and this "
            "section then shows each chapter's measured time.\n"
        )
    rows = read_measured(path, GPU_TIMES_COLUMNS)
    lines = ["| chapter | minutes |", "|---|---|"]
    total = 0.0
    for r in rows:
        s = _number(path, r, "seconds")
        if s is None:
            raise MeasuredFileError(f"{path}: chapter {r['chapter']!r} has no seconds")
        total += s
        lines.append(f"| `{r['chapter']}` | {s / 60:.1f} |")
    lines.append(f"| **total** | **{total / 60:.1f}** |")
    return (
        head
        + _provenance(rows, "python benchmarks/gpu_check.py --book-times")
        + f" {budget}\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _reference_section(measured: Path) -> str:
    path = measured / GPU_CHECK_FILE
    head = "### The paper U-Net's training step against the authors' implementation\n\n"
    rows = read_measured(path, GPU_CHECK_COLUMNS) if path.is_file() else []
    ref = [r for r in rows if r["check"] == "reference"]
    ours = {(r["precision"], r["batch"]): r for r in rows if r["check"] == "train" and r["model"] == "unet_paper"}
    pairs = [(ours[(r["precision"], r["batch"])], r) for r in ref if (r["precision"], r["batch"]) in ours]
    if not pairs:
        return head + (
            f"{NOT_MEASURED} `python benchmarks/gpu_check.py --reference-dir DIR`, with DIR a clone of the authors' "
            "code (their U-Net is imported from it at run time; none of it is stored here), times the authors' U-Net "
            "and ours on the same GPU with the same batch and loss, in fp32 and under bf16 autocast; this section then "
            "shows both and their ratio.\n"
        )
    lines = [
        "| precision | batch | ours (samples/s) | authors' (samples/s) | ours / authors' | peak memory, ours / authors' |",
        "|---|---|---|---|---|---|",
    ]
    for o, r in pairs:
        vo, vr = _number(path, o, "value"), _number(path, r, "value")
        po, pr = _number(path, o, "peak_gib"), _number(path, r, "peak_gib")
        ratio = f"{vo / vr:.2f}" if vo and vr else ""
        mem = f"{_fmt(po, 2)} / {_fmt(pr, 2)} GiB" if po is not None and pr is not None else ""
        lines.append(f"| {o['precision']} | {o['batch']} | {_fmt(vo)} | {_fmt(vr)} | {ratio} | {mem} |")
    return (
        head
        + _provenance([p[0] for p in pairs], "python benchmarks/gpu_check.py --reference-dir")
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )


def gpu_measurements_page(measured_dir: str | os.PathLike, *, budget_minutes: float | None = None) -> str:
    """Markdown for the book: the three GPU figures from ``measured_dir``'s results files, each one either a table
    read from its file or the statement that it is not yet measured on a GPU. ``budget_minutes``: the gpu profile's
    (estimated) budget, quoted as a setting. Raises :class:`MeasuredFileError` for a file the page cannot show."""
    measured = Path(measured_dir)
    return "\n".join(
        [
            "<!-- generated by diffusets_core.measured from the files in book/measured/; do not edit -->",
            _check_section(measured),
            _times_section(measured, budget_minutes),
            _reference_section(measured),
        ]
    )
