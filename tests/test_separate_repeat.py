"""Separating the same file with the same model twice reuses the immutable run."""

from __future__ import annotations

import json

from tests.svs_util import SAMPLE_AUDIO


def test_second_separation_reuses_the_run_and_still_fills_out_dir(cli, tmp_path, tmp_store):
    first = cli("separate", SAMPLE_AUDIO, "--json")
    assert first.code == 0, first.err
    again = cli("separate", SAMPLE_AUDIO, "--json", "--out", tmp_path / "out")
    assert again.code == 0, again.err
    a, b = json.loads(first.out), json.loads(again.out)
    assert (a["track_id"], a["run_id"], a["stems"]) == (b["track_id"], b["run_id"], b["stems"])
    copied = sorted(p.name for p in (tmp_path / "out" / a["track_id"]).iterdir())
    assert copied == ["accompaniment.flac", "vocals.flac"]


def test_other_settings_get_their_own_stems_not_the_earlier_ones(cli, tmp_store):
    default = json.loads(cli("separate", SAMPLE_AUDIO, "--json").out)
    lower = cli("separate", SAMPLE_AUDIO, "--json", "--threshold", "0.05")
    assert lower.code == 0, lower.err
    other = json.loads(lower.out)
    assert other["track_id"] == default["track_id"]
    assert other["run_id"].startswith(default["run_id"] + "-")
    from pipeline.store import Store

    manifest = Store.open(tmp_store).read_manifest("stems", other["track_id"], other["run_id"])
    assert manifest["config"]["threshold"] == 0.05
    again = json.loads(cli("separate", SAMPLE_AUDIO, "--json", "--threshold", "0.05").out)
    assert again["run_id"] == other["run_id"]
    assert sorted(Store.open(tmp_store).list_runs("stems", other["track_id"])) == sorted([default["run_id"], other["run_id"]])
