"""STFT/iSTFT against librosa, the IBM on known signals, mask application."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from svs_util import one_thread  # noqa: F401

from pipeline.svs.config import SvsStft
from pipeline.svs.transforms import (apply_mask, features, ideal_binary_mask, istft, n_frames, stft,
                                     threshold_mask)

CONFIGS = [SvsStft(), SvsStft(sample_rate=22050, n_fft=4096, win_length=1024, hop=256)]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "lin2018"])
def test_stft_matches_librosa_and_round_trips(cfg):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(cfg.sample_rate // 2).astype(np.float32) * 0.1
    spec = stft(torch.from_numpy(x), cfg)
    ref = librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win_length)
    assert spec.shape == ref.shape == (cfg.n_bins, n_frames(len(x), cfg))
    assert np.max(np.abs(spec.abs().numpy() - np.abs(ref))) < 1e-4 * np.abs(ref).max()
    back = istft(spec, cfg, length=len(x)).numpy()
    assert np.sqrt(np.mean((back - x) ** 2)) < 1e-6


def test_batched_stft_keeps_leading_axes():
    cfg = SvsStft(n_fft=256, win_length=256, hop=64)
    x = torch.randn(2, 3, 1000)
    spec = stft(x, cfg)
    assert spec.shape == (2, 3, 129, n_frames(1000, cfg))
    assert torch.allclose(istft(spec, cfg, 1000), x, atol=1e-5)


def test_ibm_marks_the_louder_source_per_bin():
    cfg = SvsStft(n_fft=512, win_length=512, hop=128)
    t = torch.arange(16000) / 16000
    voice = 0.5 * torch.sin(2 * torch.pi * 1000 * t)  # bin 32
    acc = 0.5 * torch.sin(2 * torch.pi * 250 * t)  # bin 8
    mask = ideal_binary_mask(stft(voice, cfg), stft(acc, cfg))
    mid = slice(5, -5)
    assert torch.allclose(mask[32, mid], torch.tensor(0.98))
    assert torch.allclose(mask[8, mid], torch.tensor(0.02))
    assert set(torch.unique(mask).tolist()) <= {0.02, 0.98} or torch.allclose(
        torch.unique(mask), torch.tensor([0.02, 0.98]))
    hard = ideal_binary_mask(stft(voice, cfg), stft(acc, cfg), (0.0, 1.0))
    assert set(torch.unique(hard).tolist()) == {0.0, 1.0}


def test_threshold_and_mask_application():
    prob = torch.tensor([0.1, 0.34, 0.35, 0.9])
    assert threshold_mask(prob, 0.35).tolist() == pytest.approx([0.0, 0.0, 0.35, 0.9])
    mix = torch.randn(4, 7, dtype=torch.complex64)
    voice, acc = apply_mask(mix, torch.rand(4, 7))
    assert torch.allclose(voice + acc, mix)
    assert torch.allclose(features(torch.tensor([0.0, 1.0]), "log"), torch.log1p(torch.tensor([0.0, 1.0])))
