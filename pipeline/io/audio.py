"""Audio files in and out: probe, read (whole or in blocks), resample, write atomically.

Arrays are ``float32`` shaped ``(channels, samples)`` in [-1, 1]. Every format (wav, flac,
ogg, aiff and mp3, which libsndfile decodes with libmpg123) goes through soundfile and is
streamed, so long files never have to be held in memory. Every problem a user can cause
(missing file, empty file, not audio, a file cut short, more than two channels, silence,
heavy clipping, a sample rate too low to separate) becomes a one-line
:class:`~pipeline.errors.UserError`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.atomic import publish_mode
from pipeline.errors import UserError, one_line

SUPPORTED_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3"}
WRITE_FORMATS = {"flac": ("FLAC", "PCM_24"), "wav": ("WAV", "FLOAT")}
MIN_SAMPLE_RATE = 11025  # below this the voice's upper harmonics are gone; refuse
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 2
SILENCE_PEAK = 10 ** (-80 / 20)  # -80 dBFS peak: nothing to separate
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.001  # more than 0.1 % of samples pinned at full scale = clipped


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header (no decoding)."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def probe_audio(path: str | os.PathLike, *, min_sample_rate: int = MIN_SAMPLE_RATE) -> AudioInfo:
    """Check that ``path`` is a usable mono/stereo audio file and return its header.

    Args:
        path: wav, flac, ogg, aiff or mp3 file.
        min_sample_rate: lowest sample rate accepted (Hz).

    Raises:
        UserError: missing/empty/unreadable file, unsupported suffix, >2 channels, no
            samples, or a sample rate outside [min_sample_rate, 192000] Hz.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"audio file not found: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UserError(
            f"{path}: unsupported audio type {suffix or '(no suffix)'!r}; use one of "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty (0 bytes)")
    import soundfile as sf

    try:
        with _quiet(path):
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise UserError(f"{path} is not a readable audio file ({_open_error(exc)})") from exc
    sample_rate, channels, frames, fmt = int(info.samplerate), int(info.channels), int(info.frames), info.format
    if fmt == "WAV":
        _check_wav_complete(path, frames / max(sample_rate, 1))
    if channels > MAX_CHANNELS:
        raise UserError(
            f"{path} has {channels} channels; only mono and stereo are supported "
            "(downmix surround audio to stereo first)"
        )
    if frames <= 0:
        raise UserError(f"{path} holds no audio samples")
    if sample_rate < min_sample_rate:
        raise UserError(
            f"{path} is sampled at {sample_rate} Hz; at least {min_sample_rate} Hz is needed "
            "(the voice's upper harmonics are missing below that)"
        )
    if sample_rate > MAX_SAMPLE_RATE:
        raise UserError(f"{path} is sampled at {sample_rate} Hz; at most {MAX_SAMPLE_RATE} Hz is supported")
    return AudioInfo(path, sample_rate, channels, frames, fmt)


def _check_wav_complete(path: Path, seconds: float) -> None:
    """Refuse a WAV cut short: libsndfile silently reads only the part that is present."""
    offset, declared = _wav_data_chunk(path)
    present = path.stat().st_size - offset
    if 0 < present < declared < 0xFFFFFFFF:  # 0 and 0xFFFFFFFF mean "unknown" (streamed WAV)
        raise UserError(
            f"{path} is cut short: its header promises {seconds * declared / present:.1f} s of audio but the "
            f"file holds {seconds:.1f} s (an interrupted copy or download?)"
        )


def _wav_data_chunk(path: Path) -> tuple[int, int]:
    """``(offset, declared size)`` of a RIFF/WAVE file's ``data`` chunk; ``(0, 0)`` when there is none."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0, 0
        while len(chunk := handle.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return handle.tell(), size
            handle.seek(size + (size & 1), os.SEEK_CUR)
    return 0, 0


def _open_error(exc: BaseException) -> str:
    """libsndfile's reason, less its misleading "not a regular file" for an undecodable MP3."""
    reason = getattr(exc, "error_string", None) or one_line(exc)
    return "format not recognised" if "not a regular file" in reason else reason.rstrip(".")


