"""Device choice ("auto" -> CUDA when present) and seeding."""

from __future__ import annotations

import random

import numpy as np


def resolve_device(name: str = "auto"):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from pipeline.errors import UserError

        raise UserError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def device_info(device) -> dict:
    """``{"device": "cuda:0", "gpu": "NVIDIA H200"}`` (``gpu`` None off CUDA) for a torch device:
    what trained a model, recorded in metrics.json and the manifest (``auto`` may fall back to CPU)."""
    import torch

    return {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
