"""Canonical 12-lead order and mapping of WFDB ``sig_name`` lists onto it.

Every array in the package carries its leads in :data:`CANONICAL_LEADS` order.
Readers never trust a file's channel order: MIMIC-IV-ECG stores aVF before aVL,
PTB Diagnostic uses lower-case names and adds Frank leads (vx, vy, vz). So leads are
always located by *name*, via :func:`map_leads` (or :func:`lead_indices`). A model that works in another
order (the authors' released VAE: :data:`MIMIC_FILE_LEADS`; book/reference_implementation.md#lead-order) converts
at its boundary with :func:`reorder_leads`.

How a label is read (:func:`parse_lead_label`), in this order:

1. Unicode is normalised (NFKC) and the typographic minus/dashes (U+2212, U+2010-U+2014)
   become ``-``; surrounding spaces are dropped.
2. A trailing bracketed part is removed (``"II (mV)"``, ``"Lead I (Einthoven)"``, ``"V1 [C1]"``);
   if it says ``inverted``/``inv``/``neg``/``negative`` the polarity flips.
3. A trailing unit (``mV``, ``uV``) and a leading system prefix are removed: ``ECG``, ``EKG``,
   ``Lead``, ``Ableitung``, ``Derivacion``/``Derivación`` and HL7 aECG's ``MDC_ECG_LEAD_``
   (ISO/IEEE 11073-10101). A ``-`` written *directly* after a prefix (``ECG-II``, ``MDC_ECG_LEAD_-aVR``
   excepted: see 4) joins, it is not a sign.
4. A leading ``-`` (after optional separators) is a sign: ``-aVR``, ``Lead -aVR`` (DICOM CID 3001,
   SCP-ECG; the Cabrera display writes it) is aVR inverted; ``+`` is ignored. A trailing ``neg``
   / ``inv`` (``aVRneg``, 11073's negative-lead spelling) flips the polarity too.
5. What remains, lower-cased and with spaces/underscores/dots removed, must be one of the
   spellings below; anything else (``vx``, ``MLII``, ``V4R``, ``VR``, ``Resp``) is not a standard lead.

Spellings: Roman numerals in any case (``I``, ``ii``), ``DI/DII/DIII`` (Spanish/Portuguese
systems), ``aVR/aVL/aVF`` in any case, ``V1..V6`` and the European ``C1..C6``. Deliberately
NOT mapped: ``MLII`` (modified lead II of Holter records such as MIT-BIH: other electrode
placement), Wilson's unaugmented ``VR/VL/VF`` (aVx = 3/2 Vx: other amplitude), right-sided and
posterior chest leads (``V3R``, ``V4R``, ``V7``-``V9``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "CANONICAL_LEADS",
    "MIMIC_FILE_LEADS",
    "reorder_leads",
    "LeadMappingError",
    "LeadMap",
    "canonical_lead_name",
    "parse_lead_label",
    "map_leads",
    "lead_indices",
]

CANONICAL_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

#: The channel order of MIMIC-IV-ECG's WFDB files (``sig_name`` of every record): aVF *before* aVL. Our readers
#: map by name and never depend on it; it matters for models trained by code that used the file order as is
#: (the authors' released DiffuSETS checkpoints, :data:`~diffusets_core.models.reference.REFERENCE_LEAD_ORDER`;
#: book/reference_implementation.md#lead-order).
MIMIC_FILE_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")

# Normalised spelling -> canonical name (keys lower-case, without spaces, underscores, dots).
_ALIASES: dict[str, str] = {}
for _lead in CANONICAL_LEADS:
    _ALIASES[_lead.lower()] = _lead
for _lead in ("I", "II", "III"):
    _ALIASES["d" + _lead.lower()] = _lead
for _i in range(1, 7):
    _ALIASES[f"c{_i}"] = f"V{_i}"

# Labels that look like a standard lead but are another one: named in refusal messages.
_NEAR_MISSES: dict[str, str] = {
    "vr": "Wilson's unaugmented VR is not aVR (aVR = 3/2 VR)",
    "vl": "Wilson's unaugmented VL is not aVL (aVL = 3/2 VL)",
    "vf": "Wilson's unaugmented VF is not aVF (aVF = 3/2 VF)",
    "mlii": "MLII is the modified lead II of Holter records (other electrode placement)",
    "mli": "MLI is a modified Holter lead (other electrode placement)",
}
for _i in range(1, 7):
    _NEAR_MISSES[f"v{_i}r"] = f"V{_i}R is a right-sided chest lead, not V{_i}"

_DASHES = dict.fromkeys(map(ord, "\u2212\u2010\u2011\u2012\u2013\u2014\ufe63\uff0d"), "-")
_BRACKET_TAIL = re.compile(r"\s*[\(\[\{]([^\(\)\[\]\{\}]*)[\)\]\}]\s*$")
_UNIT_TAIL = re.compile(r"[\s_]*(?:mv|uv|µv|μv)$", re.IGNORECASE)
_PREFIX = re.compile(
    r"^(?:mdc[\s_]*ecg[\s_]*lead|ecg|ekg|lead|ableitung|derivaci[oó]n|deriv)(?=[\s_.:\-+]|$|[adivc])", re.IGNORECASE
)
_SEPS = re.compile(r"^[\s_.:]+")
_INVERT_WORDS = {"inverted", "inv", "neg", "negative", "negated"}
_INVERT_TAIL = re.compile(r"[\s_.\-]*(?:inverted|negative|negated|neg|inv)$", re.IGNORECASE)
_INNER_SEPS = re.compile(r"[\s_.]+")


class LeadMappingError(ValueError):
    """The channel names cannot be mapped onto the 12 canonical leads."""

    def __init__(self, message: str, missing: Sequence[str] = (), duplicated: Sequence[str] = ()):
        super().__init__(message)
        self.missing = list(missing)
        self.duplicated = list(duplicated)


def _split_label(name: str) -> tuple[str, int]:
    """(normalised core, sign) of a label; the core is looked up in the alias table."""
    s = unicodedata.normalize("NFKC", str(name)).translate(_DASHES).strip()
    sign = 1
    while True:  # trailing bracketed parts: units, comments, "(inverted)"
        m = _BRACKET_TAIL.search(s)
        if not m or m.start() == 0:
            break
        if m.group(1).strip().lower() in _INVERT_WORDS:
            sign = -sign
        s = s[: m.start()].strip()
    s = _UNIT_TAIL.sub("", s)
    m = _PREFIX.match(s)
    if m:
        rest = s[m.end() :]
        if rest.startswith("-") and len(rest) > 1 and rest[1] != "-" and not rest[1].isspace():
            rest = rest[1:]  # "ECG-II": the hyphen joins prefix and lead
        s = rest
    s = _SEPS.sub("", s)
    if s.startswith("-"):
        sign, s = -sign, s[1:]
    elif s.startswith("+"):
        s = s[1:]
    s = _SEPS.sub("", s)
    core = _INNER_SEPS.sub("", s).lower()
    if core not in _ALIASES:
        m = _INVERT_TAIL.search(s)
        if m and m.start() > 0:
            tail_core = _INNER_SEPS.sub("", s[: m.start()]).lower()
            if tail_core in _ALIASES:
                return tail_core, -sign
    return core, sign


def parse_lead_label(name: str) -> tuple[str, int] | None:
    """``(canonical lead, polarity)`` for a channel label, or None if it is no standard lead.

    Polarity is ``+1`` or ``-1`` (``"-aVR"`` -> ``("aVR", -1)``: multiply the channel by -1 to
    get aVR). See the module docstring for the rules.
    """
    core, sign = _split_label(name)
    lead = _ALIASES.get(core)
    return None if lead is None else (lead, sign)


def canonical_lead_name(name: str) -> str | None:
    """Canonical name for a channel label of *normal* polarity, or None.

    An inverted label (``"-aVR"``) returns None here, so that code which cannot apply a
    sign never mis-maps it; use :func:`parse_lead_label` to get the lead and its polarity.
    """
    parsed = parse_lead_label(name)
    return parsed[0] if parsed and parsed[1] == 1 else None


@dataclass
class LeadMap:
    """Where each canonical lead comes from.

    ``indices[k]``/``signs[k]``: channel index and polarity (+1/-1) of ``CANONICAL_LEADS[k]``.
    ``notes``: human-readable remarks (a duplicated label, an inverted channel) for the manifest.
    """

    indices: list[int]
    signs: list[int]
    notes: list[str] = field(default_factory=list)


def _near_miss_hints(sig_names: Sequence[str]) -> list[str]:
    hints = []
    for name in sig_names:
        core, _ = _split_label(name)
        if core in _NEAR_MISSES:
            hints.append(f"channel {name!r}: {_NEAR_MISSES[core]}")
        elif parse_lead_label(name) is None:
            bare = re.sub(r"[^0-9a-z]", "", core)
            if bare in _ALIASES:
                hints.append(
                    f"channel {name!r} looks like {_ALIASES[bare]} but its sign or spelling is not "
                    "one this reader knows"
                )
    return hints


def map_leads(sig_names: Sequence[str], complete: Sequence[bool] | None = None) -> LeadMap:
    """Map channel labels onto the 12 canonical leads (extra channels are ignored).

    Args:
        sig_names: the record's channel labels, in file order.
        complete: per channel, whether it holds every sample (no "missing" marker). When a lead
            appears more than once (e.g. a 13th full-length rhythm channel also named ``II``),
            the first *complete* channel of that lead is kept (the first one if none is
            complete) and a note says which was dropped.

    Raises:
        LeadMappingError: a canonical lead is missing; the message lists every label and
            names labels that look like a lead but are another one (``VR``, ``MLII``, ``V4R``).
    """
    candidates: dict[str, list[tuple[int, int]]] = {}
    for idx, name in enumerate(sig_names):
        parsed = parse_lead_label(name)
        if parsed is None:
            continue
        candidates.setdefault(parsed[0], []).append((idx, parsed[1]))
    missing = [lead for lead in CANONICAL_LEADS if lead not in candidates]
    if missing:
        msg = f"cannot map channels {list(sig_names)} onto the 12 standard leads: missing lead(s) {', '.join(missing)}"
        hints = _near_miss_hints(sig_names)
        if hints:
            msg += " (" + "; ".join(hints) + ")"
        raise LeadMappingError(msg, missing=missing)
    indices, signs, notes = [], [], []
    for lead in CANONICAL_LEADS:
        cands = candidates[lead]
        chosen = cands[0]
        if len(cands) > 1:
            if complete is not None:
                chosen = next((c for c in cands if complete[c[0]]), cands[0])
            dropped = [f"{c[0] + 1} ({sig_names[c[0]]!r})" for c in cands if c is not chosen]
            why = "the first complete one" if complete is not None and complete[chosen[0]] else "the first one"
            notes.append(
                f"lead {lead} appears in {len(cands)} channels: kept channel {chosen[0] + 1} "
                f"({sig_names[chosen[0]]!r}, {why}), dropped channel(s) {', '.join(dropped)}"
            )
        if chosen[1] == -1:
            notes.append(f"lead {lead} taken from inverted channel {sig_names[chosen[0]]!r} (multiplied by -1)")
        indices.append(chosen[0])
        signs.append(chosen[1])
    return LeadMap(indices, signs, notes)


def lead_indices(sig_names: Sequence[str]) -> list[int]:
    """Column indices that put ``sig_names`` into canonical order (normal polarity only).

    Channels that are not one of the 12 standard leads (e.g. vx/vy/vz) are ignored.

    Raises:
        LeadMappingError: if any canonical lead is missing, appears more than once (callers
            that can tell complete channels apart use :func:`map_leads`), or is only present
            inverted (``-aVR``: use :func:`map_leads`, which returns the polarity).
    """
    lm = map_leads(sig_names)
    counts: dict[str, int] = {}
    for name in sig_names:
        parsed = parse_lead_label(name)
        if parsed:
            counts[parsed[0]] = counts.get(parsed[0], 0) + 1
    duplicated = [lead for lead in CANONICAL_LEADS if counts.get(lead, 0) > 1]
    if duplicated:
        raise LeadMappingError(
            f"cannot map channels {list(sig_names)} onto the 12 standard leads: "
            f"lead(s) {', '.join(duplicated)} appear more than once",
            duplicated=duplicated,
        )
    inverted = [lead for lead, s in zip(CANONICAL_LEADS, lm.signs) if s == -1]
    if inverted:
        raise LeadMappingError(
            f"channels {list(sig_names)}: lead(s) {', '.join(inverted)} only present with inverted polarity "
            "(use map_leads, which returns the sign)"
        )
    return lm.indices


ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def reorder_leads(x: ArrayT, from_order: Sequence[str], to_order: Sequence[str], *, axis: int = -2) -> ArrayT:
    """Permute the lead axis of ``x`` from the named order ``from_order`` to ``to_order``.

    Args:
        x: numpy array or torch tensor whose ``axis`` holds the leads in ``from_order`` -- by default the
            channels-first layout of the package, ``(..., 12, L)`` (use ``axis=-1`` for ``(..., L, 12)``).
        from_order, to_order: lead names; the same names, each once, in two orders.
        axis: the lead axis.

    Returns:
        An array/tensor of the same type, shape and dtype with channel ``k`` = lead ``to_order[k]`` (a new
        array; ``x`` itself when the two orders are equal). Differentiable for tensors.

    Raises:
        ValueError: the orders are not permutations of each other (names repeated, missing or extra), or
            ``x.shape[axis]`` is not the number of leads.
    """
    src, dst = tuple(from_order), tuple(to_order)
    if len(set(src)) != len(src) or sorted(src) != sorted(dst):
        raise ValueError(f"reorder_leads: {list(dst)} is not a reordering of {list(src)} (same names, each once)")
    n = x.shape[axis]
    if n != len(src):
        raise ValueError(
            f"reorder_leads: axis {axis} of an array of shape {tuple(x.shape)} holds {n} channels, "
            f"expected the {len(src)} leads {list(src)}"
        )
    if src == dst:
        return x
    idx = [src.index(name) for name in dst]
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=axis)
    import torch  # imported here: reading records needs no torch until a tensor arrives

    return x.index_select(axis, torch.tensor(idx, device=x.device))
