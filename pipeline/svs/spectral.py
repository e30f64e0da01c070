"""NumPy spectrogram transforms for inference: STFT/iSTFT, features, voice masks.

The separation path runs on NumPy + ONNX Runtime so it never imports torch (~3 s of start-up
on 2 cores, more than the whole STFT work of a 3-minute song; numpy's FFT also spares
scipy.fft's import). Semantics match
:mod:`pipeline.svs.transforms` (the torch versions used in training) exactly: periodic Hann
window centred in ``n_fft``, ``center=True`` with zero padding; a test checks both.
Shapes: waveforms ``(..., samples)``; spectrograms ``(..., bins, frames)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.svs.config import SvsStft


@lru_cache(maxsize=8)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann of ``win_length`` zero-padded to ``n_fft`` in the centre (as torch.stft)."""
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)).astype(np.float32)
    left = (n_fft - win_length) // 2
    return np.pad(hann, (left, n_fft - win_length - left))


def stft(wave: np.ndarray, cfg: SvsStft) -> np.ndarray:
    """Complex STFT of ``(..., samples)`` float audio -> ``(..., bins, frames)`` complex64."""
    half = cfg.n_fft // 2
    padded = np.pad(np.asarray(wave, dtype=np.float32), [(0, 0)] * (wave.ndim - 1) + [(half, half)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft, axis=-1)[..., :: cfg.hop, :]
    spec = np.fft.rfft(frames * _window(cfg.n_fft, cfg.win_length), axis=-1)
    return np.swapaxes(spec, -1, -2).astype(np.complex64, copy=False)


def istft(spec: np.ndarray, cfg: SvsStft, length: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add): ``(..., bins, frames)`` -> ``(..., length)``."""
    window = _window(cfg.n_fft, cfg.win_length)
    frames = np.fft.irfft(np.swapaxes(spec, -1, -2), n=cfg.n_fft, axis=-1).astype(np.float32) * window
    n_frames, hop, n_fft = frames.shape[-2], cfg.hop, cfg.n_fft
    total = (n_frames - 1) * hop + n_fft
    out = np.zeros((*frames.shape[:-2], total), dtype=np.float32)
    envelope = np.zeros(total, dtype=np.float32)
    squared = window**2
    for t in range(n_frames):  # n_frames slices of n_fft samples: cheap next to the FFTs
        out[..., t * hop : t * hop + n_fft] += frames[..., t, :]
        envelope[t * hop : t * hop + n_fft] += squared
    half = n_fft // 2
    out, envelope = out[..., half : half + length], envelope[half : half + length]
    out /= np.where(envelope > 1e-11, envelope, 1.0)
    if out.shape[-1] < length:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])])
    return out


def features(magnitude: np.ndarray, kind: str, log_scale: float = 1.0) -> np.ndarray:
    """Network input from ``|S|``, as :func:`pipeline.svs.transforms.features`."""
    return np.log1p(log_scale * magnitude) if kind == "log" else magnitude


@lru_cache(maxsize=8)
def bin_positions(window: int, n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from the ``window // 2 + 1`` bins of a ``window``-point STFT onto the
    ``n_fft // 2 + 1`` main bins (same frequencies in Hz): ``(lo, hi, weight of hi)`` per main bin."""
    pos = np.arange(n_fft // 2 + 1) * (window / n_fft)
    lo = np.minimum(np.floor(pos).astype(np.int64), window // 2)
    hi = np.minimum(lo + 1, window // 2)
    return lo, hi, (pos - lo).astype(np.float32)[:, None]


def onto_main_bins(feats: np.ndarray, window: int, n_fft: int) -> np.ndarray:
    """``(..., window // 2 + 1, frames)`` -> ``(..., n_fft // 2 + 1, frames)`` (:func:`bin_positions`)."""
    lo, hi, w = bin_positions(window, n_fft)
    return feats[..., lo, :] * (1 - w) + feats[..., hi, :] * w


def network_input(audio: np.ndarray, mag: np.ndarray, cfg: SvsStft, gain: float = 1.0) -> np.ndarray:
    """Network input of ``(..., samples)`` audio whose main STFT magnitude is ``mag``, its level
    scaled by ``gain``: ``(..., bins, frames)`` features, or with ``cfg.extra_windows``
    ``(..., channels, bins, frames)`` (main first, then each extra window's features interpolated
    onto the main bins), as :func:`pipeline.svs.transforms.network_input`."""
    main = features(mag if gain == 1.0 else gain * mag, cfg.features, cfg.log_scale).astype(np.float32)
    if not cfg.extra_windows:
        return main
    channels = [main]
    for window in cfg.extra_windows:
        extra = gain * np.abs(stft(audio, cfg.extra(window)))
        channels.append(onto_main_bins(features(extra, cfg.features, cfg.log_scale), window, cfg.n_fft))
    return np.stack(channels, axis=-3).astype(np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free logistic


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Zero voice probabilities below ``threshold``; the rest scale the mixture (Lin et al.)."""
    return np.where(prob >= threshold, prob, 0.0).astype(np.float32)


def wiener_mask(voice_mask: np.ndarray, mix_mag: np.ndarray, power: float = 2.0, eps: float = 1e-8) -> np.ndarray:
    """Soft Wiener-like post-filter: ``|V|^p / (|V|^p + |A|^p)`` from the masked magnitudes."""
    v = (voice_mask * mix_mag) ** power
    a = ((1 - voice_mask) * mix_mag) ** power
    return (v / (v + a + eps)).astype(np.float32)
