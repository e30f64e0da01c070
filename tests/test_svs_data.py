"""Track discovery in the three layouts and splits by song / singer (never by frame)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import UserError
from pipeline.svs.config import SvsAugment, SvsSplit
from pipeline.svs.data import PatchSampler, discover_tracks, split_tracks
from svs_util import SHARED_AUDIO, toy_stems, write_toy_dataset


def test_shared_layout_and_singer_filter(tmp_path):
    write_toy_dataset(tmp_path / "mir1k", n_tracks=6, singers=("abjones", "amy", "other"))
    tracks, notes = discover_tracks(tmp_path, singers=["abjones", "amy"])
    assert {t.singer for t in tracks} == {"abjones", "amy"} and len(tracks) == 4
    assert notes and "skipped 2" in notes[0]
    voice, acc = tracks[0].load(16000)
    assert voice.shape == acc.shape and voice.dtype == np.float32


def test_raw_mir1k_stereo_wav(tmp_path):
    voice, acc = toy_stems(0.5)
    sf.write(tmp_path / "amy_3_02.wav", np.stack([acc, voice], axis=1), 16000)
    (track,), _ = discover_tracks(tmp_path)
    assert (track.singer, track.song) == ("amy", "amy_3")
    got_voice, got_acc = track.load(16000)
    assert np.allclose(got_voice, 0.5 * voice, atol=1e-4) and np.allclose(got_acc, 0.5 * acc, atol=1e-4)


def test_musdb_stems_sum_to_accompaniment(tmp_path):
    folder = tmp_path / "Some Artist - Song"
    folder.mkdir()
    voice, acc = toy_stems(0.5)
    for name, sig in (("vocals", voice), ("drums", acc), ("bass", 0.5 * acc), ("other", 0 * acc + 0.01),
                      ("mixture", voice + 2.5 * acc)):
        sf.write(folder / f"{name}.wav", np.stack([sig, sig], axis=1), 16000, subtype="FLOAT")
    (track,), _ = discover_tracks(tmp_path)
    assert len(track.accompaniment) == 3
    _, got = track.load(16000)
    assert np.allclose(got, 1.5 * acc + 0.01, atol=1e-5)


def test_no_tracks_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no tracks"):
        discover_tracks(tmp_path)
    with pytest.raises(UserError, match="not found"):
        discover_tracks(tmp_path / "missing")


def _fake_tracks():
    from pipeline.svs.data import Track

    return [Track(f"{s}_{g}_{c:02d}", s, f"{s}_{g}") for s in ("abjones", "amy") for g in range(1, 6) for c in range(1, 4)]


def test_split_by_song_never_shares_a_song():
    parts = split_tracks(_fake_tracks(), SvsSplit(test_fraction=0.2, val_fraction=0.2), seed=0)
    songs = {k: {t.song for t in v} for k, v in parts.items()}
    assert songs["test"] and songs["val"] and songs["train"]
    assert not (songs["test"] & songs["train"]) and not (songs["val"] & songs["train"]) and not (songs["val"] & songs["test"])
    assert {t.singer for t in parts["test"]} == {"abjones", "amy"}


@pytest.mark.parametrize("held", ["abjones", "amy"])
def test_split_by_singer_holds_the_singer_out(held):
    parts = split_tracks(_fake_tracks(), SvsSplit(by="singer", test_singers=[held]), seed=0)
    assert {t.singer for t in parts["test"]} == {held}
    assert held not in {t.singer for t in parts["train"] + parts["val"]}


def test_patch_sampler_remixes_at_other_ratios():
    waves = [toy_stems(1.0, seed=s) for s in range(3)]
    sampler = PatchSampler(waves, hop=64, patch_frames=17, augment=SvsAugment(remix_p=1.0, ratio_db=(6, 6), gain_db=(0, 0)), seed=0)
    voice, acc = sampler.batch(4)
    assert voice.shape == acc.shape == (4, 16 * 64)
    assert np.max(np.abs(voice)) > 0.2 * 10 ** (5 / 20) * 0.9  # voice boosted by 6 dB


@pytest.mark.shared
def test_shared_mir1k_has_only_the_two_training_singers():
    tracks, _ = discover_tracks(SHARED_AUDIO / "mir1k", singers=["abjones", "amy"])
    assert len(tracks) == 175 and {t.singer for t in tracks} == {"abjones", "amy"}
