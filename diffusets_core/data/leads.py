"""Canonical 12-lead order and mapping of WFDB ``sig_name`` lists onto it.

Every array in the package carries its leads in :data:`CANONICAL_LEADS` order.
Readers never trust a file's channel order: MIMIC-IV-ECG stores aVF before aVL,
PTB Diagnostic uses lower-case names and adds Frank leads (vx, vy, vz). So leads are
always located by *name*, via :func:`lead_indices`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "CANONICAL_LEADS",
    "LeadMappingError",
    "canonical_lead_name",
    "lead_indices",
]

CANONICAL_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

# Normalised spelling -> canonical name. Keys are lower-case with separators removed
# (see _normalise). Aliases cover the spellings seen in public 12-lead datasets:
# Roman numerals in any case, "lead II", the Spanish/Portuguese "DI/DII/DIII", and the
# European chest-lead names C1..C6. "MLII" (modified lead II of ambulatory Holter
# records, e.g. MIT-BIH) is deliberately NOT mapped: its electrode placement differs
# from standard limb lead II, so a record built from it is not a standard 12-lead ECG.
_ALIASES: dict[str, str] = {}
for _lead in CANONICAL_LEADS:
    _ALIASES[_lead.lower()] = _lead
for _lead in ("I", "II", "III"):
    _ALIASES["lead" + _lead.lower()] = _lead
    _ALIASES["d" + _lead.lower()] = _lead
for _i in range(1, 7):
    _ALIASES[f"c{_i}"] = f"V{_i}"
    _ALIASES[f"leadv{_i}"] = f"V{_i}"
for _aug in ("avr", "avl", "avf"):
    _ALIASES["lead" + _aug] = "a" + _aug[1:].upper()

_SEPARATORS = re.compile(r"[\s_\-.]+")


class LeadMappingError(ValueError):
    """The channel names cannot be mapped onto the 12 canonical leads."""

    def __init__(self, message: str, missing: Sequence[str] = (), duplicated: Sequence[str] = ()):
        super().__init__(message)
        self.missing = list(missing)
        self.duplicated = list(duplicated)


def _normalise(name: str) -> str:
    return _SEPARATORS.sub("", str(name).strip().lower())


def canonical_lead_name(name: str) -> str | None:
    """Canonical name for a channel name (case-insensitive, aliases allowed), or None."""
    return _ALIASES.get(_normalise(name))


def lead_indices(sig_names: Sequence[str]) -> list[int]:
    """Column indices that put ``sig_names`` into canonical order.

    Channels that are not one of the 12 standard leads (e.g. vx/vy/vz) are ignored.

    Raises:
        LeadMappingError: if any canonical lead is missing, or two channels map onto the
            same lead (ambiguous: we refuse rather than pick one silently).
    """
    found: dict[str, int] = {}
    duplicated: list[str] = []
    for idx, name in enumerate(sig_names):
        canon = canonical_lead_name(name)
        if canon is None:
            continue
        if canon in found:
            duplicated.append(canon)
            continue
        found[canon] = idx
    missing = [lead for lead in CANONICAL_LEADS if lead not in found]
    if missing or duplicated:
        parts = []
        if missing:
            parts.append(f"missing lead(s) {', '.join(missing)}")
        if duplicated:
            parts.append(f"lead(s) {', '.join(sorted(set(duplicated)))} appear more than once")
        raise LeadMappingError(
            f"cannot map channels {list(sig_names)} onto the 12 standard leads: " + "; ".join(parts),
            missing=missing,
            duplicated=duplicated,
        )
    return [found[lead] for lead in CANONICAL_LEADS]
