"""Mask networks by name: ``fcn`` (fast default), ``hourglass`` and ``lin2018`` (the paper's CNN).

Every network maps mixture features ``(batch, bins, frames)`` to voice-mask logits of the
same shape; ``fcn`` and ``hourglass`` built with ``in_channels=C > 1`` (multi-resolution input,
``stft.extra_windows``) take ``(batch, C, bins, frames)`` and still return ``(batch, bins, frames)``. Stage 1 (autoencoder pre-training) uses the same forward pass as a regressor of
voice features; stage 2 reads the output as logits for sigmoid cross-entropy against the IBM.

* ``fcn`` is fully convolutional: one pass classifies every bin of a whole chunk.
* ``hourglass`` stacks hourglasses (Park et al. 2018), each refining the last's mask estimate;
  by default they run at a quarter of the resolution and a decoder restores it.
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


def create_separator(name: str, n_bins: int, in_channels: int = 1, **args) -> nn.Module:
    """Build a registered mask network for spectrograms with ``n_bins`` frequency bins and
    ``in_channels`` input channels (1: the ``(batch, bins, frames)`` input every bundle has)."""
    from pipeline.errors import UserError

    if name not in _REGISTRY:
        raise UserError(f"unknown separator model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    if in_channels != 1:
        if name == "lin2018":
            raise UserError("lin2018 takes one input channel; multi-resolution input needs fcn or hourglass")
        args["in_channels"] = in_channels
    return _REGISTRY[name](n_bins=n_bins, **args)


def _input_affine(module: nn.Module, n_bins: int, in_channels: int) -> None:
    """Learnt per-bin (and per-channel) input scale and bias; one channel keeps the ``(bins, 1)``
    shape every bundled model was saved with."""
    shape = (n_bins, 1) if in_channels == 1 else (in_channels, n_bins, 1)
    module.input_scale = nn.Parameter(torch.ones(shape))
    module.input_bias = nn.Parameter(torch.zeros(shape))


def _scaled_input(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(batch, bins, frames)`` or ``(batch, C, bins, frames)`` -> ``(batch, C, bins, frames)``, scaled."""
    return (x if x.dim() == 4 else x.unsqueeze(1)) * module.input_scale + module.input_bias


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


