"""Preprocessing: baseline removal, resampling, length policy, normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.transforms import ecg as ecg_tf
from tests.conftest import synthetic_ecg


def test_median_baseline_removes_wander_and_keeps_qrs():
    fs = 500
    clean = synthetic_ecg().T
    t = np.arange(clean.shape[1]) / fs
    wander = 0.8 * np.sin(2 * np.pi * 0.3 * t)
    filtered = ecg_tf.remove_baseline(clean + wander, fs, [0.2, 0.6])
    wander_left = 2 * np.abs(filtered @ np.exp(-2j * np.pi * 0.3 * t)) / len(t)  # amplitude at 0.3 Hz
    assert wander_left.max() < 0.05 * 0.8
    assert np.corrcoef(filtered[0], clean[0])[0, 1] > 0.9
    exact = ecg_tf.remove_baseline(clean + wander, fs, [0.2, 0.6], rate_hz=None)
    assert np.linalg.norm(filtered - exact) / np.linalg.norm(exact) < 0.05


def test_resample_changes_length_and_keeps_a_tone():
    t = np.arange(3600) / 360
    x = np.sin(2 * np.pi * 5 * t)[None]
    y = ecg_tf.resample(x, 360, 500)
    assert y.shape == (1, 5000)
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert np.argmax(spectrum) * 500 / 5000 == pytest.approx(5, abs=0.2)


def test_fit_length_pads_short_and_windows_long_records():
    x = np.ones((12, 4500), dtype=np.float32)
    padded, note = ecg_tf.fit_length(x, 500, 1.0, 10, "pad", 8, "r")
    assert padded.shape == (12, 5000) and "padded" in note
    longer, note = ecg_tf.fit_length(np.ones((12, 7600)), 500, 1.0, 10, "pad", 8, "r")
    assert longer.shape == (12, 7500) and "15 windows" in note
    exact, note = ecg_tf.fit_length(np.ones((12, 5000)), 500, 1.0, 10, "pad", 8, "r")
    assert exact.shape == (12, 5000) and note is None


@pytest.mark.parametrize("samples, policy", [(3000, "pad"), (4500, "reject")])
def test_fit_length_rejects_too_short(samples, policy):
    with pytest.raises(UserError, match="lasts"):
        ecg_tf.fit_length(np.ones((12, samples)), 500, 1.0, 10, policy, 8, "r")


def test_normalise_keeps_lead_ratios():
    x = synthetic_ecg().T
    y = ecg_tf.normalise(x)
    ratio_before = x[-1].std() / x[0].std()
    assert y[-1].std() / y[0].std() == pytest.approx(ratio_before, rel=1e-3)


@pytest.mark.parametrize("width", [1, 21, 61])
def test_running_median_equals_scipy_nearest_mode(width):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(3).standard_normal((3, 400)).astype(np.float32)
    expected = ndimage.median_filter(x, size=(1, width), mode="nearest")
    got = ecg_tf.median_filter_rows(x, width)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, expected)
