"""Separation datasets: discover tracks, split by song/singer, sample augmented patches.

Three on-disk layouts are understood (all give a list of :class:`Track`):

* the shared layout ``<root>[/<dataset>]/<track>/{mixture,vocals,accompaniment}.flac``;
* raw MIR-1K: a folder of stereo ``<singer>_<song>_<clip>.wav`` files, left channel =
  accompaniment, right channel = voice (scaled by 0.5 like the shared copy);
* MUSDB18-style stem folders ``<track>/{mixture,vocals,drums,bass,other}.wav`` where the
  accompaniment is the sum of every stem except vocals (and mixture).

Splits are made over whole songs (``<singer>_<song>``) or whole singers, never frames.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.io.audio import SUPPORTED_SUFFIXES, read_audio

MIR1K_NAME = re.compile(r"^(?P<singer>[A-Za-z]+)_(?P<song>\d+)_(?P<clip>\d+)$")
STEM_NAMES = ("mixture", "vocals", "accompaniment")


@dataclass
class Track:
    """One song excerpt with its stems on disk (or a raw MIR-1K stereo file)."""

    track_id: str
    singer: str
    song: str
    vocals: Path | None = None
    accompaniment: list[Path] = field(default_factory=list)
    mixture: Path | None = None
    raw_mir1k: Path | None = None

    def load(self, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Mono ``(vocals, accompaniment)`` float32 arrays at ``sample_rate``, equal length."""
        if self.raw_mir1k is not None:
            stereo, _ = read_audio(self.raw_mir1k, sample_rate=sample_rate, min_sample_rate=8000)
            if stereo.shape[0] != 2:
                raise UserError(f"{self.raw_mir1k}: MIR-1K wav must be stereo (left music, right voice)")
            return 0.5 * stereo[1], 0.5 * stereo[0]
        voice, _ = read_audio(self.vocals, sample_rate=sample_rate, mono=True, min_sample_rate=8000)
        acc = None
        for path in self.accompaniment:
            part, _ = read_audio(path, sample_rate=sample_rate, mono=True, min_sample_rate=8000)
            acc = part if acc is None else _add(acc, part)
        n = min(voice.shape[1], acc.shape[1])
        return voice[0, :n], acc[0, :n]


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = min(a.shape[1], b.shape[1])
    return a[:, :n] + b[:, :n]