def _encode(levels: nn.ModuleList, h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``levels`` in turn: the last output, and every earlier one (the decoder's skips)."""
    skips = []
    for level in levels:
        h = level(h)
        skips.append(h)
    skips.pop()
    return h, skips


def _decode(ups: nn.ModuleList, merges: nn.ModuleList, h: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """Up-sample, crop to the next skip (odd sizes), concatenate it and merge, level by level."""
    for up, merge in zip(ups, merges):
        skip = skips.pop()
        h = merge(torch.cat([up(h)[..., : skip.shape[-2], : skip.shape[-1]], skip], dim=1))
    return h


@register("fcn")
class FcnMasker(nn.Module):
    """Encoder-decoder with skip connections over the whole spectrogram chunk.

    Args:
        n_bins: frequency bins of the input.
        channels: channels per level; each level after the first halves both axes.
        convs: 3x3 convolutions per level (after the down-sampling one).
        in_channels: input channels (> 1: ``(batch, C, bins, frames)`` multi-resolution features).

    Any number of frames is accepted (decoder outputs are cropped to the skip's size).
    """

    patch_frames: int | None = None

    def __init__(self, n_bins: int, channels: tuple[int, ...] = (16, 32, 64, 128), convs: int = 1,
                 in_channels: int = 1):
        super().__init__()
        self.n_bins = n_bins
        channels = tuple(channels)
        _input_affine(self, n_bins, in_channels)
        self.down = nn.ModuleList()
        for i, c in enumerate(channels):
            first = _block(in_channels if i == 0 else channels[i - 1], c, stride=1 if i == 0 else 2)
            self.down.append(nn.Sequential(first, *[_block(c, c) for _ in range(convs)]))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(len(channels) - 1, 0, -1):
            self.up.append(nn.ConvTranspose2d(channels[i], channels[i - 1], 2, stride=2))
            self.merge.append(_block(2 * channels[i - 1], channels[i - 1]))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, [C,] bins, frames)`` features -> ``(batch, bins, frames)`` logits."""
        h, skips = _encode(self.down, _scaled_input(self, x))
        return self.head(_decode(self.up, self.merge, h, skips)).squeeze(1)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


class _Residual(nn.Module):
    """Pre-activation bottleneck residual block (BN, LeakyReLU, 1x1 -> 3x3 -> 1x1 at half width)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = max(cout // 2, 1)

        def unit(a: int, b: int, k: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(a), nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(a, b, k, padding=k // 2, bias=False)]

        self.body = nn.Sequential(*unit(cin, mid, 1), *unit(mid, mid, 3), *unit(mid, cout, 1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class _Hourglass(nn.Module):
    """One hourglass: a residual block at this scale beside max-pool -> block -> (inner
    hourglass or block) -> block -> nearest up-sampling, the two summed (Newell et al. 2016)."""

    def __init__(self, depth: int, channels: int):
        super().__init__()
        self.skip = _Residual(channels, channels)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)  # odd sizes round up; the up-sampled path is cropped
        self.down = _Residual(channels, channels)
        self.inner = _Hourglass(depth - 1, channels) if depth > 1 else _Residual(channels, channels)
        self.up = _Residual(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.inner(self.down(self.pool(x))))
        low = nn.functional.interpolate(low, scale_factor=2.0, mode="nearest")
        return self.skip(x) + low[..., : x.shape[-2], : x.shape[-1]]


@register("hourglass")
class StackedHourglass(nn.Module):
    """Stacked hourglass network on the spectrogram as a 1-channel image (Park et al. 2018).

    A stem of ``stem_levels`` stride-2 3x3 convolutions (after one at full resolution) lifts the
    input to ``channels``; each of ``stacks`` hourglasses (``depth`` max-pool levels, residual
    blocks, nearest up-sampling plus a residual skip at every level) is followed by a residual
    block and a 1x1 convolution to features, from which a 1x1 convolution estimates the voice
    mask (logits). Except after the last stack, the features and the mask estimate are mapped
    back by 1x1 convolutions and added to the stack's input, so the next hourglass refines the
    previous estimate. ``stem_levels=0`` is the paper's layout (every stack at full resolution;
    its last mask is the output), but at 32 channels one CPU training step then costs ~10x a
    default ``fcn`` step. With ``stem_levels > 0`` (default 2) the stacks run at 1/2**stem_levels
    of the resolution on both axes (as in Newell et al.'s pose network) and a U-Net-style decoder
    (transposed convolution, skip from the stem, 3x3 convolution per level) turns the last
    stack's features and mask into full-resolution logits.

    Args:
        n_bins: frequency bins of the input.
        stacks: hourglasses in sequence.
        channels: feature channels in the hourglasses (the stem halves them per level above).
        depth: down-sampling levels per hourglass.
        stem_levels: stride-2 stem levels before the stacks (0: the stacks run at full resolution).
        in_channels: input channels (> 1: ``(batch, C, bins, frames)`` multi-resolution features).

    Any number of bins and frames is accepted (max-pooling rounds up, up-sampled maps are
    cropped to the skip's size). ``forward`` returns the final mask only, which is all the
    training loop sees: the earlier stacks' estimates get no loss of their own (the paper sums
    one over every stack); :meth:`stack_logits` returns them.
    """

    patch_frames: int | None = None

    def __init__(self, n_bins: int, stacks: int = 2, channels: int = 32, depth: int = 4, stem_levels: int = 2,
                 in_channels: int = 1):
        super().__init__()
        if stacks < 1 or depth < 1 or stem_levels < 0 or channels >> stem_levels < 1:
            raise ValueError("hourglass needs stacks >= 1, depth >= 1, stem_levels >= 0 and channels >= 2**stem_levels")
        self.n_bins = n_bins
        _input_affine(self, n_bins, in_channels)
        widths = [channels >> (stem_levels - i) for i in range(stem_levels + 1)]
        self.stem = nn.ModuleList([_block(in_channels, widths[0])] + [_block(a, b, stride=2) for a, b in zip(widths, widths[1:])])
        self.entry = _Residual(channels, channels)
        self.hourglasses = nn.ModuleList(_Hourglass(depth, channels) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(_Residual(channels, channels), nn.Conv2d(channels, channels, 1, bias=False),
                          nn.BatchNorm2d(channels), nn.LeakyReLU(0.1, inplace=True))
            for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(channels, 1, 1) for _ in range(stacks))
        self.feature_back = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1))
        self.mask_back = nn.ModuleList(nn.Conv2d(1, channels, 1) for _ in range(stacks - 1))
        # decoder (stem_levels > 0): the last stack's features + mask, up one level at a time
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(stem_levels, 0, -1):
            cin = widths[i] + (1 if i == stem_levels else 0)
            self.up.append(nn.ConvTranspose2d(cin, widths[i - 1], 2, stride=2))
            self.merge.append(_block(2 * widths[i - 1], widths[i - 1]))
        self.out = nn.Conv2d(widths[0], 1, 1) if stem_levels else None

    def stack_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(batch, bins, frames)`` features -> every stack's mask logits (at the stacks'
        resolution), then the final full-resolution ones (the last stack's when ``stem_levels`` is 0)."""
        h, skips = _encode(self.stem, _scaled_input(self, x))
        h = self.entry(h)
        outs, last = [], None
        for i, (hourglass, features, head) in enumerate(zip(self.hourglasses, self.features, self.heads)):
            last = features(hourglass(h))
            logits = head(last)
            outs.append(logits)
            if i < len(self.feature_back):
                h = h + self.feature_back[i](last) + self.mask_back[i](logits)
        if self.out is None:
            return [o.squeeze(1) for o in outs] + [outs[-1].squeeze(1)]
        h = _decode(self.up, self.merge, torch.cat([last, outs[-1]], dim=1), skips)
        return [o.squeeze(1) for o in outs] + [self.out(h).squeeze(1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, bins, frames)`` features -> the final ``(batch, bins, frames)`` logits."""
        return self.stack_logits(x)[-1]

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
