"""Running unattended: retries only for transient errors, alerts, missing inputs fail loudly,
no orphan run folders, the crash-recovery automation, the device a training run uses."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.logging import disable_run_logger

from flows._common import config_data, ecg_sources, training_device
from flows.tasks import IO_RETRIES, publish_report, sweep_incomplete
from flow_helpers import REPO, artifacts_of
from pipeline.config import EcgConfig
from pipeline.errors import UserError
from pipeline.store import Store

ATTEMPTS: list[str] = []


@task(**{**IO_RETRIES, "retry_delay_seconds": 0})
def failing(kind: str) -> None:
    ATTEMPTS.append(kind)
    if kind == "store":  # the store words an I/O failure for people: still worth a retry
        raise UserError("cannot write the run") from OSError("connection reset")
    raise (UserError if kind == "user" else OSError)(f"{kind} error")


@flow
def run_failing(kind: str) -> None:
    failing(kind)


@pytest.mark.parametrize("kind, attempts", [("user", 1), ("io", 4), ("store", 4)])
def test_only_transient_errors_are_retried(kind, attempts):
    ATTEMPTS.clear()
    assert run_failing(kind, return_state=True).is_failed()
    assert ATTEMPTS == [kind] * attempts


def test_config_data_is_relative_to_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a worker's working folder is not the checkout
    assert config_data(None, "samples/ecg") == str(REPO / "samples" / "ecg")
    assert ecg_sources(None, EcgConfig(data=["samples/ecg", "s3://bucket/ecg"])) == [
        str(REPO / "samples" / "ecg"), "s3://bucket/ecg"]
    with pytest.raises(UserError, match="repository root"):
        config_data(None, "../no/such/data", "svs-default.yaml")
    with pytest.raises(UserError, match="repository root"):
        ecg_sources(None, EcgConfig(data=["samples/ecg", "../no/such/data"]), "ecg-default.yaml")
    with pytest.raises(UserError, match="does not exist"):
        config_data(str(tmp_path / "missing"), None)
    assert config_data("s3://bucket/ecg", None) == "s3://bucket/ecg"  # remote: checked when read


@pytest.fixture
def webhook(monkeypatch):
    """A local HTTP endpoint set as ``PIPELINE_ALERT_WEBHOOK``; yields the list of received bodies."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PIPELINE_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    yield received
    server.shutdown()


def test_missing_inbox_fails_once_and_alerts(tmp_path, store_root, webhook):
    from flows.ecg_predict_batch import ecg_predict_batch

    state = ecg_predict_batch(inbox=str(tmp_path / "no-inbox"), model="rule", store=store_root, return_state=True)
    assert state.is_failed() and "does not exist" in state.message
    flow_run_id = state.state_details.flow_run_id
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert [r.run_count for r in runs if r.name.startswith("list-inbox")] == [1]  # a UserError: no retries
    assert "ecg-predict-batch-alert" in {a.key for a in artifacts_of(flow_run_id)}
    assert len(webhook) == 1 and "Failed" in webhook[0]["text"] and "no-inbox" in webhook[0]["text"]


def test_failed_publish_leaves_no_orphan_and_retries_with_the_same_run_id(store_root, monkeypatch):
    calls = []
    original = Store.put_file

    def flaky(self, source, *parts):
        calls.append(parts)
        if len(calls) == 1:
            raise OSError("connection reset")
        return original(self, source, *parts)

    monkeypatch.setattr(Store, "put_file", flaky)
    with pytest.raises(UserError, match="connection reset") as failure:  # one line for people ...
        publish_report.fn(store_root, ("reports", "t"), {"report.md": "x"}, run_id="run-1")
    assert isinstance(failure.value.__cause__, OSError)  # ... and still retried by `transient`
    assert not (Path(store_root) / "reports" / "t" / "run-1").exists()
    uri = publish_report.fn(store_root, ("reports", "t"), {"report.md": "x"}, run_id="run-1")
    assert publish_report.fn(store_root, ("reports", "t"), {"report.md": "y"}, run_id="run-1") == uri
    assert (Path(uri) / "report.md").read_text() == "x"


def test_sweep_removes_run_folders_without_manifest(store_root):
    store = Store.open(store_root)
    store.claim_run("reports", "t", "dead-run")  # a writer that died before its manifest
    store.publish_run(("reports", "t", "good-run"), {}, kind="report")
    with disable_run_logger():
        removed = sweep_incomplete.fn(store_root, [("reports", "t"), ("reports", "none")], older_than_s=0)
    assert [r.rsplit("/", 1)[-1] for r in removed] == ["dead-run"]
    assert store.list_runs("reports", "t") == ["good-run"]


def test_crash_recovery_automation_is_created_once():
    from prefect.client.orchestration import get_client

    from flows.automations import ZOMBIES, setup

    from typer.testing import CliRunner

    from pipeline.cli import app

    assert setup(within_s=90) == [ZOMBIES]
    result = CliRunner().invoke(app, ["flow", "setup", "--within", "120"])  # replaces it
    assert result.exit_code == 0 and f"automation {ZOMBIES}: created" in result.stdout, result.output
    with get_client(sync_client=True) as client:
        (automation,) = client.read_automations_by_name(ZOMBIES)
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.within.total_seconds() == 120
    assert trigger.after == {"prefect.flow-run.heartbeat"} and "prefect.flow-run.Completed" in trigger.expect
    assert automation.actions[0].state == "CRASHED"


def test_notification_automation_uses_a_block():
    from prefect.blocks.notifications import SlackWebhook
    from prefect.client.orchestration import get_client

    from flows.automations import NOTIFY, setup

    SlackWebhook(url="https://hooks.slack.com/services/T0/B0/not-a-real-token").save("ops-alerts", overwrite=True)
    assert NOTIFY in setup(notify_block="slack-webhook/ops-alerts")
    with get_client(sync_client=True) as client:
        (automation,) = client.read_automations_by_name(NOTIFY)
    assert "pipeline.alert" in automation.trigger.expect and automation.actions[0].type == "send-notification"


def test_training_device_is_reported_and_cuda_can_be_required(monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert training_device("auto", True)["device"].startswith("cuda")
        return
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the gpu pool's job variable
    info = training_device("auto", False)
    assert info["device"] == "cpu" and info["gpu"] is None and "fell back to the CPU" in info["warning"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "warning" not in training_device("auto", False)
    with pytest.raises(UserError, match="require_cuda"):
        training_device("auto", True)
