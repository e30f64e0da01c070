"""Crash recovery through a real server and worker on loopback: a run whose worker and flow
process are killed (a lost GPU host) is marked ``Crashed`` by the heartbeat automation that
``pipeline flow setup`` creates, and the next run on the ``gpu`` pool (limit 1) completes
without anyone cancelling the dead run. Everything started here is stopped by pid.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "flows"))

pytest.importorskip("prefect", reason="needs the 'flows' extra")

from e2e_helpers import BIN, api, cli, free_port, prefect_env, start, start_server, stop, wait_state  # noqa: E402
from flow_helpers import write_tone  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(500)]
WITHIN_S = 45  # heartbeats every 30 s (Prefect's minimum)
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _kill_run(api_url: str, flow_run_id: str, worker) -> None:
    """SIGKILL the flow process (its pid is recorded on the run) and the worker's process group."""
    pid = api("GET", f"{api_url}/flow_runs/{flow_run_id}").get("infrastructure_pid") or ""
    if pid.rpartition(":")[2].isdigit():
        try:
            os.kill(int(pid.rpartition(":")[2]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)


def test_killed_gpu_run_is_crashed_and_frees_the_pool(tmp_path):
    prefect = str(BIN / "prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(tmp_path / "prefect-home", api_url)
    inbox = tmp_path / "inbox"
    write_tone(inbox / "song.wav", seconds=0.5)
    run_env = {"PIPELINE_STORE": str(tmp_path / "store"), "CUDA_VISIBLE_DEVICES": "",
               "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests' / 'flows'}", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    logs = {name: tmp_path / f"{name}.log" for name in ("server", "worker1", "worker2")}
    procs = []
    try:
        procs.append(start_server(env, logs["server"], port))
        cli([prefect, "work-pool", "create", "gpu", "--type", "process"], env)
        api("PATCH", f"{api_url}/work_pools/gpu", {"concurrency_limit": 1})
        cli([prefect, "--no-prompt", "deploy", "--name", "separate-inbox"], env)
        assert "crash-silent-runs" in cli([str(BIN / "pipeline"), "flow", "setup", "--within", str(WITHIN_S)], env)
        deployment = api("GET", f"{api_url}/deployments/name/separate-inbox/separate-inbox")

        def trigger(sleep_s: int) -> str:
            return api("POST", f"{api_url}/deployments/{deployment['id']}/create_flow_run", {
                "parameters": {"inbox": str(inbox), "separator": "flow_fakes:slow_separate"},
                "job_variables": {"env": {**run_env, "FAKE_SEPARATE_SLEEP_S": str(sleep_s)}}})["id"]

        worker = start([prefect, "worker", "start", "--pool", "gpu"], env, logs["worker1"])
        procs.append(worker)
        doomed = trigger(600)
        wait_state(api_url, doomed, ("RUNNING",), 180, logs["worker1"])
        time.sleep(5)  # the first heartbeat goes out as the run starts
        _kill_run(api_url, doomed, worker)
        started = time.time()
        state = wait_state(api_url, doomed, FINAL, WITHIN_S + 90, logs["worker1"])
        assert state["type"] == "CRASHED" and "heartbeat" in state["message"], state
        print(f"marked Crashed {time.time() - started:.0f} s after the kill")

        procs.append(start([prefect, "worker", "start", "--pool", "gpu"], env, logs["worker2"]))
        following = trigger(0)
        state = wait_state(api_url, following, FINAL, 180, logs["worker2"])
        assert state["type"] == "COMPLETED", state
    finally:
        for proc in reversed(procs):
            stop(proc)
