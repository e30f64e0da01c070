"""Shared fixtures: the bundled sample, the shared data (when present), an in-process CLI runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ECG = REPO / "samples" / "ecg"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``shared`` skip on a fresh clone that has no ../shared beside it."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} not present")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``pipeline ARGS...`` in-process through ``pipeline.cli.main`` (exit-code contract included)."""
    from pipeline.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["pipeline", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """An empty artifact store in a temporary folder, selected through PIPELINE_STORE."""
    root = tmp_path / "store"
    monkeypatch.setenv("PIPELINE_STORE", str(root))
    return root


def write_record(folder: Path, name: str, signal: np.ndarray, fs: float = 500, leads=None, dx="426783006", fmt="16"):
    """Write a WFDB record with wfdb.wrsamp (signal in mV, shape (samples, leads))."""
    import wfdb

    from pipeline.io.ecg import STANDARD_LEADS

    leads = list(leads or STANDARD_LEADS[: signal.shape[1]])
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name, fs=fs, units=["mV"] * len(leads), sig_name=leads, p_signal=signal, fmt=[fmt] * len(leads),
        adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
        comments=[f"Dx: {dx}"] if dx else [], write_dir=str(folder),
    )
    return folder / name


def synthetic_ecg(seconds: float = 10, fs: float = 500, bpm: float = 75, n_leads: int = 12, seed: int = 0, jitter: float = 0.0):
    """Gaussian QRS-like spikes at ``bpm`` (optionally irregular), per-lead gains, a little noise.

    Returns (samples, leads) in mV.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    beats, time = [], 0.3
    while time < seconds:
        beats.append(time)
        time += 60 / bpm * (1 + jitter * rng.uniform(-1, 1))
    trace = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats) + 0.15 * sum(
        np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2) for b in beats
    )
    gains = np.linspace(0.5, 1.5, n_leads)
    return (trace[:, None] * gains[None, :] + 0.01 * rng.standard_normal((len(t), n_leads))).astype(np.float64)
