"""Reading one WFDB record into canonical-lead millivolts, with typed, explicit errors.

`read_record` is the only function here that touches signal files. It reads the digital
samples with ``wfdb.rdrecord`` and converts them itself, which lets it check what the
header promises against what is on disk before any number is trusted:

* file size vs. ``sig_len x channels x format``: a truncated ``.dat`` is caught by name, not
  reported by wfdb as "Samples were not loaded correctly" or silently zero-padded; a ``.dat``
  *longer* than the header implies (padded to whole blocks, or followed by other data) is read
  as ``wfdb.rdrecord`` reads it - the samples the header describes - and ``ECGRecord.notes``
  says how many bytes were not read (what wfdb reads is never refused);
* the per-channel checksums of the header (catches a ``.dat`` that belongs to another
  header, or one written with a different channel count);
* the 12 standard leads by name (:mod:`.leads`), extra channels dropped, inverted labels
  (``-aVR``) multiplied by -1, a duplicated lead taken from its first complete channel;
* multi-segment records (a master header pointing at segments) read as one signal;
* a header wfdb cannot parse is reported with the first line its grammar refuses;
* physical units: ``uV``/``V`` are scaled to mV; unknown units are refused;
* an optional expected sampling rate; a record that is entirely missing (all NaN).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

from .leads import CANONICAL_LEADS, LeadMappingError, map_leads

__all__ = [
    "ECGRecord",
    "RecordError",
    "RecordNotFoundError",
    "HeaderError",
    "TruncatedSignalError",
    "HeaderSignalMismatchError",
    "MissingLeadError",
    "UnexpectedSamplingRateError",
    "UnitError",
    "AllNaNError",
    "read_record",
    "unit_scale_to_mv",
    "encode_comment_value",
    "decode_comment_value",
    "header_comments",
]

# Bits per stored sample for the WFDB formats whose file size is a simple product.
# Compressed (FLAC 508/516/524) and 3-in-4-byte packed (310/311) formats are not
# size-checked; wfdb's own errors still surface as RecordError for them.
_FORMAT_BITS: dict[str, int] = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12}
# The digital value WFDB reserves for "no sample" in each format (written for NaN).
_INVALID_SAMPLE: dict[str, int] = {
    "8": -128,
    "16": -32768,
    "24": -(2**23),
    "32": -(2**31),
    "61": -32768,
    "80": -128,
    "160": -32768,
    "212": -2048,
    "310": -512,
    "311": -512,
}
_UNIT_SCALE: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "nv": 1e-6,
}


class RecordError(Exception):
    """A record that cannot be used. ``str(err)`` names the file and what was expected."""

    #: short machine-friendly category, used to summarise skip reasons
    kind = "record_error"

    def __init__(self, path: str | os.PathLike[str], message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class RecordNotFoundError(RecordError):
    kind = "not_found"


class HeaderError(RecordError):
    kind = "bad_header"


class TruncatedSignalError(RecordError):
    kind = "truncated"


class HeaderSignalMismatchError(RecordError):
    kind = "header_signal_mismatch"


class MissingLeadError(RecordError):
    kind = "missing_lead"


class UnexpectedSamplingRateError(RecordError):
    kind = "sampling_rate"


class UnitError(RecordError):
    kind = "units"


class AllNaNError(RecordError):
    kind = "all_nan"


@dataclass
class ECGRecord:
    """A 12-lead record in canonical lead order and millivolts."""

    signal: np.ndarray  # (n_samples, 12) float64, mV, NaN where the file marks "no sample"
    fs: float
    n_samples: int
    comments: list[str] = field(default_factory=list)
    record_name: str = ""
    path: str = ""  # record path without extension
    leads: tuple[str, ...] = CANONICAL_LEADS
    notes: list[str] = field(default_factory=list)  # e.g. a duplicated or inverted lead label

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs


# Characters written as-is in a header comment value: printable ASCII except "%" (the escape),
# "|" (separates report statements) and "#" (wfdb strips it from the ends of comment lines).
_COMMENT_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%|#")


def encode_comment_value(text: str) -> str:
    """Make ``text`` safe for one WFDB header comment line, reversibly.

    WFDB comments are single ASCII lines: wfdb refuses tabs/newlines when writing, reads
    headers as ASCII *dropping* other bytes, and strips spaces and ``#`` from both ends. So
    the text is stripped of outer whitespace and every character outside printable ASCII,
    plus ``%``, ``|`` and ``#``, is percent-encoded as UTF-8 (RFC 3986 style: ``\n`` -> ``%0A``,
    ``é`` -> ``%C3%A9``). Plain ASCII statements are written unchanged.
    """
    return quote(str(text).strip(), safe=_COMMENT_SAFE)


def decode_comment_value(text: str) -> str:
    """Inverse of :func:`encode_comment_value` (``%XX`` sequences decoded as UTF-8; others kept)."""
    return unquote(str(text))


def header_comments(report, *, age=None, sex=None, hr=None, extra: dict | None = None) -> list[str]:
    """Header comment lines that :func:`~diffusets_core.data.folder.parse_header_comments` reads back.

    Args:
        report: the statements, as a list or a ``|``-joined string; each is encoded with
            :func:`encode_comment_value` and they are joined with ``|`` on one ``report:`` line.
        age, sex, hr: written as ``age: <years>``, ``sex: M|F``, ``hr: <bpm>`` when given.
        extra: further ``key: value`` lines (values encoded the same way).

    Returns:
        list of comment strings without the leading ``#`` (as ``wfdb.wrsamp(comments=...)`` wants).
    """
    statements = report.split("|") if isinstance(report, str) else list(report)
    lines = ["report: " + "|".join(encode_comment_value(s) for s in statements if str(s).strip())]
    for key, value in (("age", age), ("sex", sex), ("hr", hr)):
        if value is not None:
            lines.append(f"{key}: {encode_comment_value(value)}")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {encode_comment_value(value)}")
    return lines


def unit_scale_to_mv(units: str | None) -> float:
    """Factor that converts a WFDB physical unit string to millivolts.

    A missing unit is read as mV, the WFDB default. Raises ValueError for anything else.
    """
    if units is None or str(units).strip() == "":
        return 1.0
    key = str(units).strip().lower()
    if key not in _UNIT_SCALE:
        raise ValueError(f"unknown physical unit {units!r} (expected mV, uV or V)")
    return _UNIT_SCALE[key]


def _check_file_sizes(header, record_dir: Path, record_path: str) -> list[str]:
    """Compare each signal file's size with what the header implies.

    Returns a note for each file longer than needed (wfdb reads the samples the header describes and
    ignores the rest, so such a file is not refused).

    Raises:
        RecordNotFoundError: a signal file is missing. TruncatedSignalError: one is shorter than needed.
    """
    notes: list[str] = []
    sig_len = header.sig_len
    if not sig_len:  # header without a length: wfdb infers it from the file, nothing to check
        return notes
    files: dict[str, list[int]] = {}
    for ch, fname in enumerate(header.file_name):
        files.setdefault(fname, []).append(ch)
    for fname, chans in files.items():
        dat = record_dir / fname
        if not dat.is_file():
            raise RecordNotFoundError(
                dat,
                f"signal file missing (the header {record_path}.hea lists it for "
                f"channels {[header.sig_name[c] for c in chans]})",
            )
        fmt = str(header.fmt[chans[0]])
        bits = _FORMAT_BITS.get(fmt)
        if bits is None:
            continue
        spf = sum(int((header.samps_per_frame or [1] * header.n_sig)[c] or 1) for c in chans)
        offset = int((header.byte_offset or [None] * header.n_sig)[chans[0]] or 0)
        expected = offset + math.ceil(sig_len * spf * bits / 8)
        actual = dat.stat().st_size
        what = f"{sig_len} samples x {spf} channel(s) in format {fmt} = {expected} bytes"
        if actual < expected:
            raise TruncatedSignalError(dat, f"truncated signal file: holds {actual} bytes, header implies {what}")
        if actual > expected:
            # Padding to whole blocks is common; a .dat of another record is caught by the checksums instead.
            notes.append(
                f"signal file {fname} holds {actual - expected} byte(s) after the {expected} the header describes "
                "(not read)"
            )
    return notes


def _header_lines(hea: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-comment, non-empty lines of a header (as wfdb reads them)."""
    text = hea.read_bytes().decode("ascii", errors="ignore")
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if body:
            out.append((n, body))
    return out


