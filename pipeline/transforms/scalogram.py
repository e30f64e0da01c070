"""Batched FFT continuous-wavelet transform (complex Morlet) and the stacked 12-lead image.

Written by hand rather than calling ``pywt.cwt`` because one batched FFT over all leads and
scales is ~100x faster on 2 cores (see ``bench/scalogram.py`` and shared PERF.md §1); a test
checks it against ``pywt.cwt`` scale by scale.

Semantics: the CWT runs over the whole record and is then cut into 1-s windows, so the
low-frequency rows are not dominated by window-edge artefacts (PERF.md, correctness §1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import sparse


def parse_cmor(wavelet: str) -> tuple[float, float]:
    """``cmorB-C`` (pywt naming) -> (bandwidth B, centre frequency C)."""
    match = re.fullmatch(r"cmor(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", wavelet)
    if not match:
        raise ValueError(f"wavelet {wavelet!r} is not a complex Morlet 'cmorB-C' (e.g. 'cmor1.5-1.0')")
    return float(match.group(1)), float(match.group(2))


def scale_frequencies(f_min: float, f_max: float, n_scales: int) -> np.ndarray:
    """Log-spaced analysis frequencies in Hz, highest first (row 0 = f_max)."""
    return np.geomspace(f_max, f_min, n_scales)


def _next_5_smooth(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast for every FFT library; 7/11 factors are slow in MKL)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


@lru_cache(maxsize=16)
def _wavelet_bank(n_fft: int, scales: tuple[float, ...], bandwidth: float, centre: float) -> np.ndarray:
    """(n_scales, n_fft // 2 + 1) analytic Morlet spectra sqrt(a) exp(-pi^2 B (a nu - C)^2)."""
    nu = np.arange(n_fft // 2 + 1) / n_fft
    a = np.asarray(scales)[:, None]
    return (np.sqrt(a) * np.exp(-(math.pi**2) * bandwidth * (a * nu - centre) ** 2)).astype(np.complex64)


def cwt_magnitude(
    x: np.ndarray, fs: float, frequencies: np.ndarray, wavelet: str = "cmor1.5-1.0", workers: int = 1
) -> np.ndarray:
    """|CWT| of every row of ``x``: one rfft per lead, one batched inverse FFT over all scales.

    Matches ``abs(pywt.cwt(x, scales=C*fs/frequencies, wavelet=wavelet, method='fft'))`` up to
    pywt's discretisation (per-scale correlation > 0.99). The FFT length covers the record
    plus the half-support of the widest wavelet, so the zero tail absorbs both edges.
    Leads are processed one at a time so the (scales, n_fft) work buffer stays in cache;
    for throughput run one process per core (``workers=1``) rather than threads.

    Args:
        x: (leads, n_samples) real signal sampled at ``fs`` Hz.
        frequencies: (n_scales,) analysis frequencies in Hz.
    Returns:
        (leads, n_scales, n_samples) float32 magnitudes.
    """
    bandwidth, centre = parse_cmor(wavelet)
    scales = centre * fs / np.asarray(frequencies, dtype=float)
    leads, n = x.shape
    half_support = int(math.ceil(scales.max() * math.sqrt(bandwidth * math.log(1e4))))
    n_fft = _next_5_smooth(n + half_support)
    bank = _wavelet_bank(n_fft, tuple(scales.tolist()), bandwidth, centre)
    n_bins = bank.shape[1]
    spectrum = scipy.fft.rfft(x.astype(np.float32), n=n_fft, axis=-1, workers=workers)
    out = np.empty((leads, len(scales), n), dtype=np.float32)
    work = np.empty((len(scales), n_fft), dtype=np.complex64)
    for lead in range(leads):
        np.multiply(bank, spectrum[lead], out=work[:, :n_bins])
        work[:, n_bins:] = 0  # analytic: negative frequencies stay zero
        coeffs = scipy.fft.ifft(work, axis=-1, workers=workers, overwrite_x=True)
        np.abs(coeffs[:, :n], out=out[lead])
    return out


@lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """(n_out, n_in) antialiased linear-interpolation matrix (PIL/torch ``antialias=True``).

    Hand-written: two sparse products are ~2x faster than torch's antialiased interpolate
    and avoid importing torch on the prediction path (PERF.md §4).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    rows, cols, vals = [], [], []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = int(math.floor(centre - support)), int(math.ceil(centre + support))
        taps = np.arange(max(lo, 0), min(hi, n_in))
        weights = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - centre) / support))
        weights /= weights.sum()
        rows.extend([i] * len(taps))
        cols.extend(taps.tolist())
        vals.extend(weights.tolist())
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_out, n_in), dtype=np.float32)


@dataclass(frozen=True)
class ScalogramSpec:
    """What one stacked image holds; built from ``EcgScalogram`` config."""

    fs: float
    wavelet: str = "cmor1.5-1.0"
    n_scales: int = 64
    f_min_hz: float = 0.5
    f_max_hz: float = 100.0
    window_s: float = 1.0
    rows_per_lead: int = 16
    cols_per_window: int = 64

    @classmethod
    def from_config(cls, cfg, fs: float) -> "ScalogramSpec":
        return cls(
            fs=fs,
            wavelet=cfg.wavelet,
            n_scales=cfg.n_scales,
            f_min_hz=cfg.f_min_hz,
            f_max_hz=cfg.f_max_hz,
            window_s=cfg.window_s,
            rows_per_lead=cfg.scale_rows_per_lead,
            cols_per_window=cfg.time_cols_per_window,
        )


def stacked_scalogram(x: np.ndarray, spec: ScalogramSpec) -> np.ndarray:
    """Whole-record stacked scalogram image: leads stacked row-wise, windows side by side.

    Args:
        x: (leads, n_windows * window_len) preprocessed signal at ``spec.fs``.
    Returns:
        (leads * rows_per_lead, n_windows * cols_per_window) float32 image of
        log-magnitudes, standardised per record. Split it into windows with
        :func:`split_windows`.
    """
    window = int(round(spec.window_s * spec.fs))
    n_windows = x.shape[-1] // window
    magnitude = cwt_magnitude(x, spec.fs, scale_frequencies(spec.f_min_hz, spec.f_max_hz, spec.n_scales), spec.wavelet)
    leads, n_scales, n = magnitude.shape
    time_matrix = resize_matrix(n, n_windows * spec.cols_per_window)
    scale_matrix = resize_matrix(n_scales, spec.rows_per_lead).toarray()
    shrunk = (time_matrix @ magnitude.reshape(leads * n_scales, n).T).T  # (leads*scales, cols)
    shrunk = np.einsum("rs,lsc->lrc", scale_matrix, shrunk.reshape(leads, n_scales, -1))
    image = np.log(shrunk.reshape(leads * spec.rows_per_lead, -1) + 1e-3)
    return ((image - image.mean()) / (image.std() + 1e-6)).astype(np.float32)


def split_windows(image: np.ndarray, cols_per_window: int) -> np.ndarray:
    """(rows, n_windows * cols) -> (n_windows, rows, cols): one image per 1-s window."""
    rows, cols = image.shape[-2:]
    n_windows = cols // cols_per_window
    return image[..., : n_windows * cols_per_window].reshape(*image.shape[:-2], rows, n_windows, cols_per_window).swapaxes(-3, -2)
