"""End to end through the scheduling path, on loopback, as the README section "Run it on a schedule" describes it.

A real ``prefect server start`` (SQLite in a temporary PREFECT_HOME, a free port), the
``gpu`` process pool, ``prefect deploy --name separate-inbox`` from prefect.yaml, a
``prefect worker start --pool gpu``, one triggered run; then the stems and their manifest
must be in the store, the run's artifacts in Prefect, and ``pipeline stems get`` must fetch
the stems. Everything started here is stopped in ``finally`` (process groups, by pid).
"""

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

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "flows"))

pytest.importorskip("prefect", reason="needs the 'flows' extra")
pytest.importorskip("pipeline.svs.separate", reason="separation library not present")

from flow_helpers import publish_tiny_separator, write_tone  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
RUN_DEADLINE_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(method: str, url: str, body: dict | None = None, timeout: float = 30) -> dict | list:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else {}


def _start(cmd: list[str], env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
    with open(log, "wb") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
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


def _cli(args: list[str], env: dict, timeout: float = 120) -> str:
    result = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def test_separate_inbox_through_server_pool_deployment_and_worker(tmp_path):
    started = time.perf_counter()
    timings = {}
    bin_dir = Path(sys.executable).parent
    prefect = str(bin_dir / "prefect")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    store = tmp_path / "store"
    inbox = tmp_path / "inbox"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PIPELINE_STORE"))},
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # only the run this test triggers
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
    }
    procs: list[subprocess.Popen] = []
    logs = {"server": tmp_path / "server.log", "worker": tmp_path / "worker.log"}
    try:
        procs.append(_start([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env,
                            logs["server"]))
        write_tone(inbox / "first song.wav", seconds=1.5, seed=3)  # while the server boots
        publish_tiny_separator(str(store))
        deadline = time.time() + 120
        while True:
            try:
                _api("GET", f"{api}/health", timeout=2)
                break
            except (urllib.error.URLError, OSError):
                assert procs[0].poll() is None, f"server exited:\n{_tail(logs['server'])}"
                assert time.time() < deadline, f"server not healthy in 120 s:\n{_tail(logs['server'])}"
                time.sleep(0.5)
        timings["server"] = time.perf_counter() - started

        _cli([prefect, "work-pool", "create", "gpu", "--type", "process"], env)
        _api("PATCH", f"{api}/work_pools/gpu", {"concurrency_limit": 1})
        _cli([prefect, "--no-prompt", "deploy", "--name", "separate-inbox"], env)
        deployment = _api("GET", f"{api}/deployments/name/separate-inbox/separate-inbox")
        assert deployment["work_pool_name"] == "gpu"
        assert deployment["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["*/15 * * * *"]
        timings["pool+deploy"] = time.perf_counter() - started

        procs.append(_start([prefect, "worker", "start", "--pool", "gpu", "--limit", "1"], env, logs["worker"]))
        flow_run = _api("POST", f"{api}/deployments/{deployment['id']}/create_flow_run", {
            "parameters": {"inbox": str(inbox), "model": "svs-tiny"},
            "job_variables": {"env": {"PIPELINE_STORE": str(store), "CUDA_VISIBLE_DEVICES": ""}},
        })
        deadline = time.time() + RUN_DEADLINE_S
        while True:
            state = _api("GET", f"{api}/flow_runs/{flow_run['id']}")["state"]
            if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            assert procs[1].poll() is None, f"worker exited:\n{_tail(logs['worker'])}"
            assert time.time() < deadline, f"run not finished in {RUN_DEADLINE_S} s ({state}):\n{_tail(logs['worker'])}"
            time.sleep(1)
        timings["run"] = time.perf_counter() - started
        assert state["type"] == "COMPLETED", f"{state}\n{_tail(logs['worker'])}"

        from pipeline.store import Store

        target = Store.open(store)
        (track,) = target.list_dir("stems")
        (run,) = target.list_runs("stems", track)
        manifest = target.read_manifest("stems", track, run)
        assert manifest["flow_run_id"] == flow_run["id"]
        assert {o["path"] for o in manifest["outputs"]} == {"vocals.flac", "accompaniment.flac"}
        assert target.verify_run("stems", track, run) == []

        artifacts = _api("POST", f"{api}/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
        keys = {a["key"]: a["type"] for a in artifacts if a.get("key")}
        assert {"separate-inbox-metrics", "separate-inbox-report", "separate-inbox-manifest",
                "separate-inbox-progress"} <= set(keys), keys
        assert keys["separate-inbox-metrics"] == "table"

        out = tmp_path / "fetched"
        fetched = _cli([str(bin_dir / "pipeline"), "stems", "get", track, "-o", str(out)],
                       {**env, "PIPELINE_STORE": str(store)}).split()
        assert sorted(Path(p).name for p in fetched) == ["accompaniment.flac", "vocals.flac"]
        from pipeline.store import sha256_file

        expected = {o["path"]: o["sha256"] for o in manifest["outputs"]}
        assert all(sha256_file(out / name) == digest for name, digest in expected.items())
    finally:
        for proc in reversed(procs):
            _stop(proc)
        timings["total"] = time.perf_counter() - started
        print("e2e timings (s, cumulative):", {k: round(v, 1) for k, v in timings.items()})
