"""Batched FFT continuous-wavelet transform (complex Morlet) and the stacked 12-lead image.

Written by hand rather than calling ``pywt.cwt`` because one batched FFT over all leads and
scales is ~100x faster on 2 cores (see ``bench/scalogram.py`` and shared PERF.md §1); a test
checks it against ``pywt.cwt`` scale by scale.

Semantics: the CWT runs over the whole record and is then cut into 1-s windows, so the
low-frequency rows are not dominated by window-edge artefacts (PERF.md, correctness §1).

Two savings over one dense transform: each scale gets the FFT length its own support needs
(short wavelets, short FFTs), and when the image is narrower than the record (the models use
32 columns per second of 500 samples) the low-frequency scales are computed at a lower rate
and averaged straight to the image columns (multi-rate CWT).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np


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


#: Wavelet spectra below exp(-_TAIL) of their peak are treated as zero (support and band edges).
_TAIL = math.log(1e4)
#: Complex work buffer per FFT call: about the per-core L2 cache of the machine measured (bench/scalogram.py).
_WORK_BYTES = 1 << 20


@lru_cache(maxsize=64)
def _wavelet_bank(n_fft: int, n_bins: int, scales: tuple[float, ...], bandwidth: float, centre: float) -> np.ndarray:
    """(n_scales, n_bins) analytic Morlet spectra sqrt(a) exp(-pi^2 B (a nu - C)^2) at nu = k / n_fft."""
    nu = np.arange(n_bins) / n_fft
    a = np.asarray(scales)[:, None]
    return (np.sqrt(a) * np.exp(-(math.pi**2) * bandwidth * (a * nu - centre) ** 2)).astype(np.complex64)


@lru_cache(maxsize=16)
def _plan(n: int, scales: tuple[float, ...], bandwidth: float, centre: float, max_stride: int):
    """Group scales by FFT length and output stride: ``[(n_fft, stride, rows), ...]``.

    Each scale needs an FFT covering the record plus its own half-support (so the zero tail
    absorbs both edges), not the widest wavelet's: short wavelets get short FFTs. A scale whose
    band ends below ``fs / (2 * stride)`` (analytic signal: below ``fs / stride``, with margin
    2x) can be computed at every ``stride``-th sample exactly, by an inverse FFT of only the
    first ``n_fft / stride`` bins: the multi-rate part.
    """
    needs = [n + int(math.ceil(a * math.sqrt(bandwidth * _TAIL))) for a in scales]
    ladder = [_next_5_smooth(min(needs))]  # a few lengths >= 15% apart: fewer, larger batches
    while ladder[-1] < max(needs):
        step = max(int(ladder[-1] * 1.15), min(x for x in needs if x > ladder[-1]))
        ladder.append(min(_next_5_smooth(step), _next_5_smooth(max(needs))))
    groups: dict[tuple[int, int], list[int]] = {}
    for row, (a, need) in enumerate(zip(scales, needs)):
        n_fft = next(length for length in ladder if length >= need)
        band_edge = (centre + math.sqrt(_TAIL) / (math.pi * math.sqrt(bandwidth))) / a  # cycles/sample
        stride = 1
        for d in range(max_stride, 1, -1):
            if n_fft % d == 0 and band_edge * d <= 0.5:
                stride = d
                break
        groups.setdefault((n_fft, stride), []).append(row)
    return [(n_fft, stride, np.array(rows)) for (n_fft, stride), rows in sorted(groups.items())]


def _scale_groups(n: int, fs: float, frequencies: np.ndarray, wavelet: str, n_out: int | None):
    """The groups of :func:`_plan` for ``n`` samples, each with what its inverse FFTs need:
    ``(n_fft, stride, rows, n_inverse, n_keep, bank)`` (inverse FFT length, samples kept, wavelet
    spectra). Shared by the numpy and torch CWTs, so both compute the same thing."""
    bandwidth, centre = parse_cmor(wavelet)
    scales = tuple((centre * fs / np.asarray(frequencies, dtype=float)).tolist())
    # about 2 computed samples per output column (rounded), stride <= 8: within 1% of each scale's
    # peak against the full-rate result (tested). Rounding instead of truncating lets the 640-column
    # image of a 10-s record use stride 4: ~1.7x faster, and ecg-default's predictions on its 737
    # training records kept every class (largest probability change 0.004).
    max_stride = 1 if n_out is None else max(1, min(8, round(n / n_out / 2)))
    for n_fft, stride, rows in _plan(n, scales, bandwidth, centre, max_stride):
        m, n_keep = n_fft // stride, n if stride == 1 else (n - 1) // stride + 2
        bank = _wavelet_bank(n_fft, min(m, n_fft // 2 + 1), tuple(scales[r] for r in rows), bandwidth, centre)
        yield n_fft, stride, rows, m, n_keep, bank


@lru_cache(maxsize=64)
def _strided_resize_matrix(n: int, stride: int, n_out: int) -> "BandMatrix":
    """:func:`resize_matrix` (n samples -> n_out) for input known only at every ``stride``-th sample.

    The missing samples are linearly interpolated first (folded into the matrix), which keeps
    the result within ~1% of resizing the full-rate magnitudes. Expects ``(n - 1) // stride + 2``
    input samples, so the last one lies at or beyond sample ``n - 1``.
    """
    full = resize_matrix(n, n_out)
    if stride == 1:
        return full
    t = full.first[:, None] + np.arange(full.weights.shape[1])  # full-rate taps of each output
    left, frac = t // stride, (t % stride) / stride
    first = left[:, 0]
    weights = np.zeros((n_out, int((left[:, -1] - first).max()) + 2), dtype=np.float32)
    rows = np.broadcast_to(np.arange(n_out)[:, None], t.shape)
    np.add.at(weights, (rows, left - first[:, None]), full.weights * (1 - frac))
    np.add.at(weights, (rows, left - first[:, None] + 1), full.weights * frac)
    return BandMatrix(first, weights, (n - 1) // stride + 2)


def cwt_magnitude(
    x: np.ndarray,
    fs: float,
    frequencies: np.ndarray,
    wavelet: str = "cmor1.5-1.0",
    n_out: int | None = None,
) -> np.ndarray:
    """|CWT| of every row of ``x``: one rfft per lead and FFT length, batched inverse FFTs.

    Matches ``abs(pywt.cwt(x, scales=C*fs/frequencies, wavelet=wavelet, method='fft'))`` up to
    pywt's discretisation (per-scale correlation > 0.99). Scales are grouped by the FFT
    length their support needs (see :func:`_plan`). With ``n_out`` the magnitudes are
    averaged straight down to ``n_out`` time columns (antialiased, as :func:`resize_matrix`)
    and low-frequency scales are computed at a lower rate, which skips most of the work when
    the image is much narrower than the record. FFTs are numpy's (as fast as scipy.fft for
    complex64 here, without its ~0.3 s import on the prediction path); they are
    single-threaded, so for throughput run one process per core.

    Args:
        x: (leads, n_samples) real signal sampled at ``fs`` Hz.
        frequencies: (n_scales,) analysis frequencies in Hz.
        n_out: time columns of the result (None: every sample).
    Returns:
        (leads, n_scales, n_out or n_samples) float32 magnitudes.
    """
    leads, n = x.shape
    out = np.empty((leads, len(frequencies), n_out or n), dtype=np.float32)
    signal = x.astype(np.float32)
    spectra: dict[int, np.ndarray] = {}
    for n_fft, stride, rows, m, n_keep, bank in _scale_groups(n, fs, frequencies, wavelet, n_out):
        if n_fft not in spectra:
            spectra[n_fft] = np.fft.rfft(signal, n=n_fft, axis=-1)
        n_bins = bank.shape[1]
        # leads in blocks whose work buffer stays in cache (a buffer for all 12 leads at full
        # rate made two worker processes 30% slower), but as few FFT calls as that allows
        # (one call per lead made the multi-rate image ~2x slower: many small FFT calls)
        block = max(1, _WORK_BYTES // (len(rows) * m * 8))
        work = np.zeros((min(block, leads), len(rows), m), dtype=np.complex64)  # negative frequencies stay zero
        magnitude = np.empty((leads, len(rows), n_keep), dtype=np.float32)
        for first in range(0, leads, block):
            chunk = work[: min(block, leads - first)]
            np.multiply(bank, spectra[n_fft][first : first + len(chunk), None, :n_bins], out=chunk[..., :n_bins])
            np.abs(np.fft.ifft(chunk, axis=-1)[..., :n_keep], out=magnitude[first : first + len(chunk)])
        if stride > 1:
            magnitude *= 1.0 / stride  # ifft of n_fft/stride bins is scaled by stride vs the full one
        if n_out is None:
            out[:, rows] = magnitude
        else:
            out[:, rows] = _strided_resize_matrix(n, stride, n_out).apply(magnitude)
    return out


@dataclass(frozen=True)
class BandMatrix:
    """(n_out, n_in) matrix whose row i is nonzero only in columns ``first[i]`` onwards, for
    ``weights.shape[1]`` columns: a resize touches a few neighbouring inputs per output.

    Hand-written instead of ``scipy.sparse``: importing scipy.sparse costs ~0.35 s of the
    2-s cold-start budget (it pulls scipy's array-API layer and most numpy submodules).
    Applied as a few small dense matrix products, one per block of output columns over the
    inputs that block touches: BLAS on (rows, ~40) x (~40, 16) blocks was ~2x faster than one
    gather of every tap plus ``einsum`` for the scalogram's strided groups (bench/scalogram.py).
    """

    first: np.ndarray  # (n_out,) first input column of each row
    weights: np.ndarray  # (n_out, width) float32
    n_in: int

    #: Output columns per dense block: 16 was fastest of 4-128 on the scalogram's resizes.
    BLOCK = 16

    @cached_property
    def blocks(self) -> list[tuple[int, int, int, int, np.ndarray]]:
        """``(o0, o1, lo, hi, W)``: outputs o0..o1 are ``x[..., lo:hi] @ W``."""
        taps = np.minimum(self.first[:, None] + np.arange(self.weights.shape[1]), self.n_in - 1)
        out = []
        for o0 in range(0, len(self.first), self.BLOCK):
            o1 = min(o0 + self.BLOCK, len(self.first))
            lo, hi = int(taps[o0:o1].min()), int(taps[o0:o1].max()) + 1
            dense = np.zeros((hi - lo, o1 - o0), dtype=np.float32)
            np.add.at(dense, (taps[o0:o1] - lo, np.arange(o1 - o0)[:, None]), self.weights[o0:o1])
            out.append((o0, o1, lo, hi, dense))
        return out

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x @ self.T`` along the last axis: (..., n_in) -> (..., n_out)."""
        out = np.empty(x.shape[:-1] + (len(self.first),), dtype=np.result_type(x.dtype, np.float32))
        for o0, o1, lo, hi, dense in self.blocks:
            np.matmul(x[..., lo:hi], dense, out=out[..., o0:o1])
        return out

    def toarray(self) -> np.ndarray:
        dense = np.zeros((len(self.first), self.n_in + self.weights.shape[1]), dtype=np.float32)
        taps = self.first[:, None] + np.arange(self.weights.shape[1])
        np.add.at(dense, (np.arange(len(self.first))[:, None], taps), self.weights)
        return dense[:, : self.n_in]


@lru_cache(maxsize=32)
def resize_matrix(n_in: int, n_out: int) -> BandMatrix:
    """(n_out, n_in) antialiased linear-interpolation matrix (PIL/torch ``antialias=True``).

    Hand-written: a banded gather is ~2x faster than torch's antialiased interpolate and
    avoids importing torch on the prediction path (PERF.md §4).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centre = (np.arange(n_out) + 0.5) * scale
    width = min(n_in, int(math.ceil(2 * support)) + 2)
    first = np.clip(np.floor(centre - support).astype(int), 0, n_in - width)
    taps = first[:, None] + np.arange(width)
    weights = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - centre[:, None]) / support))
    weights /= weights.sum(axis=1, keepdims=True)
    return BandMatrix(first, weights.astype(np.float32), n_in)


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
    frequencies = scale_frequencies(spec.f_min_hz, spec.f_max_hz, spec.n_scales)
    shrunk = cwt_magnitude(x, spec.fs, frequencies, spec.wavelet,
                           n_out=n_windows * spec.cols_per_window)  # (leads, scales, cols)
    if spec.rows_per_lead != spec.n_scales:
        shrunk = np.matmul(resize_matrix(spec.n_scales, spec.rows_per_lead).toarray(), shrunk)  # BLAS: 4x einsum
    image = shrunk.reshape(x.shape[0] * spec.rows_per_lead, -1)  # in place from here: no temporaries
    image += 1e-3
    np.log(image, out=image)
    mean, std = image.mean(), image.std()
    image -= mean
    image /= std + 1e-6
    return image


def split_windows(image: np.ndarray, cols_per_window: int) -> np.ndarray:
    """(rows, n_windows * cols) -> (n_windows, rows, cols): one image per 1-s window."""
    rows, cols = image.shape[-2:]
    n_windows = cols // cols_per_window
    return image[..., : n_windows * cols_per_window].reshape(*image.shape[:-2], rows, n_windows, cols_per_window).swapaxes(-3, -2)
