"""Issue 10: every bad input and every fault gives exit status 2 (130 when interrupted), one
``error:`` line, no traceback, and leaves no half-written output behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from svs_util import tiny_bundle


def _assert_one_error(result, code: int = 2, contains: str = ""):
    assert result.code == code, result
    lines = [line for line in result.err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out


# -- command line ------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ([], "Missing command"),
    (["train"], "Missing command"),
    (["evaluate"], "Missing command"),
    (["models"], "Missing command"),
    (["stems"], "Missing command"),
    (["flow"], "Missing command"),
    (["predict"], "Missing argument"),
    (["no-such-command"], "No such command"),
    (["predict", "rec", "--no-such-option"], "No such option"),
    (["predict", "rec", "--model"], "requires an argument"),
    (["separate", "song.wav", "--threshold", "abc"], "Invalid value for '--threshold'"),
    (["separate", "song.wav", "--threshold", "2"], "Invalid value for '--threshold'"),
    (["train", "ecg"], "Missing option '--config'"),
    (["stems", "get", "track"], "Missing option '--out'"),
])
def test_usage_mistakes_are_one_line_and_exit_2(cli, args, message):
    _assert_one_error(cli(*args), contains=message)


def test_usage_error_from_the_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", "--bogus"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60, env=_env(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: No such option")


# -- interrupts --------------------------------------------------------------------------
_DRIVER = """
import os, signal, sys
import {module} as target
real, calls = target.{function}, []
def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == {after}:
        os.kill(os.getpid(), signal.{signal})
    return real(*args, **kwargs)
target.{function} = interrupted
sys.argv = ["pipeline", *sys.argv[1:]]
from pipeline.cli import main
main()
"""


def _env(tmp_path):
    return {**os.environ, "PIPELINE_STORE": str(tmp_path / "store"), "TMPDIR": str(tmp_path / "tmp"),
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}


def _run_interrupted(tmp_path, module, function, sig, *args, after=2):
    """Run the CLI in a child that sends itself ``sig`` on call number ``after`` of ``module.function``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    script = _DRIVER.format(module=module, function=function, signal=sig, after=after)
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env=_env(tmp_path))


def _song(tmp_path, seconds=3.0, sr=16000):
    path = tmp_path / "song.wav"
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sr)
    return path


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_separation_leaves_nothing(tmp_path, sig, code):
    model = tiny_bundle(tmp_path / "model")
    out = tmp_path / "out"
    proc = _run_interrupted(tmp_path, "pipeline.svs.separate", "separate_array", sig,
                            "separate", _song(tmp_path), "--model", model, "--out", out)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "tmp").glob("pipeline-*")), "temporary files left behind"
    assert not (tmp_path / "store" / "stems").exists() or not any((tmp_path / "store" / "stems").rglob("*.*"))
    assert not out.exists() or not any(out.rglob("*.*"))


def test_interrupted_predict_exits_130(tmp_path):
    from conftest import SAMPLE_ECG

    proc = _run_interrupted(tmp_path, "pipeline.ecg.predict", "predict_prepared", "SIGINT",
                            "predict", SAMPLE_ECG / "JS00007.mat", "--model", "rule", after=1)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: interrupted"]
