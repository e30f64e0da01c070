"""Spectrogram transforms on tensors for training: STFT/iSTFT, network features, IBM labels.

Inference uses the NumPy twins in :mod:`pipeline.svs.spectral` (no torch import).

The STFT is ``torch.stft`` with a periodic Hann window, ``center=True`` and
``pad_mode="constant"``, which matches ``librosa.stft`` defaults (see PERF.md §3).
Shapes: waveforms ``(..., samples)``; spectrograms ``(..., bins, frames)``.
"""

from __future__ import annotations

import torch

from pipeline.svs.config import SvsStft

_WINDOWS: dict[tuple[int, str], torch.Tensor] = {}


def _window(win_length: int, device: torch.device) -> torch.Tensor:
    key = (win_length, str(device))
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(win_length, periodic=True, device=device)
    return _WINDOWS[key]


def stft(wave: torch.Tensor, cfg: SvsStft) -> torch.Tensor:
    """Complex STFT of ``(..., samples)`` float audio -> ``(..., bins, frames)`` complex64."""
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    spec = torch.stft(
        flat, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win_length,
        window=_window(cfg.win_length, wave.device), center=True, pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: SvsStft, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`: ``(..., bins, frames)`` complex -> ``(..., length)`` float."""
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    wave = torch.istft(
        flat, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win_length,
        window=_window(cfg.win_length, spec.device), center=True, length=length,
    )
    return wave.reshape(*shape[:-2], length)


def n_frames(n_samples: int, cfg: SvsStft) -> int:
    """Frames :func:`stft` returns for ``n_samples`` samples (center=True)."""
    return n_samples // cfg.hop + 1


def features(magnitude: torch.Tensor, kind: str, log_scale: float = 1.0) -> torch.Tensor:
    """Network input from ``|S|``: ``log1p(log_scale * |S|)`` (``log``) or ``|S|``; same shape."""
    return torch.log1p(log_scale * magnitude) if kind == "log" else magnitude


def network_input(mags: list[torch.Tensor], cfg: SvsStft) -> torch.Tensor:
    """Network input from the magnitudes of the main STFT then of each ``cfg.extra_windows`` STFT
    (each ``(..., bins_r, frames)``): ``(..., bins, frames)`` features for a single-resolution
    config, else ``(..., channels, bins, frames)`` with the extra features linearly interpolated
    along frequency onto the main bins (NumPy twin: :func:`pipeline.svs.spectral.network_input`)."""
    from pipeline.svs.spectral import bin_positions

    main = features(mags[0], cfg.features, cfg.log_scale)
    if not cfg.extra_windows:
        return main
    channels = [main]
    for window, mag in zip(cfg.extra_windows, mags[1:], strict=True):
        lo, hi, w = (torch.from_numpy(a).to(mag.device) for a in bin_positions(window, cfg.n_fft))
        feat = features(mag, cfg.features, cfg.log_scale)
        channels.append(feat[..., lo, :] * (1 - w) + feat[..., hi, :] * w)
    return torch.stack(channels, dim=-3)


def resolutions(cfg: SvsStft) -> list[SvsStft]:
    """The main STFT config, then one per extra window."""
    return [cfg] + [cfg.extra(w) for w in cfg.extra_windows]


def ideal_binary_mask(
    voice: torch.Tensor, accompaniment: torch.Tensor, smooth: tuple[float, float] = (0.02, 0.98)
) -> torch.Tensor:
    """IBM label: ``smooth[1]`` where ``|V| > |A|`` else ``smooth[0]``; inputs complex or magnitude.

    Args:
        voice, accompaniment: ``(..., bins, frames)`` spectrograms.
        smooth: label values for accompaniment- and voice-dominated bins (0/1 for a hard IBM).
    """
    dominant = voice.abs() > accompaniment.abs()
    low, high = smooth
    return torch.where(dominant, high, low).float()  # Python scalars: valid on any device