def _stem(folder: Path, name: str) -> Path | None:
    for suffix in (".flac", ".wav", ".ogg", ".mp3"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def _track_from_folder(folder: Path) -> Track | None:
    vocals = _stem(folder, "vocals")
    if vocals is None:
        return None
    acc = _stem(folder, "accompaniment")
    if acc is not None:
        others = [acc]
    else:  # MUSDB: every other stem except the mixture
        others = sorted(
            p for p in folder.iterdir()
            if p.suffix.lower() in SUPPORTED_SUFFIXES and p.stem not in ("vocals", "mixture") and not p.name.startswith(".")
        )
    if not others:
        return None
    match = MIR1K_NAME.match(folder.name)
    singer = match["singer"] if match else folder.name
    song = f"{match['singer']}_{match['song']}" if match else folder.name
    return Track(folder.name, singer, song, vocals, others, _stem(folder, "mixture"))


def discover_tracks(root: str | Path, singers: list[str] | None = None) -> tuple[list[Track], list[str]]:
    """Find every track under ``root`` in any supported layout.

    Args:
        root: a dataset folder, a folder of datasets, or a track folder.
        singers: MIR-1K singers allowed; clips of other MIR-1K singers are skipped.

    Returns:
        ``(tracks, notes)`` sorted by track id; ``notes`` says what was skipped.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"data folder not found: {root}")
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    tracks: list[Track] = []
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    candidates += sorted(q for p in root.iterdir() if p.is_dir() for q in p.iterdir() if q.is_dir())
    seen = set()
    for folder in candidates:
        track = _track_from_folder(folder)
        if track and track.track_id not in seen:
            seen.add(track.track_id)
            tracks.append(track)
    for wav in sorted(root.glob("*.wav")):  # raw MIR-1K Wavfile folder
        match = MIR1K_NAME.match(wav.stem)
        if match and wav.stem not in seen:
            seen.add(wav.stem)
            tracks.append(Track(wav.stem, match["singer"], f"{match['singer']}_{match['song']}", raw_mir1k=wav))
    notes = []
    if singers:
        allowed = set(singers)
        skipped = [t for t in tracks if MIR1K_NAME.match(t.track_id) and t.singer not in allowed]
        if skipped:
            notes.append(f"skipped {len(skipped)} MIR-1K clips of singers not in {sorted(allowed)}")
        tracks = [t for t in tracks if t not in skipped]
    if not tracks:
        raise UserError(
            f"no tracks found in {root}: expected <track>/vocals.flac + accompaniment.flac "
            "(or MUSDB stems, or raw MIR-1K <singer>_<song>_<clip>.wav files)"
        )
    return sorted(tracks, key=lambda t: t.track_id), notes


def split_tracks(tracks: list[Track], split, seed: int) -> dict[str, list[Track]]:
    """Split into ``train``/``val``/``test`` by whole songs or whole singers.

    ``split`` is an :class:`~pipeline.svs.config.SvsSplit`. By song: per singer, a
    ``test_fraction`` share of songs (at least one when the singer has two or more) goes to
    test, then ``val_fraction`` of the remaining songs to validation. By singer: the
    ``test_singers`` go to test, validation songs come from the rest.
    """
    rng = random.Random(seed)
    by_singer: dict[str, list[str]] = {}
    for t in tracks:
        by_singer.setdefault(t.singer, [])
        if t.song not in by_singer[t.singer]:
            by_singer[t.singer].append(t.song)
    test_songs: set[str] = set()
    if split.by == "singer":
        unknown = set(split.test_singers) - set(by_singer)
        if not split.test_singers or unknown:
            raise UserError(f"split.by=singer needs test_singers among {sorted(by_singer)} (got {split.test_singers})")
        test_songs = {s for singer in split.test_singers for s in by_singer[singer]}
    elif split.test_songs:
        test_songs = set(split.test_songs)
    else:
        for singer, songs in sorted(by_singer.items()):
            songs = sorted(songs)
            rng.shuffle(songs)
            k = int(round(split.test_fraction * len(songs)))
            if split.test_fraction > 0 and len(songs) >= 2:
                k = max(k, 1)
            test_songs.update(songs[:k])
    rest = sorted({t.song for t in tracks} - test_songs)
    rng.shuffle(rest)
    n_val = int(round(split.val_fraction * len(rest)))
    if split.val_fraction > 0 and len(rest) >= 3:
        n_val = max(n_val, 1)
    val_songs = set(rest[:n_val])
    return {
        "train": [t for t in tracks if t.song not in test_songs | val_songs],
        "val": [t for t in tracks if t.song in val_songs],
        "test": [t for t in tracks if t.song in test_songs],
    }


class PatchSampler:
    """Random training patches with remix augmentation, computed on the fly from waveforms.

    Holds mono voice/accompaniment waveforms at the model rate (MIR-1K's 175 clips are
    about 90 MB as float32) and draws segments of ``(patch_frames - 1) * hop`` samples.
    With probability ``remix_p`` the voice is paired with another clip's accompaniment at
    a voice-to-music ratio drawn from ``ratio_db``; every patch gets a random gain.
    """

    def __init__(self, waves: list[tuple[np.ndarray, np.ndarray]], hop: int, patch_frames: int, augment, seed: int):
        if not waves:
            raise UserError("no training tracks left after the split")
        self.waves = waves
        self.segment = (patch_frames - 1) * hop
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(v) for v, _ in waves], dtype=float)
        self.weights = lengths / lengths.sum()

    def _cut(self, wave: np.ndarray) -> np.ndarray:
        n = self.segment
        if len(wave) <= n:
            return np.pad(wave, (0, n - len(wave)))
        start = int(self.rng.integers(0, len(wave) - n))
        return wave[start:start + n]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(voice, accompaniment)`` each ``(size, segment)`` float32, gains applied."""
        aug = self.augment
        voices, accs = [], []
        for _ in range(size):
            i = int(self.rng.choice(len(self.waves), p=self.weights))
            voice = self._cut(self.waves[i][0])
            if self.rng.random() < aug.remix_p and len(self.waves) > 1:
                j = int(self.rng.choice(len(self.waves), p=self.weights))
                acc = self._cut(self.waves[j][1])
                ratio = 10 ** (self.rng.uniform(*aug.ratio_db) / 20)
                voice = voice * ratio
            else:
                acc = self._cut(self.waves[i][1])
            gain = 10 ** (self.rng.uniform(*aug.gain_db) / 20)
            voices.append(voice * gain)
            accs.append(acc * gain)
        return np.stack(voices).astype(np.float32), np.stack(accs).astype(np.float32)
