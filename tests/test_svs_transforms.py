"""STFT/iSTFT against librosa (torch and NumPy twins), the IBM on known signals, masks."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
from svs_util import one_thread  # noqa: F401

from pipeline.svs import spectral
from pipeline.svs.config import SvsStft
from pipeline.svs.transforms import features, ideal_binary_mask, istft, n_frames, stft

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


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "lin2018"])
def test_numpy_stft_equals_torch_stft(cfg):
    """Inference (NumPy) and training (torch) see the same spectrogram and resynthesis."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, cfg.sample_rate // 3)) * 0.1).astype(np.float32)
    ours = spectral.stft(x, cfg)
    reference = stft(torch.from_numpy(x), cfg).numpy()
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-5 * np.abs(reference).max()
    mask = rng.random(ours.shape).astype(np.float32)
    back = spectral.istft(ours * mask, cfg, length=x.shape[-1])
    expected = istft(torch.from_numpy(reference * mask), cfg, length=x.shape[-1]).numpy()
    assert np.abs(back - expected).max() < 1e-5
    assert np.abs(spectral.istft(ours, cfg, length=x.shape[-1]) - x).max() < 1e-5


def test_threshold_wiener_and_features():
    prob = np.array([0.1, 0.34, 0.35, 0.9])
    assert spectral.threshold_mask(prob, 0.35).tolist() == pytest.approx([0.0, 0.0, 0.35, 0.9])
    assert spectral.sigmoid(np.array([-800.0, 0.0, 800.0])).tolist() == [0.0, 0.5, 1.0]
    soft = spectral.wiener_mask(np.array([0.0, 0.5, 1.0]), np.ones(3))
    assert soft.tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)
    mag = np.array([0.0, 1.0, 3.0], dtype=np.float32)
    assert np.allclose(spectral.features(mag, "log"), features(torch.from_numpy(mag), "log").numpy())
