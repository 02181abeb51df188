"""Subject-level, seeded train/val/test assignment.

Each subject gets a pseudo-random key ``sha256(f"{seed}:{subject_id}")``; subjects are
ranked by that key and the first ``round(n * test)`` go to test, the next
``round(n * val)`` to val, the rest to train. So the assignment depends only on the
*set* of subject ids and the seed (never on row order, Python's hash seed or numpy's
global state), the fractions are as exact as integer counts allow, and every record of
a subject shares its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["SPLITS", "assign_splits", "split_records"]

SPLITS = ("train", "val", "test")


def _key(seed: int, subject: str) -> bytes:
    return hashlib.sha256(f"{seed}:{subject}".encode()).digest()


def assign_splits(
    subject_ids: Iterable[str], *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> dict[str, str]:
    """Map each distinct subject id (as str) to ``"train"``, ``"val"`` or ``"test"``.

    With at least 3 subjects, val and test each get at least one subject when their
    fraction is positive, so small runs still have something to validate on.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    subjects = sorted({str(s) for s in subject_ids}, key=lambda s: (_key(seed, s), s))
    n = len(subjects)
    _, f_val, f_test = fractions

    def count(f: float) -> int:
        k = int(round(n * f))
        if f > 0 and n >= 3:
            k = max(k, 1)
        return k

    n_test = count(f_test)
    n_val = min(count(f_val), n - n_test)
    out: dict[str, str] = {}
    for i, s in enumerate(subjects):
        out[s] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def split_records(subject_of_record: Mapping[str, str], **kwargs) -> dict[str, str]:
    """record_id -> split, given record_id -> subject_id (kwargs as for assign_splits)."""
    by_subject = assign_splits(subject_of_record.values(), **kwargs)
    return {rid: by_subject[str(sid)] for rid, sid in subject_of_record.items()}
