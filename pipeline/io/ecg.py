"""WFDB records (``.hea`` + ``.mat``/``.dat``) to an :class:`EcgRecord` with clear errors.

``wfdb.rdrecord`` wants the record name without extension and raises assorted exceptions
for broken files; this module turns every user-side problem into a one-line ``UserError``.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import UserError, env_seconds, one_line

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_LEAD_KEY = {name.upper(): name for name in STANDARD_LEADS}
_SIGNAL_SUFFIXES = (".dat", ".mat", ".hea")
_MIN_FS, _MAX_FS = 50.0, 10000.0
MAX_SECONDS_ENV = "PIPELINE_ECG_MAX_SECONDS"
DEFAULT_MAX_SECONDS = 3600.0  # a 1-hour 12-lead record already needs ~2.6 GB to prepare
# Bytes per sample of the fixed-size WFDB formats (212: 3 bytes per 2 samples, 310/311: 4 per 3).
_BYTES_PER_SAMPLE = {"8": 1, "80": 1, "16": 2, "61": 2, "160": 2, "24": 3, "32": 4,
                     "212": 1.5, "310": 4 / 3, "311": 4 / 3}


@dataclass
class EcgRecord:
    """A record in physical units.

    Attributes:
        name: record name (file stem).
        signal: (n_leads, n_samples) float32, millivolts.
        fs: sampling rate in Hz.
        leads: lead names in the order of ``signal`` rows.
        dx_codes: SNOMED-CT codes from the ``#Dx:`` header line (strings).
        path: the record path without extension.
    """

    name: str
    signal: np.ndarray
    fs: float
    leads: list[str]
    dx_codes: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def duration_s(self) -> float:
        return self.signal.shape[1] / self.fs


def record_base(path: str | os.PathLike) -> Path:
    """Path without a WFDB extension: accepts ``rec.dat``, ``rec.mat``, ``rec.hea`` or ``rec``."""
    path = Path(path)
    if path.suffix.lower() in _SIGNAL_SUFFIXES:
        return path.with_suffix("")
    return path


def _parse_dx(comments: list[str]) -> list[str]:
    for comment in comments:
        match = re.match(r"\s*Dx\s*:\s*(.*)", comment)
        if match:
            return [code.strip() for code in match.group(1).split(",") if code.strip()]
    return []


def _check_paths(path: str | os.PathLike) -> Path:
    given = Path(path)
    if given.is_dir():
        raise UserError(f"{given} is a directory; pass one record (e.g. {given}/JS00001.hea)")
    base = record_base(given)
    header = base.with_suffix(".hea")
    if given.suffix and given.suffix.lower() not in _SIGNAL_SUFFIXES:
        raise UserError(
            f"{given} is not a WFDB record: expected a .hea, .dat or .mat file or a record name"
        )
    if not header.exists():
        if given.exists() or base.with_suffix(".dat").exists() or base.with_suffix(".mat").exists():
            raise UserError(f"header file {header} is missing; a WFDB record needs its .hea beside the signal file")
        raise UserError(f"no such record: {given}")
    _check_regular(header)
    return base


def _check_regular(path: Path) -> None:
    """A readable regular file: a FIFO or device would block the reader forever."""
    if not path.is_file():
        raise UserError(f"cannot read {path}: not a regular file (a directory, FIFO or device?)")
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read {path}: permission denied")


def max_record_seconds() -> float:
    """Longest record accepted, in seconds: ``PIPELINE_ECG_MAX_SECONDS``, else one hour.

    Preparing a record holds all its windows' scalograms in memory, so memory grows with
    length; the limit turns an out-of-memory crash into a clear refusal.
    """
    return env_seconds(MAX_SECONDS_ENV, DEFAULT_MAX_SECONDS)


def read_record(path: str | os.PathLike, *, max_seconds: float | None = None) -> EcgRecord:
    """Read one WFDB record in millivolts.

    Args:
        path: ``record.hea``, ``record.dat``, ``record.mat`` or the bare record path.
        max_seconds: longest record accepted (default :func:`max_record_seconds`).

    Returns:
        The record with leads as stored (see :func:`to_standard_leads` to reorder).

    Raises:
        UserError: missing/unreadable/non-regular files, a signal file not beside its header,
            a header whose sample count, signal count or segments do not match its files,
            a missing or implausible sampling rate, no samples, a record longer than
            ``max_seconds``, NaN or flat leads.
    """
    base = _check_paths(path)
    header_path = base.with_suffix(".hea")
    header_text = _read_header(header_path)
    header = _parse_header(base, header_path, header_text)
    _check_length(base, header, max_record_seconds() if max_seconds is None else max_seconds)
    _check_signal_files(base, header_path, header)
    parsed = _read_format16(base, header_text) or _read_with_wfdb(base, header_path)
    signal, _, names, comments, units = parsed
    signal = _in_millivolts(base, signal, names, units)
    _check_samples(base, signal, names)
    return EcgRecord(
        name=base.name,
        signal=signal,
        fs=header.fs,
        leads=names,
        dx_codes=_parse_dx(comments),
        path=str(base),
    )


#: Millivolts per physical unit of a header's gain field (lower case; micro as u).
_MILLIVOLTS_PER_UNIT = {"mv": 1.0, "uv": 1e-3, "nv": 1e-6, "v": 1e3}


def _in_millivolts(base: Path, signal: np.ndarray, names: list[str], units: list[str]) -> np.ndarray:
    """The signal scaled to millivolts from each lead's header units (a record in uV or V was read
    as mV before: its amplitude-based checks, such as the flat-lead one, were off by 1000x)."""
    factors = []
    for name, unit in zip(names, units):
        factor = _MILLIVOLTS_PER_UNIT.get(unit.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u"))
        if factor is None:
            raise UserError(f"{base.name}: lead {name} is recorded in {unit!r}, not a voltage (mV, uV or V)")
        factors.append(factor)
    if all(factor == 1.0 for factor in factors):
        return signal
    return signal * np.asarray(factors, dtype=signal.dtype)[:, None]


def _read_header(header_path: Path) -> str:
    """The header's text; a binary file is refused here rather than misparsed."""
    try:
        header_text = header_path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {header_path}: {exc.strerror}") from exc
    if "\x00" in header_text[:4096]:
        raise UserError(f"{header_path} is not a WFDB header (binary content)")
    return header_text


