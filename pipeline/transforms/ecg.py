"""ECG preprocessing: resampling, median-filter baseline removal, band-limit, normalisation, length.

scipy.signal is imported only where it is needed (non-integer resampling, the optional
band-pass): importing it costs about a second of `pipeline predict`'s cold start here.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from pipeline.errors import UserError


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased).

    Args:
        x: (..., n_samples) signal sampled at ``fs_in`` Hz.
    Returns:
        (..., round(n_samples * fs_out / fs_in)) float32 signal at ``fs_out`` Hz.
    """
    if math.isclose(fs_in, fs_out):
        return x.astype(np.float32, copy=False)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    if ratio.numerator == 1:
        return decimate_fft(x, ratio.denominator)
    from scipy import signal

    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def decimate_fft(x: np.ndarray, factor: int) -> np.ndarray:
    """Keep every ``factor``-th sample after a zero-phase FFT low-pass at 0.8 x the new Nyquist.

    Hand-written (numpy only) so the common 500 -> 100 Hz step needs no scipy.signal import.
    """
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(n)  # cycles per input sample
    cutoff = 0.5 / factor
    taper = np.clip((cutoff - freqs) / (0.2 * cutoff), 0.0, 1.0)  # linear roll-off from 0.8 to 1.0 x cutoff
    smooth = np.fft.irfft(spectrum * taper, n=n, axis=-1)
    return smooth[..., ::factor].astype(np.float32)


def median_filter_rows(x: np.ndarray, width: int) -> np.ndarray:
    """Running median along the last axis, edges extended (``ndimage.median_filter`` mode "nearest").

    bottleneck's ``move_median`` (a double heap in C) is ~8x faster than pandas' rolling median
    and ~15x faster than ``ndimage.median_filter`` at these widths (12 x 1000 samples: 0.6 ms
    vs 5 ms vs 12 ms), with identical values.
    """
    import bottleneck

    half = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(half, half)], mode="edge")
    return bottleneck.move_median(padded, width, axis=-1)[..., 2 * half :].astype(x.dtype, copy=False)


def remove_baseline(x: np.ndarray, fs: float, windows_s: list[float], rate_hz: float | None = 100.0) -> np.ndarray:
    """Subtract the baseline estimated by cascaded median filters (classic 200 ms + 600 ms).

    The first stage removes QRS complexes, the second P and T waves; what is left is
    baseline wander, subtracted from the input.

    Speed-up: the medians run on every ``fs / rate_hz``-th sample and the baseline is
    interpolated back (baseline wander is below 1 Hz). At 100 Hz this was ~18x faster than
    full-rate ``ndimage.median_filter`` on 12 x 5000 samples, with 2% relative difference in
    the filtered signal (per-lead correlation > 0.996 on Chapman records).

    Args:
        x: (leads, n_samples) signal.
        fs: sampling rate in Hz.
        windows_s: median window lengths in seconds, applied in order.
        rate_hz: rate at which the medians are computed; None = full rate (exact).
    """
    if not windows_s:
        return x.astype(np.float32, copy=False)
    step = max(1, int(round(fs / rate_hz))) if rate_hz else 1
    offset = step // 2
    baseline = x[:, offset::step]
    for seconds in windows_s:
        width = max(1, int(round(seconds * fs / step)) | 1)  # odd width keeps the filter centred
        baseline = median_filter_rows(baseline, width)
    if step > 1:
        grid = np.arange(baseline.shape[1]) * step + offset
        times = np.arange(x.shape[1])
        baseline = np.stack([np.interp(times, grid, row) for row in baseline])
    return (x - baseline).astype(np.float32)


def bandpass(x: np.ndarray, fs: float, band_hz: tuple[float, float]) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass along the last axis."""
    from scipy import signal

    low, high = band_hz
    high = min(high, 0.45 * fs)
    sos = signal.butter(4, [low, high], btype="bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x, axis=-1).astype(np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    """Per-record scaling: one robust scale for all leads, so lead ratios are kept."""
    centred = x - np.median(x, axis=-1, keepdims=True)
    scale = float(np.median(np.std(centred, axis=-1)))
    if scale < 1e-6:
        scale = float(np.std(centred)) or 1.0
    return (centred / scale).astype(np.float32)


def fit_length(
    x: np.ndarray, fs: float, window_s: float, duration_s: float, short: str, min_duration_s: float, name: str
) -> tuple[np.ndarray, str | None]:
    """Trim to whole windows; pad records shorter than ``duration_s`` (or reject them).

    Longer records keep every whole window (more images per record).

    Returns:
        The (leads, n_windows * window_len) signal and a note for the user, or None.
    """
    n = x.shape[-1]
    window = int(round(window_s * fs))
    target = int(round(duration_s * fs))
    seconds = n / fs
    if n < target:
        if short == "reject" or seconds < min_duration_s:
            raise UserError(
                f"{name} lasts {seconds:.2f} s; at least {min_duration_s if short == 'pad' else duration_s:g} s "
                "is needed (set preprocess.short_records / min_duration_s to change this)"
            )
        pad = target - n
        return np.pad(x, ((0, 0), (0, pad))), f"{name}: {seconds:.2f} s record zero-padded to {duration_s:g} s"
    n_windows = n // window
    note = None
    if n > target:
        note = f"{name}: {seconds:.2f} s record gives {n_windows} windows"
    return x[:, : n_windows * window], note
