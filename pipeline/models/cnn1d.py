"""1-D CNN on the filtered 12-lead signal (100 Hz), the raw-signal comparison model."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models import register_model


@register_model("cnn1d")
class Cnn1d(nn.Module):
    """Strided 1-D conv blocks, global average + max pooling over time, linear head."""

    input_kind = "signal"

    def __init__(
        self, n_classes: int, n_features: int = 0, channels: tuple[int, ...] = (32, 64, 128, 128), dropout: float = 0.3
    ):
        super().__init__()
        layers, c_in = [], 12
        for c_out in channels:
            layers += [
                nn.Conv1d(c_in, c_out, 7, padding=3, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            c_in = c_out
        self.encoder = nn.Sequential(*layers)
        self.n_features = n_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in + n_features, n_classes))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, 12, samples); features: (batch, n_features) -> (batch, classes)."""
        return pooled_head(self.head, self.encoder(x), features if self.n_features else None)


def pooled_head(head: nn.Module, hidden: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """Global average + max pooling over time of ``hidden`` (batch, channels, time), the rhythm
    features appended when given, through ``head``: the 1-D networks' shared classifier."""
    pooled = torch.cat([hidden.mean(dim=-1), hidden.amax(dim=-1)], dim=-1)
    if features is not None:
        pooled = torch.cat([pooled, features], dim=-1)
    return head(pooled)
