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


def test_multiresolution_input_is_the_same_in_numpy_and_torch():
    """stft.extra_windows: separation (NumPy) feeds the network what training (torch) fed it."""
    from pipeline.svs.transforms import network_input, resolutions

    cfg = SvsStft(extra_windows=[512, 2048])
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 5000)) * 0.1).astype(np.float32)
    ours = spectral.network_input(x, np.abs(spectral.stft(x, cfg)), cfg, gain=0.5)
    reference = network_input([(0.5 * stft(torch.from_numpy(x), r)).abs() for r in resolutions(cfg)], cfg).numpy()
    assert ours.shape == reference.shape == (2, 3, cfg.n_bins, n_frames(5000, cfg))
    assert np.abs(ours - reference).max() < 1e-5 * np.abs(reference).max()
    assert np.allclose(ours[:, 0], spectral.features(0.5 * np.abs(spectral.stft(x, cfg)), "log"), atol=1e-6)
    wide = spectral.features(0.5 * np.abs(spectral.stft(x, cfg.extra(2048))), "log")
    assert np.allclose(ours[:, 2], wide[:, ::2], atol=1e-6)  # 2048 points: every other bin lands on a main bin
    t = np.arange(8000) / 16000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)[None]  # main bin 64 at every resolution
    peaks = spectral.network_input(tone, np.abs(spectral.stft(tone, cfg)), cfg)[0, :, :, 10:-10].mean(-1).argmax(-1)
    assert peaks.tolist() == [64, 64, 64]
    single = SvsStft()
    mag = np.abs(spectral.stft(x, single))
    assert np.array_equal(spectral.network_input(x, mag, single), spectral.features(mag, "log"))


def test_extra_windows_are_checked_and_absent_from_single_resolution_configs():
    from pydantic import ValidationError

    from pipeline.config import config_hash
    from pipeline.svs.config import SvsConfig

    assert "extra_windows" not in SvsConfig().model_dump()["stft"]  # hashes, work folders, model.json unchanged
    assert config_hash(SvsConfig()) == config_hash(SvsConfig.model_validate({"stft": {"extra_windows": []}}))
    assert SvsConfig.model_validate({"stft": {"extra_windows": [512]}}).model_dump()["stft"]["extra_windows"] == [512]
    for bad in ([511], [128]):
        with pytest.raises(ValidationError, match="even and >= hop"):
            SvsStft(extra_windows=bad)
    with pytest.raises(ValidationError, match="lin2018"):
        SvsConfig.model_validate({"stft": {"extra_windows": [512]}, "model": {"name": "lin2018"}})
