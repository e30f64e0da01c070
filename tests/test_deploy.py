"""Deployment files: prefect.yaml as Prefect reads it, its build and pull steps run by Prefect's own
step runner on this checkout, and the pull step that keeps a worker from running another commit."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CHECK = REPO / "deploy" / "check-checkout.sh"


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _check(cwd: Path, commit: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CHECK), commit], cwd=cwd, capture_output=True, text=True)


def _run_steps(steps: list[dict], outputs: dict) -> dict:
    """Prefect's step functions with Prefect's templating, without its API-bound step runner
    (``run_steps`` resolves blocks and variables on a server)."""
    from prefect.utilities.importtools import import_object
    from prefect.utilities.templating import apply_values

    for step in steps:
        ((name, inputs),) = apply_values(step, outputs).items()
        inputs = dict(inputs)
        step_id = inputs.pop("id", None)
        result = import_object(name)(**inputs)
        outputs[step_id] = asyncio.run(result) if asyncio.iscoroutine(result) else result
    return outputs


def test_prefect_yaml_loads_and_its_steps_pin_the_deployed_commit(monkeypatch):
    pytest.importorskip("prefect", reason="needs the 'flows' extra")
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    console = Console(record=True)
    deployments, actions = _load_deploy_configs_and_actions(REPO / "prefect.yaml", console=console)
    assert "Skipping" not in console.export_text()  # Prefect drops an invalid file with only a warning
    assert {d["name"] for d in deployments} == {"ecg-train", "svs-train", "ecg-predict-batch", "separate-inbox"}
    assert all(Path(REPO, d["entrypoint"].partition(":")[0]).is_file() for d in deployments)

    monkeypatch.chdir(REPO)  # `prefect deploy` runs from the repository root
    outputs = _run_steps(actions["build"], {})
    assert outputs["commit"]["stdout"] == _git(REPO, "rev-parse", "HEAD")
    monkeypatch.chdir("/")  # a worker's working folder is elsewhere; the pull steps move to the checkout
    _run_steps(actions["pull"], outputs)
    assert Path.cwd() == Path(outputs["checkout"]["stdout"]) == Path(_git(REPO, "rev-parse", "--show-toplevel"))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_checkout_check_refuses_another_commit_and_warns_on_local_edits(tmp_path):
    (tmp_path / "flow.py").write_text("v1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "one")
    deployed = _git(tmp_path, "rev-parse", "HEAD")
    assert _check(tmp_path, deployed).returncode == 0

    (tmp_path / "flow.py").write_text("v1 edited\n")
    edited = _check(tmp_path, deployed)
    assert edited.returncode == 0 and "local changes" in edited.stderr

    _git(tmp_path, "commit", "-qam", "two")  # a `git pull` on the worker, no redeploy
    moved = _check(tmp_path, deployed)
    assert moved.returncode == 1 and f"the deployment at {deployed}" in moved.stderr and "deploy" in moved.stderr
