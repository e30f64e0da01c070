"""A stand-in separator with ``separate_file``'s signature (dependency-injection test)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline.store import Store, sha256_file


def fake_separate(path, model=None, store=None, out_dir=None) -> dict:
    """Copy the input as both stems; same return shape as ``pipeline.svs.separate.separate_file``."""
    store = store or Store.open()
    path = Path(path)
    digest = sha256_file(path)
    track_id = f"{path.stem}-{digest[:8]}"
    uri = store.publish_run(("stems", track_id, "fake-model-run"), {"vocals.wav": path, "accompaniment.wav": path},
                            kind="fake-stems", inputs=[{"path": str(path), "sha256": digest}])
    return {"track_id": track_id, "run_id": "fake-model-run",
            "stems": {"vocals": f"{uri}/vocals.wav", "accompaniment": f"{uri}/accompaniment.wav"},
            "seconds": 1.0, "sample_rate": 16000}


def model_run_id(model=None, store=None) -> str:
    """The run id ``fake_separate`` keys its stems by (the flow skips files already separated by it)."""
    return "fake-model-run"


def slow_separate(path, model=None, store=None, out_dir=None) -> dict:
    """``fake_separate`` after ``FAKE_SEPARATE_SLEEP_S`` seconds (a long GPU step a test can kill)."""
    time.sleep(float(os.environ.get("FAKE_SEPARATE_SLEEP_S", "0")))
    return fake_separate(path, model, store, out_dir)
