"""Mask networks by name: ``fcn`` (fast default) and ``lin2018`` (the paper's CNN).

Every network maps mixture features ``(batch, bins, frames)`` to voice-mask logits of the
same shape. Stage 1 (autoencoder pre-training) uses the same forward pass as a regressor of
voice features; stage 2 reads the output as logits for sigmoid cross-entropy against the IBM.

* ``fcn`` is fully convolutional: one pass classifies every bin of a whole chunk.
* ``lin2018`` takes 9-frame patches (Lin et al. 2018, authors' code): conv 3x12
  (32, 16, max-pool 1x12, 64, 32, max-pool 1x12), dense 2048 -> 512 -> bins*9. At inference
  it slides one frame at a time and keeps the centre frame (:meth:`Lin2018.centre_logits`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        return cls

    return wrap


def create_separator(name: str, n_bins: int, **args) -> nn.Module:
    """Build a registered mask network for spectrograms with ``n_bins`` frequency bins."""
    if name not in _REGISTRY:
        from pipeline.errors import UserError

        raise UserError(f"unknown separator model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](n_bins=n_bins, **args)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


@register("fcn")
class FcnMasker(nn.Module):
    """Encoder-decoder with skip connections over the whole spectrogram chunk.

    Args:
        n_bins: frequency bins of the input.
        channels: channels per level; each level after the first halves both axes.
        convs: 3x3 convolutions per level (after the down-sampling one).

    Any number of frames is accepted (decoder outputs are cropped to the skip's size).
    """

    patch_frames: int | None = None

    def __init__(self, n_bins: int, channels: tuple[int, ...] = (16, 32, 64, 128), convs: int = 1):
        super().__init__()
        self.n_bins = n_bins
        channels = tuple(channels)
        self.input_scale = nn.Parameter(torch.ones(n_bins, 1))
        self.input_bias = nn.Parameter(torch.zeros(n_bins, 1))
        self.down = nn.ModuleList()
        for i, c in enumerate(channels):
            first = _block(1 if i == 0 else channels[i - 1], c, stride=1 if i == 0 else 2)
            self.down.append(nn.Sequential(first, *[_block(c, c) for _ in range(convs)]))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(len(channels) - 1, 0, -1):
            self.up.append(nn.ConvTranspose2d(channels[i], channels[i - 1], 2, stride=2))
            self.merge.append(_block(2 * channels[i - 1], channels[i - 1]))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, bins, frames)`` features -> ``(batch, bins, frames)`` logits."""
        h = (x * self.input_scale + self.input_bias).unsqueeze(1)
        skips = []
        for level in self.down:
            h = level(h)
            skips.append(h)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            skip = skips.pop()
            h = up(h)[..., : skip.shape[-2], : skip.shape[-1]]
            h = merge(torch.cat([h, skip], dim=1))
        return self.head(h).squeeze(1)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


@register("lin2018")
class Lin2018(nn.Module):
    """The CNN of Lin et al. 2018, config-exact ('same' padding, ReLU, dropout 0.5).

    Args:
        n_bins: bins per frame (2049 for n_fft 4096).
        frames: frames per patch (9).
    """

    def __init__(self, n_bins: int = 2049, frames: int = 9, conv: tuple[int, ...] = (32, 16, 64, 32),
                 kernel: tuple[int, int] = (3, 12), pool: int = 12, dense: tuple[int, ...] = (2048, 512),
                 dropout: float = 0.5):
        super().__init__()
        self.n_bins, self.patch_frames = n_bins, frames
        c1, c2, c3, c4 = conv
        kt, kf = kernel
        # TensorFlow 'SAME': the extra pad of an even kernel goes after (right/bottom)
        same = (((kf - 1) // 2, kf // 2, (kt - 1) // 2, kt // 2))

        def conv2d(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.ZeroPad2d(same), nn.Conv2d(cin, cout, kernel), nn.ReLU())

        self.features = nn.Sequential(
            conv2d(1, c1), conv2d(c1, c2), nn.MaxPool2d((1, pool), ceil_mode=True),
            conv2d(c2, c3), conv2d(c3, c4), nn.MaxPool2d((1, pool), ceil_mode=True),
        )
        pooled = -(-(-(-n_bins // pool)) // pool)
        flat = frames * pooled * c4
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, dense[0]), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(dense[0], dense[1]), nn.ReLU(),
        )
        self.out = nn.Linear(dense[1], n_bins * frames)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x.transpose(1, 2).unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, bins, 9)`` patch -> ``(batch, bins, 9)`` logits."""
        out = self.out(self._hidden(x))
        return out.view(x.shape[0], self.patch_frames, self.n_bins).transpose(1, 2)

    def centre_logits(self, patches: torch.Tensor) -> torch.Tensor:
        """``(batch, bins, 9)`` patches -> ``(batch, bins)`` logits of the centre frame only."""
        c = self.patch_frames // 2
        rows = slice(c * self.n_bins, (c + 1) * self.n_bins)
        return nn.functional.linear(self._hidden(patches), self.out.weight[rows], self.out.bias[rows])

    def mask_logits(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Slide over ``(1, bins, frames)`` one frame at a time; ``(1, bins, frames)`` logits."""
        return slide_centre(self.centre_logits, x, self.patch_frames, batch)


def slide_centre(fn, x, frames: int, batch: int = 256):
    """Apply a centre-frame patch function at every frame of ``(1, bins, T)`` (zero-padded ends).

    Works on torch tensors or numpy arrays (``fn`` maps ``(n, bins, frames)`` -> ``(n, bins)``).
    """
    import numpy as np

    is_torch = isinstance(x, torch.Tensor)
    arr = x[0].detach().cpu().numpy() if is_torch else x[0]
    half = frames // 2
    padded = np.pad(arr, ((0, 0), (half, half)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames, axis=1)  # (bins, T, frames)
    windows = windows.transpose(1, 0, 2)
    outs = []
    for start in range(0, windows.shape[0], batch):
        chunk = np.ascontiguousarray(windows[start:start + batch], dtype=np.float32)
        out = fn(torch.from_numpy(chunk)) if is_torch else fn(chunk)
        outs.append(out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out)
    logits = np.concatenate(outs, axis=0).T[None]
    return torch.from_numpy(logits) if is_torch else logits