def _check_samples(base: Path, signal: np.ndarray, names: list[str]) -> None:
    """Samples present, finite and not flat in every lead."""
    if signal.shape[1] == 0:
        raise UserError(f"{base.name} holds no samples")
    bad = [names[i] for i in range(signal.shape[0]) if not np.isfinite(signal[i]).all()]
    if bad:
        raise UserError(f"{base.name}: lead(s) {', '.join(bad)} contain NaN or infinite samples")
    flat = [names[i] for i in range(signal.shape[0]) if float(np.ptp(signal[i])) < 1e-3]
    if flat:
        raise UserError(f"{base.name}: lead(s) {', '.join(flat)} are flat (no signal); check the electrodes or the file")


@dataclass
class _Header:
    """The parts of a header this module checks itself before any signal is read."""

    fs: float
    n_samples: int | None
    signal_lines: list[list[str]]
    segments: list[str]


def _parse_header(base: Path, header_path: Path, header_text: str) -> _Header:
    """Record line, signal lines and segment names, with a ``UserError`` for each inconsistency.

    wfdb silently falls back to 250 Hz for a rate it cannot parse and reports a signal-count
    mismatch with an internal error, so these are checked here first.
    """
    lines = [line.split() for line in header_text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise UserError(f"{header_path} is not a WFDB header (no record line)")
    record, body = lines[0], lines[1:]
    name, _, n_seg = record[0].partition("/")
    if len(record) < 2 or not record[1].isdigit() or (n_seg and not n_seg.isdigit()):
        raise UserError(f"{header_path}: the record line must start with the record name and the number of signals")
    fs = _parse_rate(record[2] if len(record) > 2 else None, header_path)
    n_samples = int(record[3]) if len(record) > 3 and record[3].isdigit() else None
    declared = int(n_seg) if n_seg else int(record[1])
    what = "segment(s)" if n_seg else "signal(s)"
    if declared == 0:
        raise UserError(f"{header_path} declares no {what}")
    if len(body) != declared:
        raise UserError(f"{header_path} declares {declared} {what} but lists {len(body)}")
    segments = [fields[0] for fields in body] if n_seg else []
    for file_name in segments or [fields[0] for fields in body]:
        _check_beside(file_name, name, header_path)
    return _Header(fs, n_samples, [] if n_seg else body, segments)


def _parse_rate(token: str | None, header_path: Path) -> float:
    """Sampling rate of the record line (``fs[/counter[(base)]]``), present and plausible."""
    if token is None:
        raise UserError(f"{header_path} has no sampling rate on its record line; add it (e.g. '500')")
    text = token.split("/", 1)[0]
    if not re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", text):
        raise UserError(f"{header_path}: sampling rate {text!r} is not a positive number of Hz")
    fs = float(text)
    if not _MIN_FS <= fs <= _MAX_FS:
        raise UserError(f"{header_path}: sampling rate {fs:g} Hz is implausible for an ECG ({_MIN_FS:g}-{_MAX_FS:g} Hz)")
    return fs


def _check_beside(file_name: str, record_name: str, header_path: Path) -> None:
    """Signal files and segments are plain names beside the header (as wfdb requires), not the record itself."""
    if file_name == "~":  # a null signal or segment: no file
        return
    if "/" in file_name or "\\" in file_name or file_name in (".", ".."):
        raise UserError(
            f"{header_path} names {file_name!r}; signal files and segments must sit beside the header (a plain file name)"
        )
    if file_name in (record_name, f"{record_name}.hea"):
        raise UserError(f"{header_path} names the record itself as one of its segments")


def _check_length(base: Path, header: _Header, max_seconds: float) -> None:
    """Refuse a record longer than ``max_seconds`` before any of it is read."""
    if header.n_samples == 0:
        raise UserError(f"{base.name} holds no samples (its header declares a length of 0)")
    if header.n_samples is not None and header.n_samples / header.fs > max_seconds:
        raise UserError(
            f"{base.name} lasts {header.n_samples / header.fs:.0f} s, more than the {max_seconds:g} s limit "
            f"(set {MAX_SECONDS_ENV} to raise it; memory grows with record length)"
        )


def _check_signal_files(base: Path, header_path: Path, header: _Header) -> None:
    """Every file the header names exists, is a regular readable file, and has the declared size."""
    for segment in header.segments:
        if segment != "~":
            _check_segment(base.parent / segment, header_path)
    by_file: dict[str, list[list[str]]] = {}
    for fields in header.signal_lines:
        by_file.setdefault(fields[0], []).append(fields)
    for file_name, lines in by_file.items():
        if file_name == "~":
            continue
        signal_file = _named_file(base.parent / file_name, header_path, "signal file")
        _check_regular(signal_file)
        if header.n_samples is not None:
            _check_size(base, signal_file, lines, header.n_samples)


def _check_segment(base: Path, parent_header: Path) -> None:
    """A segment is a single-segment record beside its parent, checked like one.

    wfdb reads a segment's signal files without these checks: a FIFO there would block it forever.
    """
    segment_header = _named_file(base.parent / f"{base.name}.hea", parent_header, "segment header")
    _check_regular(segment_header)
    header = _parse_header(base, segment_header, _read_header(segment_header))
    if header.segments:
        raise UserError(f"{segment_header} is itself a multi-segment record; a segment must be a single record")
    _check_signal_files(base, segment_header, header)


def _named_file(path: Path, header_path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what} {path} named in {header_path.name} is missing")
    return path


_FORMAT = re.compile(r"(\d+)(?:x(\d+))?(?::\d+)?(?:\+(\d+))?")


def _check_size(base: Path, signal_file: Path, lines: list[list[str]], n_samples: int) -> None:
    """The file holds exactly the header's sample count (fixed-size formats; others are left to wfdb)."""
    formats = [_FORMAT.fullmatch(fields[1]) if len(fields) > 1 else None for fields in lines]
    if any(m is None or m.group(1) not in _BYTES_PER_SAMPLE for m in formats):
        return
    offset = int(formats[0].group(3) or 0)
    frame = sum(_BYTES_PER_SAMPLE[m.group(1)] * int(m.group(2) or 1) for m in formats)
    expected = offset + n_samples * frame
    size = signal_file.stat().st_size
    if not math.floor(expected) <= size <= math.ceil(expected) + (2 if frame % 1 else 0):
        held = max(0, int((size - offset) / frame))
        raise UserError(
            f"{base.name}: {signal_file.name} holds {held} samples per signal but the header declares "
            f"{n_samples} (truncated file, or a header that does not match it)"
        )


_NUMBER = r"-?\d+(?:\.\d+)?"
_GAIN = re.compile(rf"^({_NUMBER})(?:\((-?\d+)\))?(?:/(\S+))?$")


def _read_format16(base: Path, header_text: str) -> tuple[np.ndarray, float, list[str], list[str], list[str]] | None:
    """``(signal, fs, lead names, comments, units)`` of a single-file format-16 record, else None.

    Hand-written fast path for the common case (all Chapman/SPH records): wfdb's header
    parser spends ~4 ms of a ~5 ms read in pandas scalar lookups. Anything unusual (other
    formats, several files, skew, several samples per frame, a size that does not match the
    header) returns None and goes through wfdb, which also produces the error messages.
    Physical value = (digital - baseline) / gain; -32768 marks a missing sample (NaN), as wfdb.
    """
    lines = [line.strip() for line in header_text.splitlines()]
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    fields = [line.split() for line in lines if line and not line.startswith("#")]
    if not fields or len(fields[0]) < 4 or "/" in fields[0][0]:
        return None
    _, n_sig, fs, n_samples = fields[0][:4]
    if not (n_sig.isdigit() and n_samples.isdigit() and re.fullmatch(r"\d+(?:\.\d+)?", fs)):
        return None
    n_sig, n_samples = int(n_sig), int(n_samples)
    signal_lines = fields[1 : 1 + n_sig]
    if n_sig == 0 or len(signal_lines) != n_sig or any(len(f) < 9 for f in signal_lines):
        return None
    formats = {re.fullmatch(r"16(?:\+(\d+))?", f[1]) for f in signal_lines}
    files = {f[0] for f in signal_lines}
    if len(files) != 1 or None in formats or len({m.group(1) for m in formats}) != 1:
        return None
    offset = int(next(iter(formats)).group(1) or 0)
    gains, baselines, units = [], [], []
    for f in signal_lines:
        match = _GAIN.fullmatch(f[2])
        if match is None or float(match.group(1)) == 0 or not re.fullmatch(r"-?\d+", f[4]):
            return None
        gains.append(float(match.group(1)))
        units.append(match.group(3) or "mV")  # WFDB: no units field means millivolts
        baselines.append(int(match.group(2)) if match.group(2) is not None else int(f[4]))
    signal_file = base.parent / next(iter(files))
    try:
        if signal_file.stat().st_size != offset + 2 * n_sig * n_samples:
            return None
        digital = np.fromfile(signal_file, dtype="<i2", offset=offset).reshape(n_samples, n_sig).T
    except (OSError, ValueError):
        return None
    signal = (digital - np.array(baselines)[:, None]) / np.array(gains)[:, None]
    signal[digital == -32768] = np.nan
    names = [" ".join(f[8:]) for f in signal_lines]
    return signal.astype(np.float32), float(fs), names, comments, units


def _read_with_wfdb(base: Path, header_path: Path) -> tuple[np.ndarray, float, list[str], list[str], list[str]]:
    """Any WFDB record through ``wfdb.rdrecord``, with a one-line error for every failure."""
    wfdb = _import_wfdb()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # wfdb's pandas deprecation noise
            record = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises many types; find the cause
        _diagnose(wfdb, base, header_path)
        raise UserError(
            f"cannot read the signal of {base.name}: {one_line(exc)} (truncated or not matching its header?)"
        ) from exc
    signal = record.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] != record.sig_len:
        got = 0 if signal is None else signal.shape[0]
        raise UserError(
            f"{base.name}: signal file holds {got} samples but the header says {record.sig_len} "
            "(truncated file or header mismatch)"
        )
    names = list(record.sig_name or [f"ch{i}" for i in range(signal.shape[1])])
    units = [unit or "mV" for unit in (record.units or ["mV"] * signal.shape[1])]
    return signal.T.astype(np.float32), float(record.fs), names, list(record.comments or []), units


def _diagnose(wfdb, base: Path, header_path: Path) -> None:
    """Raise "not a valid header" when wfdb's own header parser is what failed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise UserError(f"{header_path} is not a valid WFDB header: {one_line(exc)}") from exc


def to_standard_leads(record: EcgRecord) -> np.ndarray:
    """(12, n_samples) signal in the order I, II, III, aVR, aVL, aVF, V1-V6.

    Raises:
        UserError: when any of the 12 standard leads is missing.
    """
    index = {}
    for row, name in enumerate(record.leads):
        key = _LEAD_KEY.get(name.strip().upper())
        if key is not None and key not in index:
            index[key] = row
    missing = [lead for lead in STANDARD_LEADS if lead not in index]
    if missing:
        raise UserError(
            f"{record.name} has {len(record.leads)} lead(s) ({', '.join(record.leads)}); "
            f"12-lead models need all of I, II, III, aVR, aVL, aVF, V1-V6 (missing {', '.join(missing)})"
        )
    return record.signal[[index[lead] for lead in STANDARD_LEADS]]


def _import_wfdb():
    """wfdb, with its pandas deprecation warnings silenced (they are not the user's concern)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import wfdb
    return wfdb

