"""The flows end to end on tiny inputs, under the session's Prefect test harness."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.store import Store
from flow_helpers import REPO, artifacts_of, publish_tiny_separator, tiny_svs_config, write_tone

SAMPLES = REPO / "samples" / "ecg"


def _keys(flow_run_id) -> dict[str, str]:
    """Artifact key -> type; link artifacts are stored as markdown, so "link" when it links a manifest."""
    found = {}
    for artifact in artifacts_of(flow_run_id):
        if artifact.key:
            is_link = artifact.key.endswith("-manifest") and "manifest.json](" in str(artifact.data)
            found[artifact.key] = "link" if is_link else artifact.type
    return found


def test_ecg_train_publishes_model_report_and_ui_artifacts(rule_config, store_root):
    from flows.ecg_train import ecg_train

    state = ecg_train(config=rule_config, store=store_root, return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    store = Store.open(store_root)
    run_id = summary["model_run_id"]
    assert store.latest("models", "ecg", "ecg-flowtest") == run_id
    assert store.verify_run("models", "ecg", "ecg-flowtest", run_id) == []
    assert summary["device"]["device"] in ("cpu", "cuda", "cuda:0")
    assert summary["cross_validation"]["rule_accuracy"] == pytest.approx(summary["rule_baseline"]["accuracy"], abs=0.5)
    report_run = summary["report_uri"].rsplit("/", 1)[-1]
    report = store.read_manifest("reports", "ecg-train", report_run)
    assert report["device"] == summary["device"]
    assert report["model_uri"] == summary["model_uri"] and report["flow_run_id"] == str(state.state_details.flow_run_id)
    assert "Confusion" in (Path(summary["report_uri"]) / "report.md").read_text()
    dataset = store.read_manifest(*Path(summary["dataset_uris"][0]).relative_to(store_root).parts)
    assert dataset["metrics"]["n_files"] == 24  # 12 records: .hea + .mat
    feature_dirs = [p for p in (Path(store_root) / "features" / "ecg").iterdir() if p.is_dir()]
    assert len(feature_dirs) == 1 and len(list(feature_dirs[0].glob("*.npz"))) == 12
    keys = _keys(state.state_details.flow_run_id)
    assert keys == {"ecg-train-metrics": "table", "ecg-train-report": "markdown",
                    "ecg-train-manifest": "link", "ecg-train-progress": "progress"}


def test_ecg_train_takes_the_config_data_list_and_its_holdout(tmp_path, store_root, monkeypatch):
    """As ``pipeline train ecg``: every folder of the config's ``data`` (relative to the repository
    root), the ``holdout`` records never prepared for training, and scored once with ``test``."""
    from flows.ecg_train import ecg_train

    names = sorted(p.stem for p in SAMPLES.glob("*.hea"))
    folders = [tmp_path / "first", tmp_path / "second"]
    for i, name in enumerate(names):
        folders[i % 2].mkdir(exist_ok=True)
        shutil.copy(SAMPLES / f"{name}.hea", folders[i % 2])
        shutil.copy(SAMPLES / f"{name}.mat", folders[i % 2])
    (tmp_path / "holdout.txt").write_text("\n".join(names[:2]) + "\n")  # one from each folder
    config = tmp_path / "ecg-list.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ecg-listtest", "data": [os.path.relpath(f, REPO) for f in folders],
        "holdout": str(tmp_path / "holdout.txt"), "model": {"name": "rule"}, "train": {"folds": 2}}))
    monkeypatch.chdir(tmp_path)  # a worker's working folder is not the checkout

    summary = ecg_train(config=str(config), store=store_root, test=True)
    assert len(summary["dataset_uris"]) == 2
    metrics = json.loads((Path(summary["model_uri"]) / "metrics.json").read_text())
    assert [Path(d).resolve() for d in metrics["data"]] == folders
    assert metrics["holdout"]["n_excluded"] == 2 and metrics["n_records"] == 10
    assert summary["evaluation"]["n_records"] == metrics["internal_test"]["n_records"] == 2
    report = (Path(summary["report_uri"]) / "report.md").read_text()
    cache = Path(report.split("* feature cache: `", 1)[1].split("`", 1)[0])  # the folder the records are in
    assert len(list(cache.glob("*.npz"))) == len(list(cache.parents[1].rglob("*.npz"))) == 10  # holdout never prepared


def test_ecg_predict_batch_only_classifies_new_records(tmp_path, store_root):
    from flows.ecg_predict_batch import ecg_predict_batch

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = ["JS00007", "JS00008", "JS00012"]
    for name in names[:2]:
        for suffix in (".hea", ".mat"):
            shutil.copy(SAMPLES / f"{name}{suffix}", inbox)
    first = ecg_predict_batch(inbox=str(inbox), model="rule", store=store_root)
    assert first["n_new"] == 2
    with open(Path(first["uri"]) / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["record"] for r in rows] == names[:2] and all(r["label"] for r in rows)
    assert ecg_predict_batch(inbox=str(inbox), model="rule", store=store_root)["n_new"] == 0
    for suffix in (".hea", ".mat"):
        shutil.copy(SAMPLES / f"{names[2]}{suffix}", inbox)
    (inbox / "broken.hea").write_text("not a WFDB header\n")  # must not block the good record
    state = ecg_predict_batch(inbox=str(inbox), model="rule", store=store_root, return_state=True)
    third = state.result()
    assert third["n_new"] == 2 and third["n_seen"] == 4 and third["n_failed"] == 1
    manifest = Store.open(store_root).read_manifest("predictions", "ecg", third["uri"].rsplit("/", 1)[-1])
    inputs = {i["record"]: i for i in manifest["inputs"]}
    assert sorted(inputs) == [names[2], "broken"] and manifest["model_spec"] == "rule"
    assert "error" in inputs["broken"] and "error" not in inputs[names[2]]
    assert ecg_predict_batch(inbox=str(inbox), model="rule", store=store_root)["n_new"] == 0  # not retried
    with open(Path(third["uri"]) / "predictions.csv", newline="") as handle:
        assert [r["record"] for r in csv.DictReader(handle)] == [names[2]]
    keys = _keys(state.state_details.flow_run_id)
    assert keys["ecg-predict-batch-metrics"] == "table" and keys["ecg-predict-batch-alert"] == "markdown"


def test_separate_inbox_writes_stems_and_skips_done_files(tmp_path, store_root, tiny_separator):
    from flows.separate_inbox import separate_inbox

    inbox = tmp_path / "inbox"
    write_tone(inbox / "song one.wav", seed=1)
    write_tone(inbox / "song-two.flac", seed=2)
    state = separate_inbox(inbox=str(inbox), model=tiny_separator, store=store_root, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert len(result["separated"]) == 2 and not result["skipped"] and not result["failed"]
    store = Store.open(store_root)
    for item in result["separated"]:
        manifest = store.read_manifest("stems", item["track_id"], item["run_id"])
        assert {o["path"] for o in manifest["outputs"]} == {"vocals.flac", "accompaniment.flac"}
        assert manifest["flow_run_id"] is not None
        assert store.verify_run("stems", item["track_id"], item["run_id"]) == []
    assert _keys(state.state_details.flow_run_id) == {
        "separate-inbox-metrics": "table", "separate-inbox-report": "markdown",
        "separate-inbox-manifest": "link", "separate-inbox-progress": "progress"}
    again = separate_inbox(inbox=str(inbox), model=tiny_separator, store=store_root)
    assert not again["separated"] and len(again["skipped"]) == 2 and again["report_uri"] is None
    publish_tiny_separator(store_root, tiny_separator)  # a new run of the model becomes latest
    newer = separate_inbox(inbox=str(inbox), model=tiny_separator, store=store_root)
    assert len(newer["separated"]) == 2 and {s["run_id"] for s in newer["separated"]} != {
        s["run_id"] for s in result["separated"]}


def test_separate_inbox_accepts_an_injected_separator(tmp_path, store_root):
    """Dependency injection: any ``module:function`` with separate_file's signature."""
    from flows.separate_inbox import separate_inbox

    inbox = tmp_path / "inbox"
    write_tone(inbox / "a.wav")
    result = separate_inbox(inbox=str(inbox), store=store_root, separator="flow_fakes:fake_separate")
    (item,) = result["separated"]
    assert item["track_id"].startswith("a-") and item["run_id"] == "fake-model-run"
    assert Store.open(store_root).read_manifest("stems", item["track_id"], "fake-model-run")["kind"] == "fake-stems"


