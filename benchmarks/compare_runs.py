"""Are two run directories the same? Every table, array and checkpoint compared, timings and paths ignored.

    python benchmarks/compare_runs.py runs/smoke /tmp/other-run/smoke

The check behind "behaviour unchanged" for a refactor: build the smoke book before and after
(`diffusets book --profile smoke --run-dir DIR --no-build`) and compare the two run directories. CSV columns are
compared with ``numpy.isclose`` (rtol 1e-9) and text exactly; JSON values recursively; ``.npy`` arrays and every
tensor in a ``.pt`` checkpoint exactly. Skipped: ``executed/`` (notebooks with timings), the book staging folder,
embedding-cache segment files (their names carry timestamps), ``progress.json``, ``timings.csv``, and any column or
key whose name says it is a time, a path or a version. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

SKIP_DIRS = {"executed", "cache", "book_src"}
SKIP_FILES = {"progress.json", "timings.csv"}
VOLATILE = (
    "time",
    "seconds",
    "elapsed",
    "wall",
    "_s",
    "started",
    "eta",
    "date",
    "path",
    "dir",
    "created",
    "host",
    "version",
    "commit",
    "torch",
    "python",
    "platform",
    "html",
)


def volatile(key: Any) -> bool:
    """Whether a column / key name denotes a timing, a path or a version (not compared)."""
    return any(v in str(key).lower() for v in VOLATILE)


def compare_json(a: Any, b: Any, where: str) -> list[str]:
    """Differences between two parsed JSON values, as ``where: a vs b`` lines (floats to 1e-9 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if volatile(k):
                continue
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in one")
            else:
                out += compare_json(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_json(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, (int, float)):
        same = a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(a))
        return [] if same else [f"{where}: {a} vs {b}"]
    return [] if a == b else [f"{where}: {str(a)[:80]} vs {str(b)[:80]}"]


def compare_csv(fa: Path, fb: Path) -> list[str]:
    da, db = pd.read_csv(fa), pd.read_csv(fb)
    if list(da.columns) != list(db.columns) or da.shape != db.shape:
        return [f"shape/columns {da.shape} vs {db.shape}"]
    for c in (c for c in da.columns if not volatile(c)):
        x, y = da[c], db[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xa, ya = x.to_numpy(float), y.to_numpy(float)
            close = np.isclose(xa, ya, rtol=1e-9, atol=1e-12, equal_nan=True)
            if not close.all():
                i = int(np.argmin(close))
                return [f"column {c}, row {i}: {xa[i]} vs {ya[i]}"]
        elif not x.astype(str).equals(y.astype(str)):
            return [f"column {c}: text differs"]
    return []


def _tensors(obj: Any, prefix: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")
    elif isinstance(obj, torch.Tensor):
        yield prefix, obj


def compare_checkpoint(fa: Path, fb: Path) -> list[str]:
    ta = dict(_tensors(torch.load(fa, weights_only=True, map_location="cpu")))
    tb = dict(_tensors(torch.load(fb, weights_only=True, map_location="cpu")))
    diff = [k for k in ta if not (k in tb and ta[k].shape == tb[k].shape and torch.equal(ta[k], tb[k]))]
    diff += [k for k in tb if k not in ta]
    return [f"{len(diff)} tensors differ, e.g. {diff[:3]}"] if diff else []


def compare_file(fa: Path, fb: Path) -> list[str] | None:
    """Differences between two files of the same name; ``None`` for a kind that is not compared."""
    if fa.suffix == ".csv":
        return compare_csv(fa, fb)
    if fa.suffix == ".json":
        return compare_json(json.loads(fa.read_text()), json.loads(fb.read_text()), "")[:5]
    if fa.suffix == ".npy":
        x, y = np.load(fa), np.load(fb)
        return [] if x.shape == y.shape and np.array_equal(x, y, equal_nan=True) else ["arrays differ"]
    if fa.suffix == ".pt":
        return compare_checkpoint(fa, fb)
    if fa.suffix in (".txt", ".md", ".html", ".yaml"):
        return [] if fa.read_bytes() == fb.read_bytes() else ["text differs"]
    return None


def compare_runs(a: Path, b: Path) -> tuple[int, list[str]]:
    """``(files identical, difference lines)`` over the files of ``a`` (and those missing from ``b``)."""
    same, bad = 0, []
    for fa in sorted(a.rglob("*")):
        rel = fa.relative_to(a)
        if fa.is_dir() or SKIP_DIRS & set(rel.parts) or fa.name.startswith(".") or fa.name in SKIP_FILES:
            continue
        fb = b / rel
        if not fb.exists():
            bad.append(f"{rel}: missing in {b}")
            continue
        diff = compare_file(fa, fb)
        if diff is None:
            continue
        same += not diff
        bad += [f"{rel}: {d}" for d in diff]
    return same, bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    args = ap.parse_args()
    same, bad = compare_runs(args.run_a, args.run_b)
    _, missing = compare_runs(args.run_b, args.run_a)
    bad += [m for m in missing if "missing in" in m]
    print(f"{same} files identical")
    print("\n".join(bad) if bad else "no differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
