"""The stacked scalogram of :mod:`pipeline.transforms.scalogram` in torch, many records at once.

Why: training prepares thousands of records, and on a CUDA machine one batched FFT over many
records' leads and scales replaces the per-record CPU transform (the costliest preparation
step). The plan (FFT length and output stride per scale), the wavelet spectra and the resize
matrices are the numpy path's own, so both give the same image up to float32 rounding (tested
on CPU torch). Imported only where a CUDA device prepares records: the prediction path never
imports torch.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.transforms.scalogram import (
    ScalogramSpec,
    _scale_groups,
    _strided_resize_matrix,
    resize_matrix,
    scale_frequencies,
)

#: Complex work buffer of one batched inverse FFT, bytes: bounds device memory whatever the batch.
_WORK_BYTES = 1 << 30
#: Records sent to the device together by :func:`stacked_scalograms`.
_RECORDS_PER_BATCH = 128


def cwt_magnitude_torch(
    x: torch.Tensor, fs: float, frequencies: np.ndarray, wavelet: str = "cmor1.5-1.0", n_out: int | None = None
) -> torch.Tensor:
    """|CWT| of every signal row of a batch, on the tensor's device (fp32 / complex64).

    The same computation as :func:`pipeline.transforms.scalogram.cwt_magnitude` (the same
    scale groups, multi-rate scales averaged straight to ``n_out`` columns), batched over
    records too, with work buffers sized for a GPU rather than a CPU cache.

    Args:
        x: (batch, leads, n_samples) real signals sampled at ``fs`` Hz.
        frequencies: (n_scales,) analysis frequencies in Hz.
        n_out: time columns of the result (None: every sample).
    Returns:
        (batch, leads, n_scales, n_out or n_samples) float32 magnitudes.
    """
    batch, leads, n = x.shape
    signal = x.to(torch.float32).reshape(batch * leads, n)
    out = torch.empty((batch * leads, len(frequencies), n_out or n), dtype=torch.float32, device=x.device)
    spectra: dict[int, torch.Tensor] = {}
    for n_fft, stride, rows, m, n_keep, bank in _scale_groups(n, fs, frequencies, wavelet, n_out):
        if n_fft not in spectra:
            spectra[n_fft] = torch.fft.rfft(signal, n=n_fft, dim=-1)
        bank = torch.from_numpy(bank).to(x.device)
        n_bins = bank.shape[1]
        resize = None
        if n_out is not None:  # (n_keep, n_out): dense, one matrix product per block on the device
            resize = torch.from_numpy(_strided_resize_matrix(n, stride, n_out).toarray().T).to(x.device)
        index = torch.from_numpy(rows).to(x.device)
        block = max(1, _WORK_BYTES // (len(rows) * m * 8))
        for first in range(0, batch * leads, block):
            spectrum = spectra[n_fft][first : first + block, None, :n_bins]
            work = torch.zeros((len(spectrum), len(rows), m), dtype=torch.complex64, device=x.device)
            work[..., :n_bins] = bank * spectrum  # negative frequencies stay zero: analytic wavelet
            magnitude = torch.fft.ifft(work, dim=-1)[..., :n_keep].abs()
            if stride > 1:
                magnitude /= stride  # ifft of n_fft/stride bins is scaled by stride vs the full one
            out[first : first + len(spectrum), index] = magnitude if resize is None else magnitude @ resize
    return out.reshape(batch, leads, len(frequencies), -1)


def stacked_scalogram_torch(x: torch.Tensor, spec: ScalogramSpec) -> torch.Tensor:
    """:func:`pipeline.transforms.scalogram.stacked_scalogram` for a batch of equally long records.

    Args:
        x: (batch, leads, n_windows * window_len) preprocessed signals at ``spec.fs``.
    Returns:
        (batch, leads * rows_per_lead, n_windows * cols_per_window) float32 log-magnitude
        images, each standardised on its own record.
    """
    batch, leads, n = x.shape
    n_windows = n // int(round(spec.window_s * spec.fs))
    frequencies = scale_frequencies(spec.f_min_hz, spec.f_max_hz, spec.n_scales)
    shrunk = cwt_magnitude_torch(x, spec.fs, frequencies, spec.wavelet, n_out=n_windows * spec.cols_per_window)
    if spec.rows_per_lead != spec.n_scales:
        scale_matrix = torch.from_numpy(resize_matrix(spec.n_scales, spec.rows_per_lead).toarray()).to(x.device)
        shrunk = torch.einsum("rs,blsc->blrc", scale_matrix, shrunk)
    image = torch.log(shrunk.reshape(batch, leads * spec.rows_per_lead, -1) + 1e-3)
    mean = image.mean(dim=(1, 2), keepdim=True)
    std = image.std(dim=(1, 2), correction=0, keepdim=True)
    return (image - mean) / (std + 1e-6)


def stacked_scalograms(signals: list[np.ndarray], spec: ScalogramSpec, device: torch.device | str) -> list[np.ndarray]:
    """Images of many records computed on ``device`` in batches of equally long records.

    Args:
        signals: (leads, n_samples) preprocessed signals at ``spec.fs`` (lengths may differ).
    Returns:
        One (leads * rows_per_lead, n_windows * cols_per_window) float32 image per signal, in order.
    """
    images: list[np.ndarray | None] = [None] * len(signals)
    by_length: dict[tuple[int, ...], list[int]] = {}
    for i, signal in enumerate(signals):
        by_length.setdefault(signal.shape, []).append(i)
    with torch.no_grad():
        for members in by_length.values():
            for first in range(0, len(members), _RECORDS_PER_BATCH):
                chosen = members[first : first + _RECORDS_PER_BATCH]
                batch = torch.from_numpy(np.stack([signals[i] for i in chosen]).astype(np.float32)).to(device)
                for i, image in zip(chosen, stacked_scalogram_torch(batch, spec).cpu().numpy()):
                    images[i] = image
    return images
