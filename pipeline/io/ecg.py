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

from pipeline.errors import UserError

STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_LEAD_KEY = {name.upper(): name for name in STANDARD_LEADS}
_SIGNAL_SUFFIXES = (".dat", ".mat", ".hea")
_MIN_FS, _MAX_FS = 50.0, 20000.0


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


def _header_fs_present(header_text: str) -> bool:
    """True when the record line (first non-comment line) carries a sampling rate field."""
    for line in header_text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return len(stripped.split()) >= 3
    return False


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
    if not os.access(header, os.R_OK):
        raise UserError(f"cannot read {header}: permission denied")
    return base


def read_record(path: str | os.PathLike) -> EcgRecord:
    """Read one WFDB record in millivolts.

    Args:
        path: ``record.hea``, ``record.dat``, ``record.mat`` or the bare record path.

    Returns:
        The record with leads as stored (see :func:`to_standard_leads` to reorder).

    Raises:
        UserError: missing/unreadable files, truncated or mismatched signal files,
            missing or implausible sampling rate, NaN or flat leads.
    """
    base = _check_paths(path)
    header_path = base.with_suffix(".hea")
    try:
        header_text = header_path.read_text(errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {header_path}: {exc.strerror}") from exc
    if "\x00" in header_text[:4096]:
        raise UserError(f"{header_path} is not a WFDB header (binary content)")
    parsed = _read_format16(base, header_text)
    if parsed is None:
        parsed = _read_with_wfdb(base, header_path, header_text)
    else:
        _check_rate(parsed[1], header_path, header_text)
    signal, fs, names, comments = parsed
    bad = [names[i] for i in range(signal.shape[0]) if not np.isfinite(signal[i]).all()]
    if bad:
        raise UserError(f"{base.name}: lead(s) {', '.join(bad)} contain NaN or infinite samples")
    flat = [names[i] for i in range(signal.shape[0]) if float(np.ptp(signal[i])) < 1e-3]
    if flat:
        raise UserError(f"{base.name}: lead(s) {', '.join(flat)} are flat (no signal); check the electrodes or the file")
    return EcgRecord(
        name=base.name,
        signal=signal,
        fs=fs,
        leads=names,
        dx_codes=_parse_dx(comments),
        path=str(base),
    )


def _check_rate(fs: float, header_path: Path, header_text: str) -> None:
    """Sampling rate present on the record line and plausible for an ECG."""
    if not _header_fs_present(header_text):
        raise UserError(f"{header_path} has no sampling rate on its record line; add it (e.g. '500')")
    if not (_MIN_FS <= fs <= _MAX_FS) or not math.isfinite(fs):
        raise UserError(f"{header_path}: sampling rate {fs:g} Hz is implausible for an ECG ({_MIN_FS:g}-{_MAX_FS:g} Hz)")


_NUMBER = r"-?\d+(?:\.\d+)?"
_GAIN = re.compile(rf"^({_NUMBER})(?:\((-?\d+)\))?(?:/\S+)?$")


def _read_format16(base: Path, header_text: str) -> tuple[np.ndarray, float, list[str], list[str]] | None:
    """``(signal, fs, lead names, comments)`` of a single-file format-16 record, else None.

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
    gains, baselines = [], []
    for f in signal_lines:
        match = _GAIN.fullmatch(f[2])
        if match is None or float(match.group(1)) == 0 or not re.fullmatch(r"-?\d+", f[4]):
            return None
        gains.append(float(match.group(1)))
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
    return signal.astype(np.float32), float(fs), names, comments


def _read_with_wfdb(base: Path, header_path: Path, header_text: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """Any WFDB record through ``wfdb.rdrecord``, with a one-line error for every failure."""
    wfdb = _import_wfdb()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # wfdb's pandas deprecation noise
            record = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises many types; find the cause
        _diagnose(wfdb, base, header_path, header_text)
        raise UserError(
            f"cannot read the signal of {base.name}: {_one_line(exc)} (truncated or not matching its header?)"
        ) from exc
    _check_rate(float(record.fs), header_path, header_text)
    signal = record.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] != record.sig_len:
        got = 0 if signal is None else signal.shape[0]
        raise UserError(
            f"{base.name}: signal file holds {got} samples but the header says {record.sig_len} "
            "(truncated file or header mismatch)"
        )
    names = list(record.sig_name or [f"ch{i}" for i in range(signal.shape[1])])
    return signal.T.astype(np.float32), float(record.fs), names, list(record.comments or [])


def _diagnose(wfdb, base: Path, header_path: Path, header_text: str) -> None:
    """Raise the specific ``UserError`` for a record wfdb could not read (header, rate, files)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise UserError(f"{header_path} is not a valid WFDB header: {_one_line(exc)}") from exc
    _check_rate(float(header.fs), header_path, header_text)
    for file_name in sorted(set(header.file_name or [])):
        signal_file = base.parent / file_name
        if not signal_file.exists():
            raise UserError(f"signal file {signal_file} named in {header_path.name} is missing")
        if not os.access(signal_file, os.R_OK):
            raise UserError(f"cannot read {signal_file}: permission denied")


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
