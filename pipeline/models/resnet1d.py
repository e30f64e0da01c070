"""Residual 1-D CNN on the filtered 12-lead signal (100 Hz), after Ribeiro et al. 2020 (Nat. Commun. 11:1760).

The plain ``cnn1d`` sees about a second of signal per output (receptive field 1.06 s), so RR irregularity
and flutter waves across beats reach it only through the rhythm features. These residual blocks, each
halving the rate, see 2.5 s: two or three beats.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models import register_model
from pipeline.models.cnn1d import pooled_head


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-dropout-conv(stride 2)-BN plus a max-pooled (1x1-projected) skip, then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float):
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv1d(c_out, c_out, kernel, stride=2, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
        )
        skip: list[nn.Module] = [nn.MaxPool1d(2, ceil_mode=True)]
        if c_in != c_out:
            skip.append(nn.Conv1d(c_in, c_out, 1, bias=False))
        self.skip = nn.Sequential(*skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


@register_model("resnet1d")
class ResNet1d(nn.Module):
    """Stem conv, residual blocks halving the rate, global average + max pooling, linear head.

    ``dropout`` acts inside each block; the head keeps ``cnn1d``'s 0.3.
    """

    input_kind = "signal"

    def __init__(
        self, n_classes: int, n_features: int = 0, channels: tuple[int, ...] = (32, 48, 64, 96),
        kernel: int = 9, dropout: float = 0.2,
    ):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError("resnet1d kernel must be odd (same-length padding)")
        self.stem = nn.Sequential(
            nn.Conv1d(12, channels[0], kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(inplace=True),
        )
        blocks, c_in = [], channels[0]
        for c_out in channels:
            blocks.append(ResidualBlock(c_in, c_out, kernel, dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.n_features = n_features
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * c_in + n_features, n_classes))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, 12, samples); features: (batch, n_features) -> (batch, classes)."""
        return pooled_head(self.head, self.blocks(self.stem(x)), features if self.n_features else None)
