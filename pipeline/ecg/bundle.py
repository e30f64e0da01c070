"""Self-describing ECG model folders: ``model.json`` + ``model.pt`` (+ ``model.onnx``).

``model.json`` holds the model name and arguments, class names, the resolved config and
library versions, so a folder loads without the YAML that produced it. Prediction runs
through ONNX Runtime when ``model.onnx`` exists (no torch import: cold start matters for
``pipeline predict``), else through torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import EcgConfig
from pipeline.errors import UserError

META = "model.json"
WEIGHTS = "model.pt"
ONNX = "model.onnx"


def save_bundle(folder: Path, cfg: EcgConfig, model, input_kind: str, n_features: int, extra: dict | None = None) -> None:
    """Write weights, ONNX export (checked against torch) and ``model.json`` into ``folder``."""
    from pipeline.store import software_versions

    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "task": "ecg",
        "name": cfg.name,
        "model_name": cfg.model.name,
        "model_args": cfg.model.args,
        "input_kind": input_kind,
        "n_features": n_features,
        "classes": cfg.classes,
        "config": cfg.model_dump(mode="json"),
        "versions": software_versions(),
        **(extra or {}),
    }
    if model is not None:
        import torch

        model = model.cpu().eval()
        torch.save(model.state_dict(), folder / WEIGHTS)
        export_onnx(model, folder / ONNX, input_kind, cfg, n_features)
    (folder / META).write_text(json.dumps(meta, indent=2))


def example_input(input_kind: str, cfg: EcgConfig, n_features: int, batch: int = 2):
    import torch

    windows = int(cfg.preprocess.duration_s / cfg.scalogram.window_s)
    if input_kind == "scalogram":
        x = torch.randn(batch, windows, 12 * cfg.scalogram.scale_rows_per_lead, cfg.scalogram.time_cols_per_window)
    else:
        from pipeline.ecg.prepare import SIGNAL_RATE_HZ

        x = torch.randn(batch, 12, int(windows * cfg.scalogram.window_s * SIGNAL_RATE_HZ))
    return x, torch.randn(batch, max(n_features, 1))


def export_onnx(model, path: Path, input_kind: str, cfg: EcgConfig, n_features: int) -> None:
    """Export with dynamic batch and window/time axes; refuse an export that disagrees with torch."""
    import torch

    x, features = example_input(input_kind, cfg, n_features)
    axes = {"x": {0: "batch", 1: "windows"} if input_kind == "scalogram" else {0: "batch", 2: "time"},
            "features": {0: "batch"}, "logits": {0: "batch"}}
    import warnings

    with warnings.catch_warnings():  # tracer notes about LSTM batch sizes; parity is checked below
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x, features), str(path), input_names=["x", "features"], output_names=["logits"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )
    with torch.no_grad():
        expected = model(x, features).numpy()
    got = OnnxRunner(path).logits(x.numpy(), features.numpy())
    if not np.allclose(expected, got, atol=1e-3, rtol=1e-3):
        path.unlink()
        raise RuntimeError(f"ONNX export of {cfg.model.name} differs from torch (max {np.abs(expected - got).max():.2e})")


class OnnxRunner:
    """Thin ONNX Runtime session (single-threaded pools sized for small CPU boxes)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
        self.input_names = [i.name for i in self.session.get_inputs()]

    def logits(self, x: np.ndarray, features: np.ndarray) -> np.ndarray:
        feeds = {"x": x.astype(np.float32), "features": features.astype(np.float32)}
        return self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.input_names})[0]


class TorchRunner:
    def __init__(self, folder: Path, meta: dict):
        import torch

        from pipeline.models import create_model

        self.model = create_model(
            meta["model_name"], n_classes=len(meta["classes"]), n_features=meta["n_features"],
            **{k: v for k, v in meta["model_args"].items() if k != "pretrained"},
        )
        self.model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
        self.model.eval()

    def logits(self, x: np.ndarray, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(features.astype(np.float32))).numpy()


@dataclass
class LoadedModel:
    folder: Path
    meta: dict
    runner: object | None  # None for the rule baseline
    backend: str

    @property
    def config(self) -> EcgConfig:
        return EcgConfig.model_validate(self.meta["config"])

    @property
    def label(self) -> str:
        return self.meta.get("display_name") or self.meta["name"]


def load_bundle(folder: Path, backend: str = "auto") -> LoadedModel:
    """Open a model folder; ``backend`` is ``auto`` (ONNX if present), ``onnx`` or ``torch``."""
    meta_path = folder / META
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a model folder (no {META})")
    meta = json.loads(meta_path.read_text())
    if meta.get("task") != "ecg":
        raise UserError(f"{folder} holds a {meta.get('task')!r} model, not an ECG classifier")
    if meta["model_name"] == "rule":
        return LoadedModel(folder, meta, None, "rule")
    if backend not in ("auto", "onnx", "torch"):
        raise UserError(f"unknown backend {backend!r}; use auto, onnx or torch")
    if backend in ("auto", "onnx") and (folder / ONNX).is_file():
        return LoadedModel(folder, meta, OnnxRunner(folder / ONNX), "onnx")
    if backend == "onnx":
        raise UserError(f"{folder} has no {ONNX}; use --backend torch")
    return LoadedModel(folder, meta, TorchRunner(folder, meta), "torch")
