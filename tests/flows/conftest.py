"""Prefect test harness for flow tests only (../shared/PREFECT.md §3.3).

One temporary Prefect server (SQLite) for the whole session, result storage in a temporary
folder (no cache leaks between sessions), ``PREFECT_HOME`` in a temporary folder and
telemetry off. Other test folders never pay for it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = tempfile.mkdtemp(prefix="pipeline-test-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME  # before Prefect is imported by the test modules
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("prefect", reason="flow tests need the 'flows' extra")

from flow_helpers import publish_tiny_separator  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def prefect_harness(tmp_path_factory):
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    try:
        with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
            with prefect_test_harness(server_startup_timeout=90):
                yield
    finally:
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture
def store_root(tmp_path, monkeypatch) -> str:
    """An empty local artifact store, also exported as ``PIPELINE_STORE``."""
    root = tmp_path / "store"
    monkeypatch.setenv("PIPELINE_STORE", str(root))
    return str(root)


@pytest.fixture
def rule_config(tmp_path) -> str:
    """ECG config with the rule model on the bundled 12-record sample (trains in about a second)."""
    path = tmp_path / "ecg-flowtest.yaml"
    path.write_text(f"name: ecg-flowtest\ndata: {REPO / 'samples' / 'ecg'}\nmodel:\n  name: rule\ntrain:\n  folds: 2\n")
    return str(path)


@pytest.fixture
def tiny_separator(store_root) -> str:
    """An untrained tiny separator published as ``svs-tiny`` in the test store (no training)."""
    pytest.importorskip("pipeline.svs.separate", reason="separation library not present")
    return publish_tiny_separator(store_root)
