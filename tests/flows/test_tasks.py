"""Task bodies and helpers, called through ``.fn`` (no engine, no server round trips)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows._common import make_task_runner, resolve_config
from flows.tasks import (
    artifact_key,
    confusion_markdown,
    evaluate_ecg_task,
    ingest_dataset,
    list_inbox,
    load_callable,
    localize,
    markdown_table,
    predictions_csv,
    safe_id,
)
from pipeline.errors import UserError
from pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]


def test_artifact_keys_are_lowercase_dashes():
    assert artifact_key("ecg_train", "Metrics") == "ecg-train-metrics"
    assert artifact_key("separate-inbox", "progress") == "separate-inbox-progress"


def test_safe_id_and_load_callable():
    assert safe_id("My Song (live).wav") == "My-Song-live"
    assert safe_id("///") .startswith("track-")
    assert load_callable("flows.tasks:safe_id") is safe_id
    with pytest.raises(ValueError):
        load_callable("no-colon")


def test_list_inbox_skips_hidden_and_partial_files(tmp_path):
    for name in ("b.wav", "a.FLAC", ".hidden.wav", "c.wav.part", "notes.txt", "sub/d.mp3"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = list_inbox.fn(str(tmp_path), (".wav", ".flac", ".mp3"))
    assert [Path(p).name for p in found] == ["a.FLAC", "b.wav", "d.mp3"]
    with pytest.raises(UserError, match="does not exist"):
        list_inbox.fn(str(tmp_path / "missing"), (".wav",))


def test_localize_copies_remote_files_and_folders(tmp_path, monkeypatch):
    import tempfile

    import fsspec

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # download cache under tmp_path
    (tmp_path / "tmp").mkdir()
    memory = fsspec.filesystem("memory")
    for name in ("inbox-test/song.wav", "inbox-test/sub/b.hea"):
        memory.pipe(f"/{name}", b"RIFF")
    local = localize.fn("memory://inbox-test/song.wav")
    assert Path(local).read_bytes() == b"RIFF" and Path(local).name == "song.wav"
    assert Path(local).is_relative_to(tmp_path)
    folder = Path(localize.fn("memory://inbox-test"))
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "song.wav", "sub/b.hea"]
    assert localize.fn(str(tmp_path)) == str(tmp_path)
    memory.rm("/inbox-test", recursive=True)


def test_ingest_dataset_is_content_addressed(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "r1.hea").write_text("header")
    (data / "r1.mat").write_bytes(b"\x00\x01")
    store = str(tmp_path / "store")
    first = ingest_dataset.fn(str(data), "ecg-test", store)
    again = ingest_dataset.fn(str(data), "ecg-test", store)
    assert first["version"] == again["version"] and not first["reused"] and again["reused"]
    manifest = Store.open(store).read_manifest("datasets", "ecg-test", first["version"])
    assert manifest["metrics"]["n_files"] == 2
    listing = json.loads((Path(store) / "datasets" / "ecg-test" / first["version"] / "checksums.json").read_text())
    assert {e["path"] for e in listing} == {"r1.hea", "r1.mat"}
    (data / "r1.mat").write_bytes(b"\x00\x02")
    assert ingest_dataset.fn(str(data), "ecg-test", store)["version"] != first["version"]
    with pytest.raises(UserError):
        ingest_dataset.fn(str(tmp_path / "missing"), "x", store)


def test_evaluate_task_draws_no_progress_bar_in_worker_logs(capsys):
    report = evaluate_ecg_task.fn(str(REPO / "samples" / "ecg"), "rule", {"JS00007"})
    assert report["n_records"] == 11  # the excluded (holdout) record is left out
    assert "prepare records" not in capsys.readouterr().err


def test_markdown_helpers():
    table = markdown_table(["a", "b"], [[1, 0.12345], ["x|y", None]])
    assert table.splitlines()[2] == "| 1 | 0.123 |"
    assert "x\\|y" in table
    assert confusion_markdown([[2, 0], [1, 3]], ["SB", "SR"]).splitlines()[3] == "| SR | 1 | 3 |"
    csv_text = predictions_csv([{"record": "/x/r1", "label": "SB", "probabilities": {"SB": 0.9, "SR": 0.1},
                                 "model": "rule"}], {"/x/r1": "ab"})
    assert csv_text.splitlines() == ["record,label,p_SB,p_SR,model,sha256", "r1,SB,0.9,0.1,rule,ab"]


def test_task_runner_choice():
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(make_task_runner("threads", 3), ThreadPoolTaskRunner)
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner("dask"), DaskTaskRunner)
    assert isinstance(make_task_runner("tcp://127.0.0.1:8786"), DaskTaskRunner)
    with pytest.raises(UserError):
        make_task_runner("ray")


def test_resolve_config_falls_back_to_repo_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("configs/ecg/ecg-default.yaml") == str(REPO / "configs" / "ecg" / "ecg-default.yaml")
    with pytest.raises(UserError):
        resolve_config("configs/nope.yaml")


def test_cli_never_imports_prefect():
    code = "import sys, pipeline.cli; sys.exit(1 if 'prefect' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0
