"""Stored per-record arrays -> model inputs, with the training augmentations.

Scalogram models receive (batch, windows, rows, cols); the stored image is one
continuous (rows, windows * cols) strip so a time shift is a roll along columns.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.config import EcgAugment


def split_windows_torch(images: torch.Tensor, cols_per_window: int) -> torch.Tensor:
    """(batch, rows, windows * cols) -> (batch, windows, rows, cols)."""
    batch, rows, cols = images.shape
    windows = cols // cols_per_window
    return images[..., : windows * cols_per_window].reshape(batch, rows, windows, cols_per_window).permute(0, 2, 1, 3)


def augment_batch(x: torch.Tensor, augment: EcgAugment, n_leads: int = 12, additive_gain: bool = True) -> torch.Tensor:
    """Random circular time shift, lead dropout and gain, per sample.

    Args:
        x: (batch, leads * rows_per_lead, time) scalogram strips or (batch, leads, time) signals.
        additive_gain: True for log-magnitude images (gain adds), False for signals (gain multiplies).
    """
    x = x.clone()
    batch, rows, time = x.shape
    rows_per_lead = rows // n_leads
    if augment.time_shift:
        shifts = torch.randint(0, time, (batch,))
        index = (torch.arange(time)[None, :] + shifts[:, None]) % time
        x = torch.gather(x, 2, index[:, None, :].expand(batch, rows, time))
    if augment.lead_dropout_p > 0:
        drop = torch.rand(batch, n_leads) < augment.lead_dropout_p
        mask = (~drop).repeat_interleave(rows_per_lead, dim=1).to(x.dtype)
        fill = x.amin(dim=(1, 2), keepdim=True) if additive_gain else 0.0
        x = x * mask[:, :, None] + (1 - mask[:, :, None]) * fill
    if augment.gain_db > 0:
        gain_db = (torch.rand(batch, 1, 1) * 2 - 1) * augment.gain_db
        if additive_gain:
            x = x + gain_db * (np.log(10) / 20)
        else:
            x = x * 10 ** (gain_db / 20)
    return x


def make_input_fn(input_kind: str, cols_per_window: int, augment: EcgAugment):
    """The ``to_model_input(batch, train)`` callable used by :func:`pipeline.training.fit`."""

    def to_model_input(batch: torch.Tensor, train: bool) -> torch.Tensor:
        if train:
            batch = augment_batch(batch, augment, additive_gain=input_kind == "scalogram")
        if input_kind == "scalogram":
            return split_windows_torch(batch, cols_per_window)
        return batch

    return to_model_input
