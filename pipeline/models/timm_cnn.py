"""A timm backbone (resnet18, efficientnet_b0, ...) on each 1-s stacked scalogram.

Per-window logits are averaged into one record-level prediction. ``pretrained`` is
``imagenet`` (timm hub, needs a network), a local weights file, or ``none``; timm adapts
the first convolution to one input channel (``in_chans=1``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.models import register_model


def create_backbone(name: str, pretrained: str = "none", **kwargs) -> nn.Module:
    """timm model without classifier (``num_classes=0`` gives pooled features)."""
    import timm

    if name not in timm.list_models():
        raise UserError(f"unknown timm backbone {name!r} (see timm.list_models())")
    if pretrained in ("none", "", None):
        return timm.create_model(name, pretrained=False, in_chans=1, num_classes=0, **kwargs)
    if pretrained == "imagenet":
        try:
            return timm.create_model(name, pretrained=True, in_chans=1, num_classes=0, **kwargs)
        except Exception as exc:  # hub download fails offline with assorted errors
            raise UserError(
                f"cannot download ImageNet weights for {name} ({type(exc).__name__}); on an offline "
                "machine set model.args.pretrained to a local weights file (.safetensors/.pth/.bin) "
                "downloaded elsewhere, or to 'none'"
            ) from exc
    weights = Path(pretrained).expanduser()
    if not weights.is_file():
        raise UserError(f"pretrained weights file not found: {weights} (or use 'imagenet' / 'none')")
    return timm.create_model(
        name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, in_chans=1, num_classes=0, **kwargs
    )


@register_model("timm_cnn")
class TimmCnn(nn.Module):
    """Backbone per window, optional rhythm features concatenated, mean of window logits."""

    input_kind = "scalogram"

    def __init__(
        self, n_classes: int, n_features: int = 0, backbone: str = "resnet18", pretrained: str = "none", dropout: float = 0.2
    ):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained)
        # MobileNetV3-style backbones end in a conv head wider than num_features
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width + n_features, n_classes))
        self.n_features = n_features

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """x: (batch, windows, rows, cols); features: (batch, n_features) -> (batch, classes)."""
        batch, windows = x.shape[:2]
        embedding = self.backbone(x.flatten(0, 1).unsqueeze(1)).view(batch, windows, -1)
        if self.n_features:
            embedding = torch.cat([embedding, features[:, None, :].expand(batch, windows, -1)], dim=-1)
        return self.head(embedding).mean(dim=1)
