"""Self-describing ECG model folders: ``model.json`` + ``model.pt`` (+ ``model.onnx``).

``model.json`` holds the model name and arguments, class names, the resolved config and
library versions, so a folder loads without the YAML that produced it. Prediction runs
through ONNX Runtime when ``model.onnx`` exists (no torch import: cold start matters for
``pipeline predict``), else through torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import EcgConfig
from pipeline.ecg.prepare import Needed
from pipeline.errors import UserError, loading_model, read_user_json

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


def member_meta(cfg: EcgConfig, input_kind: str, n_features: int, key: str) -> dict:
    """What loads one ensemble member: its network, input kind and files inside the ensemble folder."""
    return {
        "task": "ecg", "name": key, "model_name": cfg.model.name, "model_args": cfg.model.args,
        "input_kind": input_kind, "n_features": n_features, "classes": cfg.classes,
        "config": cfg.model_dump(mode="json"), "weights_file": f"{key}.pt", "onnx_file": f"{key}.onnx",
    }


def save_ensemble(folder: Path, cfg: EcgConfig, members: list[tuple[dict, object]], weights, temperature: float,
                  extra: dict | None = None) -> None:
    """One flat folder: ``model.json`` (members, weights, temperature) + ``<member>.pt`` / ``<member>.onnx``.

    Member weights are rounded to float16 before both exports (the .pt is stored as float16,
    half the size), so the torch and ONNX paths compute with identical weights.
    """
    import torch

    from pipeline.store import software_versions

    folder.mkdir(parents=True, exist_ok=True)
    for meta, model in members:
        model = model.cpu().eval().float()
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                   folder / meta["weights_file"])
        export_onnx(model, folder / meta["onnx_file"], meta["input_kind"], EcgConfig.model_validate(meta["config"]),
                    meta["n_features"])
    meta = {
        "task": "ecg", "name": cfg.name, "model_name": "ensemble", "model_args": {}, "input_kind": "ensemble",
        "n_features": 0, "classes": cfg.classes, "config": cfg.model_dump(mode="json"),
        "members": [m for m, _ in members], "weights": [float(w) for w in weights], "temperature": float(temperature),
        "versions": software_versions(), **(extra or {}),
    }
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
            do_constant_folding=False,  # no batch-norm folding: the weights stay float16-exact (see below)
        )
    _store_exact_halves(path)
    with torch.no_grad():
        expected = model(x, features).numpy()
    got = OnnxRunner(path).logits(x.numpy(), features.numpy())
    if not np.allclose(expected, got, atol=1e-3, rtol=1e-3):
        path.unlink()
        raise RuntimeError(f"ONNX export of {cfg.model.name} differs from torch (max {np.abs(expected - got).max():.2e})")


def _store_exact_halves(path: Path) -> None:
    """Store every float32 weight that float16 holds exactly as float16 plus a Cast node.

    Ensemble members are rounded to float16 before export (see :func:`save_ensemble`), so
    this halves the file with no change in what ONNX Runtime computes: it folds the casts
    (and the batch norms) into float32 weights when the session is created.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph, casts, kept = model.graph, [], []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        half = array.astype(np.float16)
        if array.dtype == np.float32 and array.size > 1 and np.array_equal(half.astype(np.float32), array):
            kept.append(numpy_helper.from_array(half, f"{tensor.name}__float16"))
            casts.append(helper.make_node("Cast", [kept[-1].name], [tensor.name], to=onnx.TensorProto.FLOAT))
        else:
            kept.append(tensor)
    if not casts:
        return
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(kept)
    graph.node.extend(nodes)
    onnx.save(model, str(path))


class OnnxRunner:
    """Thin ONNX Runtime session; ``threads`` caps its intra-op pool (None: one per core)."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
        self.input_names = [i.name for i in self.session.get_inputs()]

    def logits(self, x: np.ndarray, features: np.ndarray) -> np.ndarray:
        feeds = {"x": x.astype(np.float32), "features": features.astype(np.float32)}
        return self.session.run(["logits"], {k: v for k, v in feeds.items() if k in self.input_names})[0]


class TorchRunner:
    def __init__(self, weights: Path, meta: dict, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)

        from pipeline.models import create_model

        self.model = create_model(
            meta["model_name"], n_classes=len(meta["classes"]), n_features=meta["n_features"],
            **{k: v for k, v in meta["model_args"].items() if k != "pretrained"},
        )
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        self.model.eval()

    def logits(self, x: np.ndarray, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(features.astype(np.float32))).numpy()


@dataclass
class LoadedModel:
    folder: Path
    meta: dict
    runner: object | None  # None for the rule baseline and for ensembles
    backend: str
    members: list["LoadedModel"] = field(default_factory=list)  # ensemble members

    @property
    def config(self) -> EcgConfig:
        return EcgConfig.model_validate(self.meta["config"])

    @property
    def needed(self) -> Needed:
        """What preparation must compute for this model (it skips the CWT when no network reads
        the scalogram, the rhythm features when only networks without them are involved)."""
        if self.members:
            parts = [member.needed for member in self.members]
            return Needed(any(p.image for p in parts), any(p.features for p in parts))
        if self.runner is None:  # the rule
            return Needed(image=False, features=True)
        return Needed(self.meta.get("input_kind") == "scalogram", bool(self.meta["n_features"]))

    @property
    def label(self) -> str:
        return self.meta.get("display_name") or self.meta["name"]


def load_bundle(folder: Path, backend: str = "auto", threads: int | None = None) -> LoadedModel:
    """Open a model folder; ``backend`` is ``auto`` (ONNX if present), ``onnx`` or ``torch``;
    ``threads`` caps each network's CPU threads (worker processes use one)."""
    meta_path = folder / META
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a model folder (no {META})")
    meta = read_user_json(meta_path, "model description")
    if meta.get("task") != "ecg":
        raise UserError(f"{folder} holds a {meta.get('task')!r} model, not an ECG classifier")
    if backend not in ("auto", "onnx", "torch"):
        raise UserError(f"unknown backend {backend!r}; use auto, onnx or torch")
    with loading_model(folder):
        if meta["model_name"] == "rule":
            return LoadedModel(folder, meta, None, "rule")
        if meta["model_name"] == "ensemble":
            members = [_load_network(folder, m, m["onnx_file"], m["weights_file"], backend, threads) for m in meta["members"]]
            return LoadedModel(folder, meta, None, members[0].backend, members)
        return _load_network(folder, meta, ONNX, WEIGHTS, backend, threads)


def _load_network(folder: Path, meta: dict, onnx_file: str, weights_file: str, backend: str,
                  threads: int | None = None) -> LoadedModel:
    if backend in ("auto", "onnx") and (folder / onnx_file).is_file():
        with loading_model(folder, onnx_file):
            return LoadedModel(folder, meta, OnnxRunner(folder / onnx_file, threads), "onnx")
    if backend == "onnx":
        raise UserError(f"{folder} has no {onnx_file}; use --backend torch")
    if not (folder / weights_file).is_file():
        raise UserError(f"{folder} has no {weights_file}")
    with loading_model(folder, weights_file):
        return LoadedModel(folder, meta, TorchRunner(folder / weights_file, meta, threads), "torch")