def is_multisegment(hea: Path) -> bool:
    """True if the record line names segments (``name/n_segments ...``, WFDB multi-segment)."""
    try:
        lines = _header_lines(hea)
    except OSError:
        return False
    return bool(lines) and "/" in lines[0][1].split()[0]


def _explain_header(hea: Path, exc: Exception) -> str:
    """The first line of a header that wfdb's own grammar refuses, or wfdb's message."""
    from wfdb.io.header import (  # wfdb on first use: `import diffusets_core.data` stays light
        rx_record,
        rx_segment,
        rx_signal,
    )

    try:
        lines = _header_lines(hea)
    except OSError as oexc:
        return f"cannot read header: {oexc}"
    if not lines:
        return "header is empty (expected a record line 'name n_signals fs n_samples')"
    n, rec_line = lines[0]
    m = rx_record.match(rec_line)
    if not m or m.end() < len(rec_line.rstrip()):
        return (
            f"line {n}: {rec_line!r} is not a WFDB record line "
            "(expected 'name[/n_segments] n_signals [fs [n_samples [time [date]]]]')"
        )
    multi = bool(m.group("n_seg"))
    rx, what = (
        (rx_segment, "segment line 'segment_name n_samples'")
        if multi
        else (
            rx_signal,
            "signal line 'file format gain(baseline)/units resolution zero first checksum block_size name'",
        )
    )
    for n, line in lines[1:]:
        mm = rx.match(line)
        if not mm or (not multi and not mm.group("fmt")):
            return f"line {n}: {line!r} is not a WFDB {what}"
    n_declared = int(m.group("n_seg") or m.group("n_sig") or 0)
    n_lines = len(lines) - 1
    if n_lines != n_declared:
        kind = "segment" if multi else "signal"
        return f"line {lines[0][0]} declares {n_declared} {kind}(s) but {n_lines} {kind} line(s) follow"
    return f"cannot parse WFDB header: {type(exc).__name__}: {exc}"


