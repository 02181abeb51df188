"""Progress of long stages, visible outside the process that runs them.

A notebook executed by papermill runs in a kernel whose output goes into the executed notebook, not to the
terminal of the person who typed ``make book``. Long stages (training) therefore also write a small progress
file, ``<stage dir>/progress.json``, atomically at every logging step; :class:`ProgressFollower`, run by the
book runner beside papermill, follows the newest such file under the run directory and draws a tqdm bar with
the stage, the step, the loss and the time left.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import tqdm

from .fileio import atomic_writer
from .layout import PROGRESS_FILE

__all__ = ["PROGRESS_FILE", "write_progress", "read_progress", "ProgressFollower"]


def write_progress(stage_dir: str | os.PathLike, *, stage: str, step: int, total: int, **info: Any) -> None:
    """Atomically write ``stage_dir/progress.json``: ``stage``, ``step`` of ``total`` and any extra numbers
    (``loss``, ``elapsed_s``, ...), with the wall-clock time of the write. Never raises on I/O errors (progress
    reporting must not break a training run)."""
    path = Path(stage_dir) / PROGRESS_FILE
    rec = {"stage": stage, "step": int(step), "total": int(total), "time": time.time(), **info}
    try:
        # no fsync: a progress file lost in a power cut costs nothing, and it is rewritten every few steps
        with atomic_writer(path, fsync=False) as tmp:
            tmp.write_text(json.dumps(rec, default=float))
    except OSError:
        pass


def read_progress(path: str | os.PathLike) -> dict | None:
    """The record in a progress file, or None if it is missing or half-written."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


class ProgressFollower:
    """Context manager: while it is open, a background thread follows the newest ``*/progress.json`` under
    ``run_dir`` written after the follower started, and shows it as a tqdm bar labelled
    ``<label> · <stage>`` (one bar per stage; tqdm prints plain lines when the output is not a terminal)."""

    def __init__(self, run_dir: str | os.PathLike, label: str, *, interval: float = 2.0):
        self.run_dir, self.label, self.interval = Path(run_dir), label, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None
        self._key: tuple | None = None
        self._last: int | None = None
        self._since = time.time()

    def __enter__(self) -> ProgressFollower:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._poll()
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        recs = [(p, read_progress(p)) for p in self.run_dir.glob(f"*/{PROGRESS_FILE}")]
        recs = [(p, r) for p, r in recs if r and r.get("time", 0) >= self._since]
        if not recs:
            return
        path, rec = max(recs, key=lambda pr: pr[1]["time"])
        key = (str(path), rec.get("started"))
        if key != self._key:
            self._close()
            self._key = key
            # tqdm's own rate and ETA would time the polling, not the stage: the stage reports its own
            self._bar = tqdm.tqdm(
                total=rec["total"],
                desc=f"{self.label} · {rec['stage']}",
                unit="step",
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}",
            )
            self._last = None
        bar = self._bar
        if rec["step"] == self._last:
            return
        self._last = rec["step"]
        bar.n = min(rec["step"], rec["total"])
        post = {}
        if rec.get("loss") is not None:
            post["loss"] = f"{rec['loss']:.4g}"
        if rec.get("eta_s") is not None:
            post["left"] = f"{rec['eta_s'] / 60:.1f} min"
        bar.set_postfix(post, refresh=False)
        bar.refresh()
