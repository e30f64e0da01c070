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
