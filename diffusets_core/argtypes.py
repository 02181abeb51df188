"""Checked ``argparse`` value types shared by the command line's sub-commands (base layer: imports nothing else).

A count that cannot be meant (``--max-steps 0``, ``--steps -2``) is refused while the command line is parsed, so
the command stops before it writes anything into a run; argparse names the option in its message
(``argument --steps: expected a whole number >= 1, got '0'``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["int_at_least", "positive_int", "nonnegative_int", "positive_int_range", "nonnegative_float", "device_spec"]


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= low`` (``1e3`` is not an integer here: counts are typed as
    digits on a command line)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value

    parse.__name__ = f"whole number >= {low}"  # what argparse prints for a value it cannot convert
    return parse


#: Counts of things to do (steps, records, batches): at least 1.
positive_int = int_at_least(1)
#: Counts where 0 means "none" or "in this process" (``--workers 0``, ``--n-tstr 0``).
nonnegative_int = int_at_least(0)


def positive_int_range(text: str) -> tuple[int, int]:
    """An argparse ``type`` for a count or a range of counts, ``"k"`` -> ``(k, k)`` or ``"lo-hi"`` -> ``(lo, hi)``
    with ``1 <= lo <= hi`` (``cohort --records-per-subject 3-5``)."""
    what = f"expected a whole number >= 1 or a range lo-hi with 1 <= lo <= hi, got {text!r}"
    try:
        parts = [int(x) for x in text.strip().split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(what) from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] < 1 or parts[0] > parts[1]:
        raise argparse.ArgumentTypeError(what)
    return parts[0], parts[1]


positive_int_range.__name__ = "count or range lo-hi"


def nonnegative_float(text: str) -> float:
    """An argparse ``type`` for a finite number ``>= 0`` (e.g. a guidance scale)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def device_spec(text: str) -> str:
    """An argparse ``type`` for a torch device (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) that this machine
    has: see :func:`diffusets_core.device.check_device`. Returns the text unchanged."""
    from .device import check_device  # torch: imported only when a --device is given

    try:
        check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
