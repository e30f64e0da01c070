"""`pipeline models retune`: new inference defaults are a new run of the same weights."""

from __future__ import annotations

import json

import pytest

from tests.svs_util import SAMPLE_AUDIO


@pytest.fixture()
def store_with_bundled_separator(tmp_path, monkeypatch):
    import shutil

    from pipeline.svs.bundle import BUNDLED_STORE

    root = tmp_path / "store"
    shutil.copytree(BUNDLED_STORE / "models" / "svs", root / "models" / "svs")
    monkeypatch.setenv("PIPELINE_STORE", str(root))
    return root


def test_retune_publishes_the_same_weights_with_new_defaults(cli, store_with_bundled_separator):
    from pipeline.store import Store

    store = Store.open(store_with_bundled_separator)
    parent = store.latest("models", "svs", "svs-default")
    before = json.loads(cli("separate", SAMPLE_AUDIO, "--json").out)
    done = cli("models", "retune", "svs-default", "--threshold", "0.2", "--input-rms-db", "-26")
    assert done.code == 0, done.err
    new = done.out.strip()
    assert store.latest("models", "svs", "svs-default") == new != parent
    assert store.verify_run("models", "svs", "svs-default", new) == []
    manifest = store.read_manifest("models", "svs", "svs-default", new)
    assert manifest["derived_from"] == parent and manifest["metrics"] == {}
    assert manifest["config"]["ibm"]["threshold"] == 0.2 and manifest["config"]["separate"]["input_rms_db"] == -26
    old, fresh = (store.read_manifest("models", "svs", "svs-default", r) for r in (parent, new))
    weights = {o["path"]: o["sha256"] for o in old["outputs"]}
    assert {o["path"]: o["sha256"] for o in fresh["outputs"]}["model.onnx"] == weights["model.onnx"]
    after = json.loads(cli("separate", SAMPLE_AUDIO, "--json").out)
    assert after["run_id"] == new and after["stems"] != before["stems"]  # the new defaults, not the old stems
    stems = store.read_manifest("stems", after["track_id"], new)
    assert stems["config"]["threshold"] == 0.2 and stems["config"]["input_rms_db"] == -26


def test_retune_needs_a_change_and_an_existing_model(cli, store_with_bundled_separator):
    nothing = cli("models", "retune", "svs-default")
    assert nothing.code == 2 and nothing.err.startswith("error: nothing to change")
    missing = cli("models", "retune", "no-such-model", "--threshold", "0.3")
    assert missing.code == 2 and "no separator no-such-model" in missing.err