def _check_header(header, hea: Path) -> None:
    if not header.n_sig:
        raise HeaderError(hea, "header lists no signals (expected 12 standard leads)")
    if not header.fs or header.fs <= 0:
        raise HeaderError(hea, f"invalid sampling frequency {header.fs!r}")


def _check_segments(master, hea: Path) -> list[str]:
    """File-size checks of every segment of a multi-segment record (``~`` = gap, no file); notes as
    :func:`_check_file_sizes`."""
    import wfdb  # local import keeps `import diffusets_core.data` light

    notes: list[str] = []
    for seg in master.seg_name or []:
        if seg == "~":
            continue
        seg_path = str(hea.parent / seg)
        seg_hea = Path(seg_path + ".hea")
        if not seg_hea.is_file():
            raise RecordNotFoundError(
                seg_hea, f"segment header missing (the multi-segment header {hea} lists segment {seg!r})"
            )
        try:
            seg_header = wfdb.rdheader(seg_path)
        except Exception as exc:
            raise HeaderError(seg_hea, _explain_header(seg_hea, exc)) from exc
        if seg_header.file_name:
            notes.extend(_check_file_sizes(seg_header, hea.parent, seg_path))
    return notes


def read_record(
    path: str | os.PathLike[str], *, expected_fs: float | None = None, verify_checksums: bool = True
) -> ECGRecord:
    """Read a WFDB record (path without extension) as canonical 12-lead millivolts.

    Single-segment records are read as digital samples and converted here (gain, baseline,
    units, "no sample" markers -> NaN) after the file-size and checksum checks. Multi-segment
    records (a master header ``name/n_segments``, fixed or variable layout, ``~`` gaps) are
    read through ``wfdb.rdrecord`` into one physical signal (NaN in gaps); each segment's
    file size is checked, checksums are not (wfdb does not merge them).

    Leads are found by label (:func:`.leads.map_leads`): an inverted label (``-aVR``) is
    multiplied by -1, and a lead present in several channels comes from the first complete
    one; both are described in ``ECGRecord.notes``.

    Args:
        path: record path without extension, e.g. ``.../records500/00000/00001_hr``.
        expected_fs: if given, refuse records with another sampling rate.
        verify_checksums: compare the header's per-channel checksums with the data.

    Returns:
        ECGRecord with ``signal`` ``(n_samples, 12)`` float64 mV in canonical lead order.

    Raises:
        RecordError: a subclass naming the file and what was expected. A header that wfdb
            cannot parse is a :class:`HeaderError` naming the first offending line.
    """
    record_path, hea = _record_files(path)
    multi = is_multisegment(hea)
    rec = _rdrecord(record_path, hea, multi)
    _check_header(rec, hea)
    fs = float(rec.fs)
    if expected_fs is not None and abs(fs - float(expected_fs)) > 1e-6:
        raise UnexpectedSamplingRateError(hea, f"sampling rate {fs:g} Hz, expected {float(expected_fs):g} Hz")
    names = list(rec.sig_name or [])
    if multi:
        samples, invalid, size_notes = _multisegment_samples(rec, record_path, hea, names)
    else:
        samples, invalid, size_notes = _single_segment_samples(rec, record_path, hea, verify_checksums)

    try:
        lead_map = map_leads(names, complete=[not invalid[:, c].any() for c in range(len(names))])
    except LeadMappingError as exc:
        raise MissingLeadError(hea, str(exc)) from exc
    signal = _canonical_millivolts(rec, hea, names, lead_map, samples, invalid, physical=multi)
    if np.isnan(signal).all():
        raise AllNaNError(hea, "every sample of the 12 standard leads is missing (all NaN)")

    return ECGRecord(
        signal=signal,
        fs=fs,
        n_samples=int(samples.shape[0]),
        comments=list(rec.comments or []),
        record_name=str(rec.record_name),
        path=record_path,
        notes=size_notes + list(lead_map.notes),
    )