@pytest.mark.slow
def test_svs_train_on_synthetic_mir1k_clips(tmp_path, store_root, monkeypatch):
    pytest.importorskip("pipeline.svs.train", reason="separation library not present")
    monkeypatch.setenv("PIPELINE_WORK", str(tmp_path / "work"))  # training checkpoints stay in tmp_path
    from flows.svs_train import svs_train

    data = tmp_path / "mir1k"
    for song in (1, 2, 3):
        for clip in (1, 2):
            write_tone(data / f"abjones_{song}_{clip:02d}.wav", seconds=1.0, seed=song * 10 + clip, stereo=True)
    config = tmp_path / "svs-tiny.yaml"
    config.write_text(json.dumps(tiny_svs_config().model_dump(mode="json")))  # JSON is YAML
    state = svs_train(config=str(config), data=str(data), store=store_root, return_state=True)
    assert state.is_completed(), state
    summary = state.result()
    store = Store.open(store_root)
    assert store.latest("models", "svs", "svs-tiny") == summary["model_run_id"]
    assert "gnsdr_vocals" in summary["evaluation"]
    assert set(_keys(state.state_details.flow_run_id)) == {
        "svs-train-metrics", "svs-train-report", "svs-train-manifest", "svs-train-progress"}


def test_pipeline_flow_run_command(rule_config, store_root):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["flow", "run", "ecg-features", "--config", rule_config,
                                 "--param", f"store={store_root}", "--param", "max_workers=1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["n_records"] == 12 and summary["n_usable"] == 12
    bad = runner.invoke(app, ["flow", "run", "ecg-features", "--param", "nope=1"])
    assert bad.exit_code != 0 and "no parameter nope" in str(bad.exception)
    bad = runner.invoke(app, ["flow", "run", "separate-inbox", "--config", rule_config])
    assert bad.exit_code != 0 and "no parameter config" in str(bad.exception)


def test_scalograms_on_a_dask_cluster(rule_config, store_root):
    """The mapped scalogram step on prefect-dask: same cache as the thread pool.

    An in-process cluster keeps the test fast; ``task_runner="dask"`` starts worker
    processes the same way (``make_task_runner`` is checked in test_tasks.py).
    """
    from prefect_dask import DaskTaskRunner

    from flows.features import scalograms
    from pipeline.ecg.prepare import find_records

    runner = DaskTaskRunner(cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 2,
                                            "dashboard_address": None})
    records = [str(p) for p in find_records(SAMPLES)][:4]
    summary = scalograms.with_options(task_runner=runner)(rule_config, records, store_root)
    assert summary["n_usable"] == 4
    assert len(list((Path(store_root) / "features" / "ecg").rglob("*.npz"))) == 4


def test_scalograms_upload_to_a_remote_store(rule_config, tmp_path, monkeypatch):
    """With a remote store each mapped task uploads its record's entry, which training on another
    machine downloads (tests/test_prepare.py) instead of computing it again."""
    import tempfile

    from flows.features import scalograms
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.feature_store import store_folder
    from pipeline.ecg.prepare import find_records

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this machine's local cache
    store = Store.open(f"memory://scalograms-{tmp_path.name}")
    folder = store_folder(load_config(rule_config, EcgConfig))
    summary = scalograms(rule_config, [str(p) for p in find_records(SAMPLES)][:4], store.root)
    assert summary["n_usable"] == 4 and summary["cache_dir"] == store.uri(*folder)
    assert len(store.list_entries(*folder)[1]) == 4
