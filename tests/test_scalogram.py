"""The batched FFT CWT against pywt, the resize matrices against torch, and the stacked image layout."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import EcgConfig
from pipeline.io.ecg import read_record, to_standard_leads
from pipeline.transforms import ecg as ecg_tf
from pipeline.transforms.scalogram import (
    ScalogramSpec,
    cwt_magnitude,
    resize_matrix,
    scale_frequencies,
    split_windows,
    stacked_scalogram,
)
from tests.conftest import SAMPLE_ECG


def _sample_leads(n_leads=3):
    x = to_standard_leads(read_record(SAMPLE_ECG / "JS00007"))
    return ecg_tf.remove_baseline(x, 500, [0.2, 0.6])[:n_leads]


def test_cwt_matches_pywt_in_every_scale_band():
    pywt = pytest.importorskip("pywt")
    x = _sample_leads()
    freqs = scale_frequencies(0.5, 100, 32)
    ours = cwt_magnitude(x, 500, freqs)
    # precision=16: pywt's default 12-point wavelet sampling is stair-stepped at 0.5 Hz (PERF.md)
    coeffs, _ = pywt.cwt(x, 500 / freqs, "cmor1.5-1.0", method="fft", axis=-1, precision=16)
    reference = np.abs(coeffs).transpose(1, 0, 2)  # (leads, scales, time)
    assert ours.shape == reference.shape
    per_scale = [
        np.corrcoef(ours[:, s].ravel(), reference[:, s].ravel())[0, 1] for s in range(len(freqs))
    ]
    assert min(per_scale) > 0.99, f"worst scale {int(np.argmin(per_scale))}: {min(per_scale):.4f}"


def test_cwt_of_a_sinusoid_peaks_at_its_frequency():
    fs = 500
    t = np.arange(5000) / fs
    freqs = scale_frequencies(0.5, 100, 64)
    for tone in (2.0, 10.0, 40.0):
        magnitude = cwt_magnitude(np.sin(2 * np.pi * tone * t)[None], fs, freqs)
        profile = magnitude[0, :, 1000:4000].mean(axis=1)
        assert abs(np.log(freqs[int(np.argmax(profile))] / tone)) < np.log(freqs[0] / freqs[1]) * 1.01


@pytest.mark.parametrize("n_out", [640, 320, 160, 100])
def test_multirate_columns_match_full_resolution_then_resize(n_out):
    """Low-rate scales plus direct resize give the image of the full-resolution CWT."""
    x = _sample_leads(4)
    freqs = scale_frequencies(0.5, 100, 64)
    full = cwt_magnitude(x, 500, freqs)
    reference = resize_matrix(5000, n_out).apply(full)
    fast = cwt_magnitude(x, 500, freqs, n_out=n_out)
    assert fast.shape == reference.shape
    row_error = np.abs(fast - reference).max(axis=(0, 2)) / reference.max(axis=(0, 2))
    assert row_error.max() < 0.01, f"scale {int(row_error.argmax())}: {row_error.max():.4f} of its peak"


def test_resize_matrix_equals_torch_antialiased_bilinear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    image = rng.standard_normal((64, 500)).astype(np.float32)
    ours = resize_matrix(64, 8).toarray() @ image @ resize_matrix(500, 32).toarray().T
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(image)[None, None], size=(8, 32), mode="bilinear", antialias=True, align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert np.allclose(resize_matrix(500, 32).toarray().sum(axis=1), 1.0)
    np.testing.assert_allclose(resize_matrix(500, 32).apply(image), image @ resize_matrix(500, 32).toarray().T, atol=1e-5)


@pytest.mark.parametrize(("n_in", "n_out"), [(500, 37), (64, 8), (1251, 640), (20, 40)])
def test_band_matrix_blocks_equal_the_dense_matrix(n_in, n_out):
    """The blocked products cover every output once, a last partial block and upsampling included."""
    x = np.random.default_rng(2).standard_normal((3, 5, n_in)).astype(np.float32)
    matrix = resize_matrix(n_in, n_out)
    np.testing.assert_allclose(matrix.apply(x), x @ matrix.toarray().T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [2, 3, 8])
def test_strided_resize_interpolates_the_missing_samples(stride):
    """The strided band equals: linear interpolation of every stride-th sample, then the resize."""
    from pipeline.transforms.scalogram import _strided_resize_matrix

    n, n_out = 5000, 640
    known = np.random.default_rng(1).random((3, (n - 1) // stride + 2)).astype(np.float32)
    full = np.stack([np.interp(np.arange(n), np.arange(known.shape[1]) * stride, row) for row in known])
    np.testing.assert_allclose(_strided_resize_matrix(n, stride, n_out).apply(known),
                               resize_matrix(n, n_out).apply(full), rtol=1e-4, atol=1e-5)


def test_stacked_image_layout_and_windows():
    cfg = EcgConfig().scalogram
    spec = ScalogramSpec.from_config(cfg, 500)
    x = ecg_tf.normalise(_sample_leads(12))
    image = stacked_scalogram(x, spec)
    assert image.shape == (12 * cfg.scale_rows_per_lead, 10 * cfg.time_cols_per_window)
    assert np.isfinite(image).all()
    assert abs(image.mean()) < 1e-3 and abs(image.std() - 1) < 1e-2
    windows = split_windows(image, cfg.time_cols_per_window)
    assert windows.shape == (10, 12 * cfg.scale_rows_per_lead, cfg.time_cols_per_window)
    np.testing.assert_array_equal(windows[3], image[:, 3 * cfg.time_cols_per_window : 4 * cfg.time_cols_per_window])


def test_lead_rows_follow_lead_order():
    """Energy placed in lead V1 only shows up in V1's row band."""
    spec = ScalogramSpec(fs=500, rows_per_lead=4, cols_per_window=16)
    x = np.zeros((12, 5000), dtype=np.float32)
    x[6] = np.sin(2 * np.pi * 8 * np.arange(5000) / 500)
    image = stacked_scalogram(x, spec)
    band_energy = image.reshape(12, 4, -1).mean(axis=(1, 2))
    assert int(np.argmax(band_energy)) == 6
