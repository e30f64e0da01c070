"""Helpers for the end-to-end tests: a real Prefect server and worker on loopback, started as
process groups and stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(method: str, url: str, body: dict | None = None, timeout: float = 30) -> dict | list:
    """One Prefect API call; a 503 (the server answering while still busy starting, seen once on a
    loaded machine) is retried for up to 30 s, anything else raises at once."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read()
            return json.loads(text) if text else {}
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(1)


def start(cmd: list[str], env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
    with open(log, "wb") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group this test started (server/worker and their children), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(20)
            return
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def cli(args: list[str], env: dict, timeout: float = 120) -> str:
    result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def prefect_env(home: Path, api_url: str) -> dict:
    """This process's environment without Prefect/store settings, pointed at ``api_url``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PIPELINE_STORE"))},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # only the runs a test triggers
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
    }


def start_server(env: dict, log: Path, port: int) -> subprocess.Popen:
    """``prefect server start`` on ``port``; returns once ``/api/health`` answers."""
    proc = start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    deadline = time.time() + 120
    while True:
        try:
            api("GET", f"http://127.0.0.1:{port}/api/health", timeout=2)
            return proc
        except (urllib.error.URLError, OSError):
            assert proc.poll() is None, f"server exited:\n{tail(log)}"
            assert time.time() < deadline, f"server not healthy in 120 s:\n{tail(log)}"
            time.sleep(0.5)


def wait_state(api_url: str, flow_run_id: str, types: tuple[str, ...], deadline_s: float, log: Path) -> dict:
    """Poll a flow run until its state type is one of ``types``; returns the state."""
    deadline = time.time() + deadline_s
    while True:
        state = api("GET", f"{api_url}/flow_runs/{flow_run_id}")["state"]
        if state and state["type"] in types:
            return state
        assert time.time() < deadline, f"run not {types} in {deadline_s} s ({state}):\n{tail(log)}"
        time.sleep(1)
