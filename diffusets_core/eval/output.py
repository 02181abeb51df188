"""How the benchmark's results are written: each table as CSV and JSON records, the run parameters as
``benchmark.json`` (all written atomically through :mod:`diffusets_core.fileio`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..fileio import atomic_write_text, atomic_writer

__all__ = ["json_default", "write_table", "write_json"]


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: numpy integers / floats as Python numbers (non-finite floats as null), arrays as
    lists, anything else as its ``str``."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_table(out: Path, name: str, df: pd.DataFrame) -> None:
    """``out/<name>.csv`` (no index) and ``out/<name>.json`` (a list of records, 6 significant decimals)."""
    with atomic_writer(out / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)
    recs = json.loads(df.to_json(orient="records", double_precision=6))
    atomic_write_text(out / f"{name}.json", json.dumps(recs, indent=1, default=json_default))


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON (numpy values through :func:`json_default`), no trailing newline."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=json_default))
