"""End to end through the scheduling path, on loopback, as the README section "Run it on a schedule" describes it.

A real ``prefect server start`` (SQLite in a temporary PREFECT_HOME, a free port), the
``gpu`` process pool, ``prefect deploy --name separate-inbox`` from prefect.yaml, a
``prefect worker start --pool gpu``, one triggered run; then the stems and their manifest
must be in the store, the run's artifacts in Prefect, and ``pipeline stems get`` must fetch
the stems. Everything started here is stopped in ``finally`` (process groups, by pid).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "flows"))

pytest.importorskip("prefect", reason="needs the 'flows' extra")
pytest.importorskip("pipeline.svs.separate", reason="separation library not present")

from e2e_helpers import BIN, api, cli, free_port, prefect_env, start, start_server, stop, tail, wait_state  # noqa: E402
from flow_helpers import publish_tiny_separator, write_tone  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
RUN_DEADLINE_S = 240


def test_separate_inbox_through_server_pool_deployment_and_worker(tmp_path):
    started = time.perf_counter()
    timings = {}
    prefect = str(BIN / "prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    store = tmp_path / "store"
    inbox = tmp_path / "inbox"
    env = prefect_env(tmp_path / "prefect-home", api_url)
    procs = []
    logs = {"server": tmp_path / "server.log", "worker": tmp_path / "worker.log"}
    try:
        write_tone(inbox / "first song.wav", seconds=1.5, seed=3)
        publish_tiny_separator(str(store))
        procs.append(start_server(env, logs["server"], port))
        timings["server"] = time.perf_counter() - started

        cli([prefect, "work-pool", "create", "gpu", "--type", "process"], env)
        api("PATCH", f"{api_url}/work_pools/gpu", {"concurrency_limit": 1})
        cli([prefect, "--no-prompt", "deploy", "--name", "separate-inbox"], env)
        deployment = api("GET", f"{api_url}/deployments/name/separate-inbox/separate-inbox")
        assert deployment["work_pool_name"] == "gpu"
        assert deployment["job_variables"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["*/15 * * * *"]
        timings["pool+deploy"] = time.perf_counter() - started

        procs.append(start([prefect, "worker", "start", "--pool", "gpu", "--limit", "1"], env, logs["worker"]))
        flow_run = api("POST", f"{api_url}/deployments/{deployment['id']}/create_flow_run", {
            "parameters": {"inbox": str(inbox), "model": "svs-tiny"},
            "job_variables": {"env": {"PIPELINE_STORE": str(store), "CUDA_VISIBLE_DEVICES": ""}},
        })
        state = wait_state(api_url, flow_run["id"], ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"), RUN_DEADLINE_S,
                           logs["worker"])
        timings["run"] = time.perf_counter() - started
        assert state["type"] == "COMPLETED", f"{state}\n{tail(logs['worker'])}"

        from pipeline.store import Store

        target = Store.open(store)
        (track,) = target.list_dir("stems")
        (run,) = target.list_runs("stems", track)
        manifest = target.read_manifest("stems", track, run)
        assert manifest["flow_run_id"] == flow_run["id"]
        assert {o["path"] for o in manifest["outputs"]} == {"vocals.flac", "accompaniment.flac"}
        assert target.verify_run("stems", track, run) == []

        artifacts = api("POST", f"{api_url}/artifacts/filter",
                         {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}})
        keys = {a["key"]: a["type"] for a in artifacts if a.get("key")}
        assert {"separate-inbox-metrics", "separate-inbox-report", "separate-inbox-manifest",
                "separate-inbox-progress"} <= set(keys), keys
        assert keys["separate-inbox-metrics"] == "table"

        out = tmp_path / "fetched"
        fetched = cli([str(BIN / "pipeline"), "stems", "get", track, "-o", str(out)],
                       {**env, "PIPELINE_STORE": str(store)}).split()
        assert sorted(Path(p).name for p in fetched) == ["accompaniment.flac", "vocals.flac"]
        from pipeline.store import sha256_file

        expected = {o["path"]: o["sha256"] for o in manifest["outputs"]}
        assert all(sha256_file(out / name) == digest for name, digest in expected.items())
    finally:
        for proc in reversed(procs):
            stop(proc)
        timings["total"] = time.perf_counter() - started
        print("e2e timings (s, cumulative):", {k: round(v, 1) for k, v in timings.items()})
