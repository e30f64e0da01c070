"""QRS detection and rhythm features (heart rate, RR irregularity) from a 12-lead record.

A simple multi-lead energy detector (band-pass 5-25 Hz, squared slope summed over leads,
150 ms moving average, peak picking with a 250 ms refractory period). It is what the
``rule`` baseline decides on, and the hybrid networks get the same numbers as extra inputs.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

FEATURE_NAMES = (
    "heart_rate_bpm",
    "rr_cv",
    "rmssd_norm",
    "frac_successive_diff_gt_50ms",
    "rr_range_norm",
    "beats_detected",
)


def detect_qrs(x: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of QRS complexes.

    Args:
        x: (leads, n_samples) baseline-free signal at ``fs`` Hz.
    Returns:
        (n_beats,) int array of sample indices, increasing.
    """
    sos = signal.butter(2, [5.0, min(25.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    band = signal.sosfiltfilt(sos, x, axis=-1)
    slope = np.diff(band, axis=-1, prepend=band[..., :1])
    per_lead = slope**2
    per_lead /= np.percentile(per_lead, 99, axis=-1, keepdims=True) + 1e-12  # one lead cannot dominate
    energy = per_lead.sum(axis=0)
    width = max(1, int(0.15 * fs))
    envelope = np.convolve(energy, np.ones(width) / width, mode="same")
    threshold = 0.3 * np.percentile(envelope, 98)
    peaks, _ = signal.find_peaks(envelope, height=threshold, distance=int(0.25 * fs))
    return peaks


def rhythm_features(x: np.ndarray, fs: float) -> np.ndarray:
    """Heart rate and RR-irregularity features, see :data:`FEATURE_NAMES`.

    Args:
        x: (leads, n_samples) baseline-free signal at ``fs`` Hz.
    Returns:
        (6,) float32: heart rate (bpm), RR coefficient of variation, RMSSD / mean RR,
        fraction of successive RR differences > 50 ms, (max-min)/mean RR, beat count.
    """
    peaks = detect_qrs(x, fs)
    if len(peaks) < 3:
        return np.array([0.0, 0.0, 0.0, 0.0, 0.0, float(len(peaks))], dtype=np.float32)
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
        ],
        dtype=np.float32,
    )


NETWORK_FEATURE_COUNT = 9


def feature_vector_for_network(features: np.ndarray) -> np.ndarray:
    """Rhythm features as a network input: scaled values plus the rule's three decisions.

    The indicators (rate < 60 bpm, rate > 100 bpm, RR coefficient of variation > 0.10) let
    a linear head reproduce the rule baseline, so the scalogram branch only has to learn
    what the rule gets wrong (flutter with regular conduction, premature beats).

    Args:
        features: (..., 6) from :func:`rhythm_features`.
    Returns:
        (..., 9) float32.
    """
    scale = np.array([100.0, 0.2, 0.2, 1.0, 0.5, 20.0], dtype=np.float32)
    rate, rr_cv = features[..., 0], features[..., 1]
    indicators = np.stack([rate < 60.0, rate > 100.0, rr_cv > 0.10], axis=-1).astype(np.float32)
    return np.concatenate([features / scale, indicators], axis=-1).astype(np.float32)
