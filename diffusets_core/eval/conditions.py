"""Which test records the benchmark evaluates: a seeded, optionally class-stratified selection
(:func:`select_test_records`), topped up with repeats of a class's own conditions (:func:`top_up_conditions`),
gathered with their real ECGs, report vectors, labels and sampling seeds (:func:`select_conditions`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .splits import EvalSplits

__all__ = ["REAL_SOURCES", "EvaluatedConditions", "select_test_records", "top_up_conditions", "select_conditions"]

#: Sets made of the real test ECGs themselves (as recorded, or through the autoencoder): a repeated condition is
#: not a new real sample, so their rows count each real ECG once.
REAL_SOURCES = ("real", "vae")


def select_test_records(labels: np.ndarray, n_eval: int | None, n_per_class: int | None, rng) -> np.ndarray:
    """Indices of the evaluated test records: up to ``n_per_class`` carrying each class (seeded), then capped /
    filled to ``n_eval`` at random; all records when both are None. Sorted. ``labels``: (N, n_classes);
    ``rng``: a ``numpy.random.Generator`` (one permutation is drawn)."""
    n = len(labels)
    perm = rng.permutation(n)
    if n_per_class is None:
        chosen = list(perm if n_eval is None else perm[:n_eval])
        return np.sort(np.asarray(chosen, dtype=np.int64))
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for c in range(labels.shape[1]):
        have = [int(i) for i in perm if labels[i, c] == 1 and not taken[i]]
        already = int(((labels[:, c] == 1) & taken).sum())
        for i in have[: max(0, n_per_class - already)]:
            taken[i] = True
            chosen.append(i)
    if n_eval is not None:
        if len(chosen) > n_eval:
            chosen = chosen[:n_eval]
        else:
            chosen += [int(i) for i in perm if not taken[i]][: n_eval - len(chosen)]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def top_up_conditions(sel: np.ndarray, labels: np.ndarray, min_per_class: int) -> np.ndarray:
    """``sel`` followed by repeats of its own records, class by class in order, until every class present in
    ``labels[sel]`` has at least ``min_per_class`` conditions (a repeated condition is generated again with its
    own seed, an independent sample; the real ECG behind it is counted once). Returns ``sel`` unchanged for
    ``min_per_class`` <= 0."""
    out = [int(i) for i in sel]
    if min_per_class <= 0:
        return np.asarray(out, dtype=np.int64)
    for c in range(labels.shape[1]):
        have = [i for i in sel if labels[i, c] == 1]
        count = sum(labels[i, c] == 1 for i in out)
        k = 0
        while have and count < min_per_class:
            out.append(int(have[k % len(have)]))
            count += 1
            k += 1
    return np.asarray(out, dtype=np.int64)


@dataclass
class EvaluatedConditions:
    """The benchmark's conditions: row i is test record ``index[i]`` (repeats allowed), generated with seed
    ``seed + i``."""

    index: np.ndarray  # (M,) row of each condition in the test split
    first: np.ndarray  # (M,) bool: the first occurrence of each test record (its real ECG counted once)
    records: pd.DataFrame  # (M rows) the conditions' test records (record_id, report, age, sex, hr, ...)
    signals: np.ndarray  # (M, 12, L) mV their real ECGs
    vectors: np.ndarray  # (M, D) their report vectors
    labels: np.ndarray  # (M, len(classes)) their requested classes
    classes: list[str]
    table: pd.DataFrame  # the ``conditions`` table: record_id, report, age, sex, hr, seed, classes
    reworded_shares: dict = field(default_factory=dict)  # request kind -> share of statements reworded

    @property
    def requested_hr(self) -> np.ndarray:
        """(M,) requested heart rate (bpm) of each condition."""
        return self.records["hr"].to_numpy(float)

    @staticmethod
    def is_real(source: str) -> bool:
        """Whether ``source`` is one of :data:`REAL_SOURCES`."""
        return source in REAL_SOURCES

    def once(self, source: str, x: np.ndarray) -> np.ndarray:
        """``x`` (row i for condition i) with each real ECG once when ``source`` is a real-ECG set, else ``x``."""
        return x[self.first] if self.is_real(source) else x


def select_conditions(
    data: EvalSplits, *, n_eval: int | None, n_per_class: int | None, min_per_class: int, seed: int
) -> EvaluatedConditions:
    """The evaluated test conditions of :func:`.report.evaluate_run`: :func:`select_test_records` with
    ``numpy.random.default_rng(seed)``, then :func:`top_up_conditions` to ``min_per_class``."""
    labels, classes = data.labels["test"], data.classes
    sel = top_up_conditions(
        select_test_records(labels, n_eval, n_per_class, np.random.default_rng(seed)), labels, min_per_class
    )
    first = np.zeros(len(sel), dtype=bool)
    first[np.unique(sel, return_index=True)[1]] = True
    test = data.records["test"].iloc[sel].reset_index(drop=True)
    y = labels[sel]
    table = test[["record_id", "report", "age", "sex", "hr"]].copy()
    table["seed"] = seed + np.arange(len(table))
    table["classes"] = ["|".join(c for j, c in enumerate(classes) if y[i, j] == 1) for i in range(len(table))]
    return EvaluatedConditions(
        sel, first, test, data.signals["test"][sel], data.vectors["test"][sel], y, classes, table
    )
