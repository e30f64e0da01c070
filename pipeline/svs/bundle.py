"""Self-describing separator folders: ``model.json`` + ``model.pt`` + ``model.onnx``.

``model.json`` holds the network name and arguments, the resolved config (STFT, IBM,
threshold), training metrics and library versions, so a folder loads without the YAML
that produced it. Separation runs through ONNX Runtime when ``model.onnx`` exists (checked
against torch at export), else through torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError, loading_model, read_user_json
from pipeline.svs.config import SvsConfig, SvsStft

META = "model.json"
WEIGHTS = "model.pt"
ONNX = "model.onnx"
DEFAULT_MODEL = "svs-default"
BUNDLED_STORE = Path(__file__).resolve().parents[2] / "artifacts"


def save_bundle(folder: Path, cfg: SvsConfig, model, extra: dict | None = None, onnx: bool = True) -> None:
    """Write weights, ONNX export (verified against torch) and ``model.json`` into ``folder``."""
    import torch

    from pipeline.store import software_versions

    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    torch.save(model.state_dict(), folder / WEIGHTS)
    exported = export_onnx(model, folder / ONNX, cfg) if onnx else False
    meta = {
        "task": "svs",
        "name": cfg.name,
        "model_name": cfg.model.name,
        "model_args": cfg.model.args,
        "n_bins": cfg.stft.n_bins,
        "onnx": exported,
        "config": cfg.model_dump(mode="json"),
        "versions": software_versions(),
        **(extra or {}),
    }
    (folder / META).write_text(json.dumps(meta, indent=2))


def export_onnx(model, path: Path, cfg: SvsConfig) -> bool:
    """Export with dynamic batch (and frames for ``fcn``/``hourglass``); refuse an export that disagrees.

    A multi-resolution model (``stft.extra_windows``) takes ``(batch, channels, bins, frames)``."""
    import torch

    n_bins = cfg.stft.n_bins
    lead = () if cfg.stft.in_channels == 1 else (cfg.stft.in_channels,)
    if cfg.model.name == "lin2018":
        from torch import nn

        class _Centre(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner.centre_logits(x)

        wrapped, x = _Centre(model).eval(), torch.randn(3, n_bins, model.patch_frames)
        axes = {"x": {0: "batch"}, "logits": {0: "batch"}}
    else:
        wrapped, x = model, torch.randn(1, *lead, n_bins, 37)
        axes = {"x": {0: "batch", x.dim() - 1: "frames"}, "logits": {0: "batch", 2: "frames"}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (x,), str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    check = x if cfg.model.name == "lin2018" else torch.randn(2, *lead, n_bins, 101)
    with torch.no_grad():
        expected = wrapped(check).numpy()
    got = OnnxRunner(path, cfg.model.name, getattr(model, "patch_frames", None))._call(check.numpy())
    if not np.allclose(expected, got, atol=1e-3, rtol=1e-3):
        path.unlink()
        raise RuntimeError(f"ONNX export differs from torch (max {np.abs(expected - got).max():.2e})")
    return True


class OnnxRunner:
    """Mask logits through ONNX Runtime (CUDA when onnxruntime-gpu provides it).

    ``threads``: intra-op CPU threads; None = one per core (up to 4), since one separation
    is one process and the network is most of its work.
    """

    backend = "onnx"

    def __init__(self, path: Path, model_name: str, patch_frames: int | None, threads: int | None = None):
        import os

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
        self.model_name, self.patch_frames = model_name, patch_frames

    def _call(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"x": x.astype(np.float32)})[0]

    def mask_logits(self, feats: np.ndarray) -> np.ndarray:
        """``(1, [channels,] bins, frames)`` features -> ``(1, bins, frames)`` voice logits."""
        if self.model_name == "lin2018":
            from pipeline.svs.models import slide_centre

            return slide_centre(self._call, feats, self.patch_frames)
        return self._call(feats)


class TorchRunner:
    backend = "torch"

    def __init__(self, model):
        self.model = model.eval()

    def mask_logits(self, feats: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model.mask_logits(torch.from_numpy(feats.astype(np.float32))).numpy()


@dataclass
class LoadedSeparator:
    """A separator ready to run: its folder, metadata, config and mask runner."""

    folder: Path
    meta: dict
    runner: object
    run_id: str

    @property
    def config(self) -> SvsConfig:
        return SvsConfig.model_validate(self.meta["config"])

    @property
    def name(self) -> str:
        return self.meta["name"]


def build_model(meta: dict):
    from pipeline.svs.models import create_separator

    stft = meta.get("config", {}).get("stft")
    in_channels = SvsStft.model_validate(stft).in_channels if stft else 1
    return create_separator(meta["model_name"], meta["n_bins"], in_channels=in_channels, **meta["model_args"])


def load_bundle(folder: Path, backend: str = "auto", run_id: str | None = None) -> LoadedSeparator:
    """Open a separator folder; ``backend`` is ``auto`` (ONNX if present), ``onnx`` or ``torch``."""
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a separator model folder (no {META})")
    meta = read_user_json(meta_path, "model description")
    if meta.get("task") != "svs":
        raise UserError(f"{folder} holds a {meta.get('task')!r} model, not a separator")
    if backend not in ("auto", "onnx", "torch"):
        raise UserError(f"unknown backend {backend!r}; use auto, onnx or torch")
    run = run_id or meta.get("run_id") or folder.name
    if backend in ("auto", "onnx") and (folder / ONNX).is_file():
        with loading_model(folder, ONNX):
            patch = 9 if meta["model_name"] == "lin2018" else None
            return LoadedSeparator(folder, meta, OnnxRunner(folder / ONNX, meta["model_name"], patch), run)
    if backend == "onnx":
        raise UserError(f"{folder} has no {ONNX}; use the torch backend")
    if not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder} has no {WEIGHTS}")
    import torch

    with loading_model(folder, WEIGHTS):
        model = build_model(meta)
        model.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
        return LoadedSeparator(folder, meta, TorchRunner(model), run)


def resolve_model(spec: str | os.PathLike | None, store=None, backend: str = "auto") -> LoadedSeparator:
    """Find a separator: a folder path, ``NAME`` or ``NAME@RUN`` in the store (default
    ``svs-default``); falls back to the model bundled in the repository's ``artifacts/``."""
    from pipeline.store import Store, validate_id

    if isinstance(spec, LoadedSeparator):
        return spec
    text = str(spec) if spec is not None else DEFAULT_MODEL
    if spec is not None and (os.sep in text or Path(text).is_dir()):
        if not Path(text).is_dir():
            raise UserError(f"{text} is a file, not a model folder" if Path(text).exists() else f"model folder not found: {text}")
        return load_bundle(Path(text), backend)
    name, _, run = text.partition("@")
    validate_id(name, "model name")
    if run:
        validate_id(run, "run id")
    stores = [store or Store.open()]
    bundled = Store.open(BUNDLED_STORE)
    if bundled.root != stores[0].root:
        stores.append(bundled)
    for candidate in stores:
        chosen = run or candidate.latest("models", "svs", name)
        if chosen and candidate.read_manifest("models", "svs", name, chosen) is not None:
            folder = candidate.local_copy("models", "svs", name, chosen, META).parent
            if not candidate.is_local:
                for fname in (WEIGHTS, ONNX):
                    try:
                        candidate.local_copy("models", "svs", name, chosen, fname)
                    except FileNotFoundError:
                        pass
            return load_bundle(folder, backend, run_id=chosen)
    where = f"run {run!r} of " if run else ""
    raise UserError(f"no {where}separator model {name!r} in the store ({stores[0].root}); train one with "
                    "'pipeline train separator --config configs/svs/svs-default.yaml'")
