"""Building a settings dataclass from a mapping (a profile block, a chapter's parameters, a JSON record), refusing
keys it does not have: the one rule every ``*Config.from_dict`` of the package follows (base layer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

__all__ = ["dataclass_from_dict"]

_T = TypeVar("_T")


def dataclass_from_dict(cls: type[_T], d: Mapping[str, Any]) -> _T:
    """``cls(**d)``: the defaults with the settings of ``d`` applied.

    Raises:
        ValueError: ``d`` has keys that are not fields of ``cls`` ("unknown <Class> fields: [...]; allowed: [...]").
    """
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}; allowed: {sorted(names)}")
    return cls(**d)