@contextmanager
def _quiet(path: Path):
    """Mute libmpg123 around an MP3 decoder call: it prints resync notes straight to fd 2.

    Our one ``error:`` line says what went wrong. Only the call itself is muted, never the
    caller's code between blocks, so the process's own messages still reach stderr.
    """
    if path.suffix.lower() != ".mp3":
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_audio(
    path: str | os.PathLike, *, sample_rate: int | None = None, mono: bool = False,
    min_sample_rate: int = MIN_SAMPLE_RATE,
) -> tuple[np.ndarray, int]:
    """Read a whole file as ``(channels, samples)`` float32, optionally resampled/downmixed.

    Args:
        path: audio file.
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(audio, rate)`` where ``audio`` is ``(channels, samples)``.
    """
    info = probe_audio(path, min_sample_rate=min_sample_rate)
    with reading(info.path), _open_forward(info.path) as handle:
        audio = _read_block(handle, info, 0, info.frames)
    rate = info.sample_rate
    if mono and audio.shape[0] > 1:
        audio = audio.mean(axis=0, keepdims=True)
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return audio.astype(np.float32, copy=False), int(rate)


def iter_blocks(info: AudioInfo, block: int, context: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """Stream ``info.path`` in blocks with ``context`` extra samples on each side.

    Yields ``(audio, left, valid)``: ``audio`` is ``(channels, n)`` covering
    ``[start - left, start + valid + right)``; the caller keeps ``audio[:, left:left+valid]``.
    Memory is bounded by ``block + 2 * context`` samples whatever the file length. The file
    is read front to back, never seeked (see :func:`_open_forward`).

    Raises:
        UserError: the file vanished, its decoder failed (e.g. a corrupt FLAC frame), or it
            ends before the length its header promises (e.g. an MP3 cut short).
    """
    with reading(info.path), _open_forward(info.path) as handle:
        held, held_from = np.zeros((info.channels, 0), np.float32), 0  # decoded samples kept, from where
        for start in range(0, info.frames, block):
            lo, hi = max(0, start - context), min(info.frames, start + block + context)
            fresh = _read_block(handle, info, held_from + held.shape[1], hi)
            held, held_from = np.concatenate([held[:, lo - held_from:], fresh], axis=1), lo
            yield held, start - lo, min(block, info.frames - start)


def _open_forward(path: Path):
    """A ``soundfile.SoundFile`` for reading front to back, without soundfile's seek after each read.

    soundfile seeks to its own count after every read when a file is seekable; libmpg123
    seeks MP3s only approximately, so consecutive MP3 blocks came back shifted by hundreds of
    samples. Declared not seekable, the file is simply decoded in order (any format).
    """
    import soundfile as sf

    with _quiet(path):
        handle = sf.SoundFile(str(path))
    handle.seekable = lambda: False
    return handle


def _read_block(handle, info: AudioInfo, position: int, end: int) -> np.ndarray:
    """Samples ``[position, end)`` as ``(channels, n)``; refuse a file that ends before ``end``."""
    with _quiet(info.path):
        data = handle.read(end - position, dtype="float32", always_2d=True)
    if len(data) < end - position:
        raise UserError(f"{info.path} is cut short: its header promises {info.seconds:.1f} s of audio "
                        f"but it ends at {(position + len(data)) / info.sample_rate:.1f} s "
                        "(an interrupted copy or download?)")
    return np.ascontiguousarray(data.T)


@contextmanager
def reading(path: Path):
    """Decoder and file-system failures while reading ``path`` as one ``UserError`` line."""
    try:
        yield
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        if not path.exists():
            raise UserError(f"{path} disappeared while it was being read") from exc
        raise UserError(f"{path} could not be decoded ({one_line(exc)}); the file is damaged") from exc


def check_levels(info: AudioInfo, *, allow_clipping: bool = False) -> dict[str, float]:
    """Scan the file once for silence and clipping (streamed; bounded memory).

    Returns ``{"peak": float, "clipped_fraction": float}``.

    Raises:
        UserError: the file holds NaN or infinite samples, is silent (peak below -80 dBFS)
            or, unless ``allow_clipping``, more than 0.1 % of its samples sit at full scale.
    """
    peak, clipped, total = 0.0, 0, 0
    for block, left, valid in iter_blocks(info, 1 << 20, 0):
        part = np.abs(block[:, left:left + valid])
        _check_finite(info.path, part)
        if part.size:
            peak = max(peak, float(part.max()))
            clipped += int((part >= CLIP_LEVEL).sum())
            total += part.size
    if peak < SILENCE_PEAK:
        raise UserError(f"{info.path} is silent (peak {_dbfs(peak)}); there is nothing to separate")
    fraction = clipped / max(total, 1)
    if fraction > CLIP_FRACTION and not allow_clipping:
        raise UserError(
            f"{info.path} is clipped ({100 * fraction:.2f} % of samples at full scale); "
            "separation of clipped audio is unreliable — pass --allow-clipping to separate it anyway"
        )
    return {"peak": peak, "clipped_fraction": fraction}


def _check_finite(path: Path, block: np.ndarray) -> None:
    """Every block is checked: ``max()`` ignores NaN, so one late NaN would pass as audio."""
    if not np.isfinite(block).all():
        kind = "NaN" if np.isnan(block).any() else "infinite"
        raise UserError(f"{path} contains {kind} samples; there is no audio to separate there")


def _dbfs(value: float) -> str:
    return "-inf dBFS" if value <= 0 else f"{20 * np.log10(value):.1f} dBFS"


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(channels, samples)`` audio with soxr (high quality; what librosa uses by default).

    soxr is called directly: importing librosa costs seconds at every CLI start.
    """
    if orig_sr == target_sr:
        return audio
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr ships with librosa
        import librosa

        return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq", axis=-1).astype(
            np.float32, copy=False
        )
    out = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float32), orig_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def _format_for(path: Path, fmt: str | None) -> tuple[str, str]:
    name = (fmt or path.suffix.lstrip(".")).lower()
    if name not in WRITE_FORMATS:
        raise UserError(f"cannot write {path}: output format must be flac or wav, not {name!r}")
    return WRITE_FORMATS[name]


@contextmanager
def atomic_writer(path: str | os.PathLike, sample_rate: int, channels: int, fmt: str | None = None):
    """Open a soundfile for writing at a temporary name; rename into place only on success.

    On any exception the temporary file is removed, so a failed run never leaves a partial
    file at ``path``.
    """
    import soundfile as sf

    path = Path(path)
    container, subtype = _format_for(path, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write to {path.parent}: {exc.strerror or exc}") from exc
    try:
        with sf.SoundFile(tmp, "w", samplerate=int(sample_rate), channels=int(channels),
                          format=container, subtype=subtype) as handle:
            yield handle
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, fmt: str | None = None) -> Path:
    """Write ``(channels, samples)`` audio as FLAC (24-bit) or WAV (float), atomically."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    with atomic_writer(path, sample_rate, audio.shape[0], fmt) as handle:
        handle.write(np.clip(audio, -1.0, 1.0 - 2 ** -23).T if _format_for(Path(path), fmt)[0] == "FLAC" else audio.T)
    return Path(path)


def check_writable_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove it is writable (before any work is done)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"{what} {folder} is not writable: {blocker} is a file, not a folder") from exc
        raise UserError(f"{what} {folder} is not writable ({exc.strerror or exc})") from exc
    return folder


def check_writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Prove a file can be written at ``path`` (its folder created if needed) before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    check_writable_dir(path.parent, what=f"folder of the {what}")
    return path
