"""Helpers for the singing-voice separation tests: synthetic stems, toy datasets, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE_AUDIO = REPO / "samples" / "audio" / "music-delta-80s-rock.ogg"
SHARED_AUDIO = REPO.parent / "shared" / "data" / "audio"


def toy_stems(seconds: float = 2.0, sr: int = 16000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 'voice' of gated harmonic tones (300 Hz - 4 kHz) and an 'accompaniment' of low noise + bass."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(300, 500)
    voice = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    voice *= (np.sin(2 * np.pi * 1.5 * t) > -0.3)
    noise = rng.standard_normal(len(t))
    kernel = np.hanning(31)
    low = np.convolve(noise, kernel / kernel.sum(), mode="same")
    acc = 2.0 * low + 0.5 * np.sin(2 * np.pi * 80 * t)
    voice = 0.2 * voice / np.max(np.abs(voice))
    acc = 0.2 * acc / np.max(np.abs(acc))
    return voice.astype(np.float32), acc.astype(np.float32)


def write_toy_dataset(root: Path, n_tracks: int = 4, singers=("abjones", "amy"), seconds: float = 2.0) -> Path:
    """Shared-layout tracks ``<singer>_<song>_01/{mixture,vocals,accompaniment}.flac`` at 16 kHz."""
    import soundfile as sf

    for i in range(n_tracks):
        singer = singers[i % len(singers)]
        folder = root / f"{singer}_{i + 1}_01"
        folder.mkdir(parents=True, exist_ok=True)
        voice, acc = toy_stems(seconds, seed=i)
        sf.write(folder / "vocals.flac", voice, 16000, subtype="PCM_24")
        sf.write(folder / "accompaniment.flac", acc, 16000, subtype="PCM_24")
        sf.write(folder / "mixture.flac", voice + acc, 16000, subtype="PCM_24")
    return root


def tiny_config(**train):
    """A small fcn config that trains in seconds (16 kHz, n_fft 256)."""
    from pipeline.svs.config import SvsConfig

    cfg = SvsConfig.model_validate({
        "name": "svs-tiny",
        "stft": {"sample_rate": 16000, "n_fft": 256, "win_length": 256, "hop": 64},
        "model": {"name": "fcn", "args": {"channels": [4, 8, 8]}},
        "split": {"by": "song", "test_fraction": 0.25, "val_fraction": 0.0},
        "train": {"pretrain_steps": 2, "steps": 4, "batch_size": 2, "patch_frames": 32, "val_every": 2,
                  "threads": 1, **train},
        "separate": {"chunk_s": 0.5, "context_s": 0.1},
    })
    return cfg


def tiny_bundle(folder: Path) -> Path:
    """A randomly initialised tiny separator folder (model.json + model.pt + model.onnx)."""
    import torch

    from pipeline.svs.bundle import save_bundle
    from pipeline.svs.models import create_separator

    cfg = tiny_config()
    torch.manual_seed(0)
    model = create_separator(cfg.model.name, cfg.stft.n_bins, **cfg.model.args)
    save_bundle(folder, cfg, model, extra={"run_id": "tiny-run"})
    return folder


import pytest  # noqa: E402


@pytest.fixture(autouse=False)
def one_thread():
    """Run torch single-threaded (the 2-core test box is shared; spinning threads cost more)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
