"""QRS detection and rhythm features (heart rate, RR irregularity) from a 12-lead record.

A simple multi-lead energy detector (band-pass 5-25 Hz, squared slope summed over leads,
150 ms moving average, peak picking with a 250 ms refractory period). It is what the
``rule`` baseline decides on, and the hybrid networks get the same numbers as extra inputs,
plus P-wave consistency: sinus beats are preceded by the same P wave every time, atrial
fibrillation by uncorrelated fibrillatory activity.
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES = (
    "heart_rate_bpm",
    "rr_cv",
    "rmssd_norm",
    "frac_successive_diff_gt_50ms",
    "rr_range_norm",
    "beats_detected",
    "p_wave_consistency",
)
FEATURES_VERSION = 3  # part of the feature-cache key: bump when the features change
P_WAVE_LEADS = (1, 2, 5, 6)  # II, III, aVF, V1 in the standard order: where P waves are clearest


def detect_qrs(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of QRS complexes.

    Args:
        x: (leads, n_samples) baseline-free signal at ``fs`` Hz.
    Returns:
        (n_beats,) int array of sample indices, increasing.
    """
    band = _fft_bandpass(x, fs, 5.0, min(25.0, 0.45 * fs))
    slope = np.diff(band, axis=-1, prepend=band[..., :1])
    per_lead = slope**2
    per_lead /= np.percentile(per_lead, 99, axis=-1, keepdims=True) + 1e-12  # one lead cannot dominate
    energy = per_lead.sum(axis=0)
    width = max(1, int(0.15 * fs))
    envelope = np.convolve(energy, np.ones(width) / width, mode="same")
    return _peaks_with_refractory(envelope, 0.3 * np.percentile(envelope, 98), int(0.25 * fs))


def _fft_bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    """Zero-phase band-pass by masking the spectrum with raised-cosine edges (1 Hz wide).

    numpy only, so QRS detection does not import scipy.signal (a second of cold start).
    """
    n = x.shape[-1]
    freqs = np.fft.rfftfreq(n, 1 / fs)
    rise = np.clip((freqs - (low - 1.0)) / 2.0, 0, 1)
    fall = np.clip(((high + 1.0) - freqs) / 2.0, 0, 1)
    mask = np.sin(0.5 * np.pi * rise) ** 2 * np.sin(0.5 * np.pi * fall) ** 2
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * mask, n=n, axis=-1)


def _peaks_with_refractory(envelope: np.ndarray, height: float, distance: int) -> np.ndarray:
    """Local maxima above ``height``, tallest first, none closer than ``distance`` samples
    (the semantics of ``scipy.signal.find_peaks(height=..., distance=...)``)."""
    interior = envelope[1:-1]
    candidates = np.flatnonzero((interior > envelope[:-2]) & (interior >= envelope[2:]) & (interior >= height)) + 1
    kept: list[int] = []
    taken = np.zeros(len(envelope), dtype=bool)
    for index in candidates[np.argsort(-envelope[candidates], kind="stable")]:
        if not taken[max(0, index - distance + 1) : index + distance].any():
            kept.append(index)
            taken[index] = True
    return np.sort(np.array(kept, dtype=int))


def p_wave_consistency(x: np.ndarray, fs: float, peaks: np.ndarray, leads: tuple[int, ...] = P_WAVE_LEADS) -> float:
    """Energy of the beat-averaged pre-QRS segment over the mean per-beat energy.

    The segment runs from 300 ms to 80 ms before each R peak. Identical P waves give 1;
    uncorrelated atrial activity (fibrillation) gives about 1 / n_beats.

    Args:
        x: (12, n_samples) baseline-free signal in standard lead order.
        peaks: R-peak sample indices from :func:`detect_qrs`.
    """
    start, stop = int(0.30 * fs), int(0.08 * fs)
    usable = [p for p in peaks if p - start >= 0]
    if len(usable) < 3:
        return 0.0
    values = []
    for lead in leads:
        segments = np.stack([x[lead, p - start : p - stop] for p in usable])
        segments = segments - segments.mean(axis=1, keepdims=True)
        values.append(np.sum(segments.mean(axis=0) ** 2) / (np.mean(np.sum(segments**2, axis=1)) + 1e-9))
    return float(np.mean(values))


def rhythm_features(x: np.ndarray, fs: float) -> np.ndarray:
    """Heart rate, RR-irregularity and P-wave features, see :data:`FEATURE_NAMES`.

    Args:
        x: (12, n_samples) baseline-free signal at ``fs`` Hz, standard lead order.
    Returns:
        (7,) float32: heart rate (bpm), RR coefficient of variation, RMSSD / mean RR,
        fraction of successive RR differences > 50 ms, (max-min)/mean RR, beat count,
        P-wave consistency.
    """
    peaks = detect_qrs(x, fs)
    if len(peaks) < 3:
        return np.array([0.0, 0.0, 0.0, 0.0, 0.0, float(len(peaks)), 0.0], dtype=np.float32)
    rr = np.diff(peaks) / fs
    mean_rr = float(rr.mean())
    successive = np.abs(np.diff(rr))
    return np.array(
        [
            60.0 / float(np.median(rr)),
            float(rr.std() / mean_rr),
            float(np.sqrt(np.mean(successive**2)) / mean_rr) if len(successive) else 0.0,
            float(np.mean(successive > 0.05)) if len(successive) else 0.0,
            float((rr.max() - rr.min()) / mean_rr),
            float(len(peaks)),
            p_wave_consistency(x, fs, peaks),
        ],
        dtype=np.float32,
    )


NETWORK_FEATURE_COUNT = 12


def feature_vector_for_network(features: np.ndarray) -> np.ndarray:
    """Rhythm features as a network input: scaled values plus rule-style decisions.

    The indicators (rate < 60 bpm, rate > 100 bpm, RR coefficient of variation > 0.10, and
    irregular with / without consistent P waves, split at 0.3) let a linear head reproduce
    the rule baseline and refine it, so the scalogram branch only has to learn what these
    numbers miss (e.g. atrial flutter with regular conduction).

    Args:
        features: (..., 7) from :func:`rhythm_features`.
    Returns:
        (..., 12) float32.
    """
    scale = np.array([100.0, 0.2, 0.2, 1.0, 0.5, 20.0, 1.0], dtype=np.float32)
    rate, rr_cv, p_wave = features[..., 0], features[..., 1], features[..., 6]
    irregular = rr_cv > 0.10
    indicators = np.stack(
        [rate < 60.0, rate > 100.0, irregular, irregular & (p_wave < 0.3), irregular & (p_wave >= 0.3)], axis=-1
    ).astype(np.float32)
    return np.concatenate([features / scale, indicators], axis=-1).astype(np.float32)
