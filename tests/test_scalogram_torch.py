"""The torch scalogram (GPU preparation) against the numpy path and pywt, run on CPU torch."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.io.ecg import read_record, to_standard_leads
from pipeline.transforms import ecg as ecg_tf
from pipeline.transforms.scalogram import ScalogramSpec, cwt_magnitude, scale_frequencies, stacked_scalogram
from tests.conftest import SAMPLE_ECG
from tests.svs_util import one_thread  # noqa: F401  (fixture: a busy 2-core box ran 15x slower on 2 threads)

torch = pytest.importorskip("torch")

from pipeline.transforms.scalogram_torch import cwt_magnitude_torch, stacked_scalograms  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _sample_leads(name="JS00007", n_leads=3):
    x = to_standard_leads(read_record(SAMPLE_ECG / name))
    return ecg_tf.normalise(ecg_tf.remove_baseline(x, 500, [0.2, 0.6])[:n_leads]).astype(np.float32)


@pytest.mark.parametrize("n_scales,rows,cols", [(64, 32, 64), (64, 8, 32), (16, 16, 64)])
def test_images_of_the_shipped_sizes_equal_the_numpy_path(n_scales, rows, cols):
    """Same plan, spectra and resize matrices: only float32 rounding may differ."""
    spec = ScalogramSpec(fs=500, n_scales=n_scales, rows_per_lead=rows, cols_per_window=cols)
    x = _sample_leads()
    [image] = stacked_scalograms([x], spec, "cpu")
    reference = stacked_scalogram(x, spec)
    assert image.shape == reference.shape == (3 * rows, 10 * cols)
    np.testing.assert_allclose(image, reference, atol=2e-4)


def test_a_batch_of_unequal_lengths_keeps_each_record_its_own_image():
    spec = ScalogramSpec(fs=500, n_scales=16, rows_per_lead=4, cols_per_window=16)
    signals = [_sample_leads("JS00007")[:, :4000], _sample_leads("JS00012"), _sample_leads("JS00007")]
    images = stacked_scalograms(signals, spec, "cpu")
    for signal, image in zip(signals, images):
        np.testing.assert_allclose(image, stacked_scalogram(signal, spec), atol=2e-4)
    assert images[0].shape[1] == 8 * 16 and images[2].shape[1] == 10 * 16


def test_full_rate_magnitudes_match_pywt_and_the_numpy_path():
    pywt = pytest.importorskip("pywt")
    x = _sample_leads()
    freqs = scale_frequencies(0.5, 100, 24)
    ours = cwt_magnitude_torch(torch.from_numpy(x)[None], 500, freqs)[0].numpy()
    np.testing.assert_allclose(ours, cwt_magnitude(x, 500, freqs), rtol=1e-3, atol=1e-3 * float(ours.max()))
    coeffs, _ = pywt.cwt(x, 500 / freqs, "cmor1.5-1.0", method="fft", axis=-1, precision=16)
    reference = np.abs(coeffs).transpose(1, 0, 2)
    per_scale = [np.corrcoef(ours[:, s].ravel(), reference[:, s].ravel())[0, 1] for s in range(len(freqs))]
    assert min(per_scale) > 0.99, f"worst scale {int(np.argmin(per_scale))}: {min(per_scale):.4f}"


def test_a_sinusoid_peaks_at_its_frequency():
    t = np.arange(5000) / 500
    freqs = scale_frequencies(0.5, 100, 64)
    tones = (2.0, 10.0, 40.0)
    x = torch.from_numpy(np.stack([np.sin(2 * np.pi * f * t) for f in tones]).astype(np.float32))[None]
    magnitude = cwt_magnitude_torch(x, 500, freqs, n_out=100)[0]
    for lead, tone in enumerate(tones):
        profile = magnitude[lead, :, 20:80].mean(dim=1).numpy()
        assert abs(np.log(freqs[int(np.argmax(profile))] / tone)) < np.log(freqs[0] / freqs[1]) * 1.01
