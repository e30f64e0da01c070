"""Helpers for the flow tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def write_tone(path: Path, seconds: float = 1.5, rate: int = 16000, seed: int = 0, stereo: bool = False) -> Path:
    """A short 'song': a harmonic tone (voice-like) over noise (accompaniment-like)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * (220 + 20 * seed) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    acc = 0.1 * rng.standard_normal(t.size)
    audio = np.stack([acc, voice], axis=1) if stereo else (voice + acc)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), rate, subtype="PCM_16")
    return path


def tiny_svs_config(name: str = "svs-tiny"):
    from pipeline.svs.config import SvsConfig

    return SvsConfig.model_validate({
        "name": name,
        "stft": {"sample_rate": 8000, "n_fft": 256, "win_length": 256, "hop": 64},
        "model": {"name": "fcn", "args": {"channels": [4, 8], "convs": 1}},
        "split": {"by": "song", "test_fraction": 0.34, "val_fraction": 0.0, "singers": ["abjones"]},
        "train": {"pretrain_steps": 2, "steps": 3, "batch_size": 2, "patch_frames": 16, "val_every": 2,
                  "threads": 1},
        "separate": {"chunk_s": 1.0, "context_s": 0.25},
    })


def artifacts_of(flow_run_id) -> list:
    """Artifacts the given flow run (or its tasks) created, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        return client.read_artifacts(artifact_filter=flt)


def publish_tiny_separator(store_root: str, name: str = "svs-tiny") -> str:
    """Publish an untrained tiny separator as ``name`` (latest) in the store; returns ``name``."""
    import torch

    from pipeline.store import Store, new_run_id
    from pipeline.svs.bundle import save_bundle
    from pipeline.svs.models import create_separator

    cfg = tiny_svs_config(name)
    torch.manual_seed(0)
    model = create_separator(cfg.model.name, cfg.stft.n_bins, **cfg.model.args)
    store = Store.open(store_root)
    run_id = new_run_id()
    with tempfile.TemporaryDirectory() as tmp:
        save_bundle(Path(tmp), cfg, model, {"run_id": run_id}, onnx=False)
        files = {p.name: p for p in Path(tmp).iterdir()}
        store.publish_run(("models", "svs", name, run_id), files, kind="model", config=cfg.model_dump(mode="json"))
    store.set_latest(("models", "svs", name), run_id)
    return name
