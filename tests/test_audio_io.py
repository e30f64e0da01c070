"""Audio I/O: reading, resampling, atomic writing, and a clear UserError for each bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import UserError
from pipeline.io.audio import (atomic_writer, check_levels, check_writable_dir, iter_blocks, probe_audio,
                               read_audio, resample, write_audio)


def _tone(sr: int, seconds: float = 0.5, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([amp * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_read_returns_channels_first_float32(tmp_path, suffix):
    audio = _tone(22050, channels=2)
    sf.write(tmp_path / f"x{suffix}", audio.T, 22050)
    got, sr = read_audio(tmp_path / f"x{suffix}")
    assert sr == 22050 and got.shape == audio.shape and got.dtype == np.float32
    if suffix != ".ogg":  # lossless formats come back within 16-bit quantisation
        assert np.max(np.abs(got - audio)) < 1e-4


def test_resample_and_mono_downmix(tmp_path):
    sf.write(tmp_path / "x.wav", _tone(48000, channels=2).T, 48000)
    got, sr = read_audio(tmp_path / "x.wav", sample_rate=16000, mono=True)
    assert sr == 16000 and got.shape == (1, 8000)
    assert resample(_tone(16000), 16000, 16000).shape == (1, 8000)


def test_write_audio_flac_round_trip_and_no_temp_left(tmp_path):
    audio = _tone(16000, channels=2)
    write_audio(tmp_path / "out.flac", audio, 16000)
    got, sr = read_audio(tmp_path / "out.flac")
    assert sr == 16000 and np.max(np.abs(got - audio)) < 1e-6
    assert [p.name for p in tmp_path.iterdir()] == ["out.flac"]


def test_atomic_writer_removes_partial_file_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_writer(tmp_path / "stem.flac", 16000, 1) as handle:
            handle.write(np.zeros(100, dtype=np.float32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_iter_blocks_cover_the_file_exactly_once(tmp_path):
    audio = _tone(16000, seconds=1.0, channels=2)
    sf.write(tmp_path / "x.flac", audio.T, 16000, subtype="PCM_24")
    info = probe_audio(tmp_path / "x.flac")
    pieces = [block[:, left:left + valid] for block, left, valid in iter_blocks(info, 3000, 500)]
    assert np.allclose(np.concatenate(pieces, axis=1), read_audio(tmp_path / "x.flac")[0])


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("empty", "empty"),
    ("not_audio", "not a readable audio file"),
    ("surround", "6 channels"),
    ("low_rate", "8000 Hz"),
    ("suffix", "unsupported audio type"),
])
def test_bad_files_raise_user_error(tmp_path, case, message):
    path = tmp_path / "bad.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not_audio":
        path.write_text("this is a text file, not a wav\n" * 20)
    elif case == "surround":
        sf.write(path, np.zeros((1000, 6), dtype=np.float32) + 0.1, 48000)
    elif case == "low_rate":
        sf.write(path, _tone(8000).T, 8000)
    elif case == "suffix":
        path = tmp_path / "bad.txt"
        path.write_text("x")
    with pytest.raises(UserError, match=message):
        probe_audio(path)


def test_silence_and_clipping_are_refused(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(UserError, match="silent"):
        check_levels(probe_audio(tmp_path / "silent.wav"))
    clipped = np.clip(5 * _tone(16000)[0], -1, 1)
    sf.write(tmp_path / "clipped.wav", clipped, 16000, subtype="FLOAT")
    info = probe_audio(tmp_path / "clipped.wav")
    with pytest.raises(UserError, match="clipped"):
        check_levels(info)
    assert check_levels(info, allow_clipping=True)["clipped_fraction"] > 0.01


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not writable"):
        check_writable_dir(blocker / "sub")


def test_mp3_is_streamed_in_blocks_not_decoded_whole(tmp_path, monkeypatch):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3 to make the fixture")
    tone = _tone(22050, seconds=1.0, channels=2)
    sf.write(tmp_path / "x.mp3", tone.T, 22050, format="MP3")
    reads, real = [], sf.SoundFile.read

    def counted(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return real(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counted)
    info = probe_audio(tmp_path / "x.mp3")
    assert (info.format, info.channels, info.sample_rate, reads) == ("MP3", 2, 22050, [])  # the header only
    blocks = np.concatenate([chunk[:, left:left + valid] for chunk, left, valid in iter_blocks(info, 4000, 300)], axis=1)
    assert 0 < min(reads) and max(reads) <= 4600  # bounded memory: block plus context
    assert np.quantile(np.abs(blocks - tone), 0.99) < 0.05  # in place: MP3 seeks would shift blocks
    monkeypatch.undo()
    whole, sr = read_audio(tmp_path / "x.mp3")
    assert sr == 22050 and np.array_equal(blocks, whole)
    resampled, sr = read_audio(tmp_path / "x.mp3", sample_rate=16000)
    assert sr == 16000 and resampled.shape == (2, 16000)
