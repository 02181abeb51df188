"""Wall-clock time per stage of an evaluation (the benchmark's ``timings`` table)."""

from __future__ import annotations

import logging
import time

import pandas as pd

__all__ = ["StageTimer"]

log = logging.getLogger(__name__)


class StageTimer:
    """Call :meth:`lap` at the end of each stage: one row per stage with the seconds since the previous lap (or
    since the timer was made) and how many items the stage handled."""

    def __init__(self, name: str = "evaluate_run"):
        self.name = name
        self.rows: list[dict] = []
        self._t0 = time.perf_counter()

    def lap(self, stage: str, n: int = 0) -> None:
        """Record ``stage`` (``n`` items) and restart the clock."""
        now = time.perf_counter()
        self.rows.append({"stage": stage, "seconds": round(now - self._t0, 3), "n": n})
        log.info("%s: %s %.1fs", self.name, stage, now - self._t0)
        self._t0 = now

    def table(self) -> pd.DataFrame:
        """The rows so far as a DataFrame (stage, seconds, n)."""
        return pd.DataFrame(self.rows)
