"""CLI contract: bad input exits 2 with one ``error:`` line and leaves no stem behind;
``separate`` then ``stems get`` round-trips the bundled sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from svs_util import REPO, SAMPLE_AUDIO, tiny_bundle, one_thread, write_toy_dataset  # noqa: F401

BUNDLED = REPO / "artifacts" / "models" / "svs" / "svs-default" / "latest.json"

pytestmark = pytest.mark.usefixtures("one_thread")


def _tone(sr, seconds=1.0, channels=1, amp=0.3):
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([amp * np.sin(2 * np.pi * (220 + 50 * c) * t) for c in range(channels)], axis=1)


def _make_bad(tmp_path, case):
    path = tmp_path / "in" / "bad.wav"
    path.parent.mkdir(exist_ok=True)
    if case == "empty":
        path.write_bytes(b"")
    elif case == "not_audio":
        path.write_text("RIFF? no. just text\n" * 50)
    elif case == "silence":
        sf.write(path, np.zeros(16000), 16000)
    elif case == "clipping":
        sf.write(path, np.clip(4 * _tone(16000), -1, 1), 16000, subtype="FLOAT")
    elif case == "surround":
        sf.write(path, _tone(48000, channels=6), 48000)
    elif case == "rate_8k":
        sf.write(path, _tone(8000), 8000)
    elif case == "missing":
        path = tmp_path / "in" / "missing.wav"
    return path


def _assert_one_error(result):
    assert result.code == 2, result
    lines = [line for line in result.err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out


@pytest.mark.parametrize("case", ["empty", "not_audio", "silence", "clipping", "surround", "rate_8k", "missing"])
def test_bad_audio_exits_2_and_leaves_nothing(cli, tmp_path, tmp_store, case):
    model = tiny_bundle(tmp_path / "model")
    out = tmp_path / "out"
    result = cli("separate", _make_bad(tmp_path, case), "--model", model, "--out", out)
    _assert_one_error(result)
    assert not (tmp_store / "stems").exists()
    assert not out.exists() or not any(out.rglob("*.flac"))


def test_unwritable_output_folder_exits_2(cli, tmp_path, tmp_store):
    song = tmp_path / "song.wav"
    sf.write(song, _tone(16000), 16000)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = cli("separate", song, "--model", tiny_bundle(tmp_path / "model"), "--out", blocker / "stems")
    _assert_one_error(result)
    assert "not writable" in result.err
    assert not (tmp_store / "stems").exists()


@pytest.mark.parametrize("args", [
    ["stems", "get", "../etc", "-o", "OUT"],
    ["stems", "get", "a/b", "-o", "OUT"],
    ["stems", "get", "track", "--run", "..", "-o", "OUT"],
    ["separate", "SONG", "--model", "svs-default@../x"],
    ["separate", "SONG", "--model", "no/such/folder"],
])
def test_ids_with_dots_or_slashes_exit_2(cli, tmp_path, tmp_store, args):
    song = tmp_path / "song.wav"
    sf.write(song, _tone(16000), 16000)
    args = [str(tmp_path / "out") if a == "OUT" else str(song) if a == "SONG" else a for a in args]
    _assert_one_error(cli(*args))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_module_entry_point_prints_one_line_without_traceback(tmp_path):
    env = {**os.environ, "PIPELINE_STORE": str(tmp_path / "store")}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "separate", str(tmp_path / "nope.wav")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: audio file not found: {tmp_path / 'nope.wav'}"]


@pytest.mark.skipif(not BUNDLED.is_file(), reason="bundled svs-default model not present")
def test_separate_then_stems_get_round_trips_the_bundled_sample(cli, tmp_path, tmp_store):
    result = cli("separate", SAMPLE_AUDIO, "--json", "--out", tmp_path / "copy")
    assert result.code == 0, result.err
    info = json.loads(result.out)
    assert set(info) == {"track_id", "run_id", "stems", "seconds", "sample_rate"}
    assert info["sample_rate"] == 44100 and info["seconds"] == pytest.approx(6.8, abs=0.01)
    listed = json.loads(cli("stems", "list", "--json").out)
    assert [(r["track_id"], r["run_id"]) for r in listed] == [(info["track_id"], info["run_id"])]

    got = cli("stems", "get", info["track_id"], "-o", tmp_path / "got")
    assert got.code == 0, got.err
    mixture, sr = sf.read(SAMPLE_AUDIO)
    vocals, vsr = sf.read(tmp_path / "got" / "vocals.flac")
    accomp, _ = sf.read(tmp_path / "got" / "accompaniment.flac")
    assert vsr == sr == 44100 and vocals.shape == mixture.shape == accomp.shape
    assert np.max(np.abs(vocals + accomp - mixture)) < 1e-5
    assert (tmp_path / "got" / "vocals.flac").read_bytes() == (tmp_path / "copy" / info["track_id"] / "vocals.flac").read_bytes()

    one = cli("stems", "get", info["track_id"], "--run", info["run_id"], "--stem", "vocals", "-o", tmp_path / "one")
    assert one.code == 0 and [p.name for p in (tmp_path / "one").iterdir()] == ["vocals.flac"]
    _assert_one_error(cli("stems", "get", "unknown-track", "-o", tmp_path / "none"))


def test_evaluate_separator_json_has_the_issue_keys(cli, tmp_path):
    data = write_toy_dataset(tmp_path / "data", n_tracks=1, seconds=1.0)
    result = cli("evaluate", "separator", data, "--model", tiny_bundle(tmp_path / "model"), "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    for key in ("gnsdr", "gsir", "gsar"):
        assert set(report[key]) == {"vocals", "accompaniment"}
    assert {"n_tracks", "seconds", "oracle_ibm", "mixture"} <= set(report)
    assert report["threshold"] == 0.35 and report["wiener"] is False and report["input_rms_db"] is None
    soft = cli("evaluate", "separator", data, "--model", tmp_path / "model", "--json", "--threshold", "0", "--wiener",
               "--input-rms-db", "-26")
    assert soft.code == 0, soft.err
    soft = json.loads(soft.out)
    assert soft["threshold"] == 0.0 and soft["wiener"] is True and soft["input_rms_db"] == -26.0
    assert soft["gnsdr"]["vocals"] != report["gnsdr"]["vocals"]
    assert soft["oracle_ibm"] == report["oracle_ibm"]
    silent = cli("evaluate", "separator", data, "--model", tmp_path / "model", "--threshold", "1")
    assert silent.code == 2 and "estimate is silent" in silent.err and "Traceback" not in silent.err


@pytest.mark.parametrize("text, message", [("model: {name: nope}", "invalid"), ("train: {steps: 0}", "invalid"),
                                           ("name: ../evil", "invalid model name")])
def test_train_separator_rejects_bad_configs(cli, tmp_path, tmp_store, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    data = write_toy_dataset(tmp_path / "data", n_tracks=2, seconds=0.5)
    result = cli("train", "separator", "--config", config, "--data", data)
    _assert_one_error(result)
    assert message in result.err
