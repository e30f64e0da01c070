"""CNN encoder per 1-s scalogram, LSTM over the sequence of windows."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models import register_model


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


@register_model("cnn_lstm")
class CnnLstm(nn.Module):
    """Window encoder keeps one row band per lead (lead position matters), then a BiLSTM.

    Args:
        n_classes: output classes.
        n_features: rhythm features concatenated before the head (0 = none).
        channels: conv widths; each block halves rows and columns.
        lead_bands: rows kept after the conv stack (12 = one per lead).
        hidden: LSTM hidden size per direction.
    """

    input_kind = "scalogram"

    def __init__(
        self,
        n_classes: int,
        n_features: int = 0,
        channels: tuple[int, ...] = (16, 32, 64),
        lead_bands: int = 12,
        embed: int = 128,
        hidden: int = 64,
        dropout: float = 0.3,
    ):
        super().__init__()
        blocks, c_in = [], 1
        for c_out in channels:
            blocks.append(conv_block(c_in, c_out))
            c_in = c_out
        self.encoder = nn.Sequential(*blocks)
        self.lead_bands = lead_bands
        self.project = nn.Sequential(nn.Linear(c_in * lead_bands, embed), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.n_features = n_features
        # linear path from the rhythm features straight to the logits (can reproduce the rule)
        self.feature_skip = nn.Linear(n_features, n_classes) if n_features else None
        self.head = nn.Sequential(
            nn.Linear(2 * hidden + n_features, 64), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(64, n_classes)
        )

    def pool_leads(self, hidden: torch.Tensor) -> torch.Tensor:
        """(n, channels, rows, cols) -> (n, channels * lead_bands): mean over time and within each band.

        Written out (not AdaptiveAvgPool2d) so the ONNX export keeps dynamic sizes.
        """
        rows = hidden.shape[2]
        if rows % self.lead_bands:
            raise ValueError(f"{rows} rows after the conv stack do not split into {self.lead_bands} lead bands")
        return hidden.mean(dim=3).unflatten(2, (self.lead_bands, -1)).mean(dim=3).flatten(1)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, windows, rows, cols); features: (batch, n_features) -> (batch, classes)."""
        batch, windows = x.shape[:2]
        embedding = self.project(self.pool_leads(self.encoder(x.flatten(0, 1).unsqueeze(1)))).view(batch, windows, -1)
        sequence, _ = self.lstm(embedding)
        pooled = sequence.mean(dim=1)
        if self.n_features:
            return self.head(torch.cat([pooled, features], dim=-1)) + self.feature_skip(features)
        return self.head(pooled)
