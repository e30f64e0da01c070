"""Training (publish, resume), evaluation report, and file separation through the public API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from pipeline.store import Store
from svs_util import tiny_bundle, tiny_config, toy_stems, write_toy_dataset, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_publishes_a_self_describing_run_and_resumes(tmp_path, monkeypatch, caplog):
    from pipeline.svs.train import train_separator

    caplog.set_level("INFO", logger="pipeline.svs.train")  # progress=False (flows): lines go to the log

    data = write_toy_dataset(tmp_path / "data", n_tracks=4, seconds=1.0)
    store = Store.open(tmp_path / "store")
    cfg = tiny_config(loss_weight_power=0.5)  # the default's weighted cross-entropy
    work = tmp_path / "work"

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash after training")

    monkeypatch.setattr("pipeline.svs.evaluate.evaluate_tracks", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        train_separator(cfg, data, store=store, progress=False, work_dir=work)
    assert (work / "checkpoint.pt").is_file()
    assert any(r.getMessage().startswith("step ") for r in caplog.records if r.name == "pipeline.svs.train")
    monkeypatch.undo()

    lines = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    result = train_separator(cfg, data, store=store, progress=True, work_dir=work)
    monkeypatch.undo()
    assert any("resumed" in line for line in lines)
    assert not (work / "checkpoint.pt").exists()
    assert set(result) >= {"uri", "run_id", "metrics"}
    assert store.latest("models", "svs", "svs-tiny") == result["run_id"]
    manifest = store.read_manifest("models", "svs", "svs-tiny", result["run_id"])
    names = {o["path"] for o in manifest["outputs"]}
    assert {"model.json", "model.pt", "model.onnx", "MODEL_CARD.md", "config.yaml", "eval_report.json"} <= names
    meta = json.loads(open(store.path("models", "svs", "svs-tiny", result["run_id"], "model.json")).read())
    assert meta["config"]["stft"]["n_fft"] == 256 and meta["split"]["test"]
    assert not set(meta["split"]["test"]) & set(meta["split"]["train"])
    assert "gnsdr_vocals" in result["metrics"]
    assert manifest["device"] == {"device": meta["device"], "gpu": meta["gpu"]} and meta["device"] in ("cpu", "cuda")


def test_evaluation_report_has_model_oracle_and_mixture(tmp_path):
    from pipeline.svs.evaluate import evaluate_separator

    data = write_toy_dataset(tmp_path / "data", n_tracks=2, seconds=1.0)
    model = tiny_bundle(tmp_path / "model")
    report = evaluate_separator(data, model=str(model), out=tmp_path / "report")
    for key in ("gnsdr", "gsir", "gsar"):
        assert set(report[key]) == {"vocals", "accompaniment"}
    assert report["n_tracks"] == 2 and report["seconds"] == pytest.approx(2.0, abs=0.01)
    assert report["mixture"]["gnsdr"]["vocals"] == pytest.approx(0.0, abs=1e-9)
    assert report["oracle_ibm"]["gnsdr"]["vocals"] > 5.0
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.json", "tracks.csv", "gnsdr.png", "report.html",
                                                                  "audio"}
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count('<audio controls src="data:audio/flac;base64,') == 6  # 2 tracks x mixture, vocals, accompaniment
    assert page.count("data:image/png;base64,") == 1 and "oracle IBM" in page
    assert all(track in page for track in report["tracks"])


def test_separate_file_keeps_rate_and_channels_and_sums_to_mixture(tmp_path):
    from pipeline.svs.separate import separate_file

    voice, acc = toy_stems(1.3, sr=48000)
    stereo = np.stack([voice + acc, 0.5 * voice + acc], axis=1)
    sf.write(tmp_path / "song.wav", stereo, 48000, subtype="FLOAT")
    store = Store.open(tmp_path / "store")
    result = separate_file(tmp_path / "song.wav", model=str(tiny_bundle(tmp_path / "model")), store=store,
                           out_dir=tmp_path / "out")
    assert set(result) >= {"track_id", "run_id", "stems", "seconds", "sample_rate"}
    assert result["sample_rate"] == 48000 and result["run_id"] == "tiny-run"
    vocals, sr = sf.read(store.path("stems", result["track_id"], "tiny-run", "vocals.flac"))
    accomp, _ = sf.read(tmp_path / "out" / result["track_id"] / "accompaniment.flac")
    assert sr == 48000 and vocals.shape == stereo.shape == accomp.shape
    assert np.max(np.abs(vocals + accomp - stereo)) < 1e-5
    manifest = store.read_manifest("stems", result["track_id"], "tiny-run")
    assert manifest["inputs"][0]["sample_rate"] == 48000


def test_amending_a_model_card_keeps_the_manifest_checksum_true(tmp_path):
    from pipeline.store import sha256_file
    from pipeline.svs.model_card import amend_model_card

    store = Store.open(tmp_path / "store")
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# card\n\n## Training cost\n* fast\n")
    prefix = ("models", "svs", "x", "run-1")
    store.publish_run(prefix, {"MODEL_CARD.md": card}, kind="svs-model")
    for text in ("first", "second"):  # a second call replaces the marked section
        amend_model_card(store, prefix, "extra", f"## Extra\n{text}\n")
    stored = store.path(*prefix, "MODEL_CARD.md")
    body = open(stored).read()
    assert body.count("## Extra") == 1 and "second" in body and body.index("## Extra") < body.index("## Training cost")
    entry = store.read_manifest(*prefix)["outputs"][0]
    assert entry["sha256"] == sha256_file(stored)


def test_continued_training_starts_from_the_earlier_run_and_refuses_leaks(tmp_path):
    import torch

    from pipeline.errors import UserError
    from pipeline.svs.train import train_separator

    data = write_toy_dataset(tmp_path / "data", n_tracks=4, seconds=1.0)
    store = Store.open(tmp_path / "store")
    first = train_separator(tiny_config(), data, store=store, progress=False, work_dir=tmp_path / "w1")
    earlier = str(store.path("models", "svs", "svs-tiny", first["run_id"]))
    cfg = tiny_config(init_from=earlier, pretrain_steps=0, lr=1e-12)
    second = train_separator(cfg, data, store=store, progress=False, work_dir=tmp_path / "w2")
    before = torch.load(f"{earlier}/model.pt")
    after = torch.load(store.path("models", "svs", "svs-tiny", second["run_id"], "model.pt"))
    assert torch.allclose(before["head.weight"], after["head.weight"], atol=1e-6)

    trained_on = json.loads(open(f"{earlier}/model.json").read())["split"]["train"][0]
    leaky = tiny_config(init_from=earlier)
    leaky.split.test_songs = [trained_on.rsplit("_", 1)[0]]
    with pytest.raises(UserError, match="was trained on"):
        train_separator(leaky, data, store=store, progress=False, work_dir=tmp_path / "w3")
    wider = tiny_config(init_from=earlier)
    wider.model.args = {"channels": [4, 8, 16]}
    with pytest.raises(UserError, match="differs"):
        train_separator(wider, data, store=store, progress=False, work_dir=tmp_path / "w4")


def test_loudness_normalised_input_makes_the_separation_level_independent(tmp_path):
    from pipeline.svs.bundle import load_bundle
    from pipeline.svs.separate import input_gain, separate_array

    sep = load_bundle(tiny_bundle(tmp_path / "model"))
    voice, acc = toy_stems(1.0)
    mix = (voice + acc)[None]
    quiet, loud = separate_array(0.1 * mix, sep), separate_array(mix, sep)
    assert np.max(np.abs(10 * quiet - loud)) > 1e-3  # the log features make the raw network level-dependent

    sep.meta["config"]["separate"]["input_rms_db"] = -26.0
    quiet, loud = separate_array(0.1 * mix, sep), separate_array(mix, sep)
    assert np.max(np.abs(10 * quiet - loud)) < 1e-4 * np.max(np.abs(loud))
    assert 20 * np.log10(np.sqrt(np.mean((input_gain(mix, -26.0) * mix) ** 2))) == pytest.approx(-26.0, abs=1e-6)
    assert input_gain(np.zeros((1, 100)), -26.0) == 1.0 and input_gain(mix, None) == 1.0


def test_evaluation_subsets_score_only_the_recorded_validation_or_test_tracks(tmp_path):
    from pipeline.errors import UserError
    from pipeline.svs.evaluate import evaluate_separator

    data = write_toy_dataset(tmp_path / "data", n_tracks=3, seconds=0.5)
    model = tiny_bundle(tmp_path / "model")
    meta = json.loads((model / "model.json").read_text())
    meta["split"] = {"train": ["abjones_1_01"], "val": ["amy_2_01"], "test": ["abjones_3_01"]}
    (model / "model.json").write_text(json.dumps(meta))
    assert evaluate_separator(data, model=str(model), subset="val")["tracks"] == ["amy_2_01"]
    assert evaluate_separator(data, model=str(model), subset="test")["tracks"] == ["abjones_3_01"]
    with pytest.raises(UserError, match="use all, val or test"):
        evaluate_separator(data, model=str(model), subset="train")
