"""Model registry: every network is created by name from a config (timm style).

Each registered class takes ``n_classes`` and ``n_features`` (rhythm features fed to the
head; 0 disables them) plus its own keyword arguments, declares ``input_kind``
(``"scalogram"``: (batch, windows, rows, cols) or ``"signal"``: (batch, leads, samples)),
and returns record-level logits (batch, n_classes) from ``forward(x, features)``.
"""

from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, Callable] = {}


def register_model(name: str) -> Callable:
    def decorator(cls):
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_models() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def model_class(name: str):
    """The registered class (its ``input_kind`` says what it eats); unknown names list the valid ones."""
    _import_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, n_classes: int, n_features: int = 0, **kwargs):
    """Instantiate a registered network."""
    return model_class(name)(n_classes=n_classes, n_features=n_features, **kwargs)


def _import_all() -> None:
    from pipeline.models import cnn1d, cnn_lstm, resnet1d, timm_cnn  # noqa: F401  (registration side effect)