def _record_files(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``(record path without extension, header file)``. Raises RecordNotFoundError when the header is missing."""
    record_path = str(path)
    if record_path.endswith(".hea"):
        record_path = record_path[:-4]
    hea = Path(record_path + ".hea")
    if not hea.is_file():
        raise RecordNotFoundError(hea, "header file not found (expected a WFDB record: <name>.hea + signal file)")
    return record_path, hea


def _rdrecord(record_path: str, hea: Path, multi: bool):
    """``wfdb.rdrecord``: digital samples of a single-segment record, the physical signal of a multi-segment one.

    One header parse per record: wfdb's header parser dominates the cost of reading a 10 s record, so rdrecord is
    called first and the header checks use its result; the header is parsed separately only to explain a failure
    (HeaderError naming the offending line, the precise size error, else HeaderSignalMismatchError)."""
    import wfdb  # local import keeps `import diffusets_core.data` light

    try:
        return wfdb.rdrecord(record_path, physical=multi, return_res=64)
    except Exception as exc:  # wfdb raises assorted ValueError/IndexError/OSError
        try:
            header = wfdb.rdheader(record_path)
        except Exception as hexc:
            raise HeaderError(hea, _explain_header(hea, hexc)) from hexc
        _check_header(header, hea)
        if multi:
            _check_segments(header, hea)
        elif header.file_name:
            _check_file_sizes(header, hea.parent, record_path)  # raises the precise error if it finds one
        raise HeaderSignalMismatchError(hea, f"wfdb could not read the samples the header describes: {exc}") from exc


def _multisegment_samples(rec, record_path: str, hea: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """``(physical samples (n, channels), invalid mask (NaN: gaps), size notes)`` of a multi-segment record; each
    segment's file size is checked (:func:`_check_segments`)."""
    import wfdb  # local import keeps `import diffusets_core.data` light

    size_notes = _check_segments(wfdb.rdheader(record_path), hea)
    phys = rec.p_signal
    if phys is None or phys.ndim != 2 or phys.shape[1] != len(names):
        raise HeaderSignalMismatchError(
            hea, f"read samples of shape {getattr(phys, 'shape', None)}, header lists {len(names)} channels"
        )
    return phys, np.isnan(phys), size_notes


def _single_segment_samples(
    rec, record_path: str, hea: Path, verify_checksums: bool
) -> tuple[np.ndarray, np.ndarray, list]:
    """``(digital samples (n, channels), invalid mask ("no sample" markers), size notes)`` of a single-segment
    record, after the file-size check and, with ``verify_checksums``, the header's per-channel checksums."""
    if not rec.file_name:
        raise HeaderError(hea, "header lists no signal files (expected 12 standard leads)")
    # rdrecord reads only the samples the header announces: a shorter file is refused here, a longer one noted.
    size_notes = _check_file_sizes(rec, hea.parent, record_path)
    d = rec.d_signal
    if d is None or d.ndim != 2 or d.shape[1] != rec.n_sig:
        raise HeaderSignalMismatchError(
            hea, f"read samples of shape {getattr(d, 'shape', None)}, header lists {rec.n_sig} channels"
        )
    if rec.sig_len and d.shape[0] != rec.sig_len:
        raise HeaderSignalMismatchError(hea, f"read {d.shape[0]} samples, header says {rec.sig_len}")
    if verify_checksums and rec.checksum is not None:
        # WFDB checksum: 16-bit sum of the channel's digital samples (signed or not in the text).
        sums = d.sum(axis=0) % 65536
        bad = [
            rec.sig_name[c] for c, ck in enumerate(rec.checksum) if ck is not None and int(sums[c]) != int(ck) % 65536
        ]
        if bad:
            raise HeaderSignalMismatchError(
                hea,
                f"checksum mismatch in channel(s) {', '.join(bad)}: the signal file does not hold the samples this header describes",
            )
    invalid = np.zeros(d.shape, dtype=bool)
    for ch in range(d.shape[1]):
        marker = _INVALID_SAMPLE.get(str(rec.fmt[ch]))
        if marker is not None:
            invalid[:, ch] = d[:, ch] == marker
    return d, invalid, size_notes


def _canonical_millivolts(
    rec, hea: Path, names: list[str], lead_map, samples: np.ndarray, invalid: np.ndarray, *, physical: bool
) -> np.ndarray:
    """``(n, 12)`` float64 mV in canonical lead order: each mapped channel scaled from its units (an inverted label
    times -1); digital ``samples`` also through gain and baseline, with the invalid ones NaN. Raises UnitError."""
    signal = np.empty((samples.shape[0], len(CANONICAL_LEADS)), dtype=np.float64)
    for out_col, (ch, sign) in enumerate(zip(lead_map.indices, lead_map.signs)):
        try:
            scale = unit_scale_to_mv(rec.units[ch] if rec.units else None)
        except ValueError as exc:
            raise UnitError(hea, f"channel {names[ch]}: {exc}") from exc
        if physical:
            out = samples[:, ch] * (scale * sign)
        else:
            gain = float(rec.adc_gain[ch])
            if gain == 0:  # WFDB: gain 0 means "uncalibrated", DEFGAIN = 200 adu/unit
                gain = 200.0
            out = (samples[:, ch] - float(rec.baseline[ch])) * (scale * sign / gain)
            out[invalid[:, ch]] = np.nan
        signal[:, out_col] = out
    return signal
