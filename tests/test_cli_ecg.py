"""The ECG command line: predict, evaluate, scalogram, train, and one clear error per bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.conftest import SAMPLE_ECG, synthetic_ecg, write_record

CLASSES = {"SB", "AFIB", "GSVT", "SR"}


def _assert_one_line_error(result, fragment):
    assert result.code == 2, (result.out, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert fragment in lines[0]
    assert "Traceback" not in result.err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A cnn1d trained for one epoch on the bundled sample into a temporary store."""
    import os
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("tiny")
    cfg = yaml.safe_load((SAMPLE_ECG.parents[1] / "configs" / "ecg" / "ecg-cnn1d.yaml").read_text())
    cfg.update(name="tiny-cnn1d")
    cfg["model"]["args"] = {"channels": [4, 8]}
    cfg["train"].update(epochs=1, folds=2, val_fraction=0.25, batch_size=4)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PIPELINE_STORE": str(root / "store"), "PIPELINE_WORK": str(root / "work")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "train", "ecg", "--config", str(config), "--data", str(SAMPLE_ECG)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert not list((root / "work").rglob("*.pt"))  # resume checkpoints are removed once published
    return root / "store"


def test_train_publishes_a_complete_model_folder(tiny_model):
    run = json.loads((tiny_model / "models/ecg/tiny-cnn1d/latest.json").read_text())["run_id"]
    folder = tiny_model / "models/ecg/tiny-cnn1d" / run
    for name in ("model.json", "model.pt", "model.onnx", "config.yaml", "metrics.json", "MODEL_CARD.md",
                 "confusion.png", "manifest.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    assert cv["n_records"] == 12 and len(cv["fold_accuracy"]) == 2
    assert 0 <= cv["baseline"]["accuracy"] <= 1
    assert "rule baseline" in (folder / "MODEL_CARD.md").read_text()
    device = {"device": metrics["device"], "gpu": metrics["gpu"]}  # what trained it (auto may fall back to CPU)
    assert device["device"] in ("cpu", "cuda") and (device["gpu"] is None) == (device["device"] == "cpu")
    assert json.loads((folder / "manifest.json").read_text())["device"] == device


def test_predict_json_with_a_store_model(cli, tiny_model, monkeypatch):
    monkeypatch.setenv("PIPELINE_STORE", str(tiny_model))
    result = cli("predict", SAMPLE_ECG / "JS00013.mat", SAMPLE_ECG / "JS00007.hea", "--model", "tiny-cnn1d", "--json")
    assert result.code == 0, result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["record"].rsplit("/", 1)[-1] for r in rows] == ["JS00013.mat", "JS00007.hea"]
    for row in rows:
        assert set(row) == {"record", "label", "probabilities", "model"}
        assert row["label"] in CLASSES and set(row["probabilities"]) == CLASSES
        assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_onnx_and_torch_backends_agree(cli, tiny_model, monkeypatch):
    monkeypatch.setenv("PIPELINE_STORE", str(tiny_model))
    outputs = {}
    for backend in ("onnx", "torch"):
        result = cli("predict", SAMPLE_ECG / "JS00012", "--model", "tiny-cnn1d", "--json", "--backend", backend)
        assert result.code == 0, result.err
        outputs[backend] = json.loads(result.out)["probabilities"]
    for name in CLASSES:
        assert outputs["onnx"][name] == pytest.approx(outputs["torch"][name], abs=1e-3)


def test_predict_with_the_bundled_default_model(cli, tmp_store):
    result = cli("predict", SAMPLE_ECG / "JS00013.mat", "--json")
    assert result.code == 0, result.err
    row = json.loads(result.out)
    assert row["model"] == "ecg-default" and row["label"] in CLASSES


@pytest.mark.parametrize("model", ["ecg-default", "ecg-fast", "ecg-scalogram"])
def test_bundled_models_give_the_same_answers_through_onnx_and_torch(cli, tmp_store, model):
    """The bundled models' members are exported as float16 ONNX: both backends must agree on every sample record
    (a fresh store: each name falls back to the repository's bundle)."""
    outputs = {}
    for backend in ("onnx", "torch"):
        result = cli("predict", *sorted(SAMPLE_ECG.glob("*.hea")), "--model", model, "--json", "--backend", backend)
        assert result.code == 0, result.err
        outputs[backend] = [json.loads(line) for line in result.out.splitlines()]
    assert len(outputs["onnx"]) == 12 and outputs["onnx"][0]["model"].startswith(model)
    for onnx_row, torch_row in zip(outputs["onnx"], outputs["torch"]):
        assert onnx_row["label"] == torch_row["label"]
        for name in CLASSES:
            assert onnx_row["probabilities"][name] == pytest.approx(torch_row["probabilities"][name], abs=1e-3)


def test_predict_with_the_rule_baseline(cli):
    result = cli("predict", SAMPLE_ECG / "JS00012.mat", SAMPLE_ECG / "JS00013.mat", "--model", "rule", "--json")
    assert result.code == 0, result.err
    assert [json.loads(line)["label"] for line in result.out.splitlines()] == ["GSVT", "SB"]


def test_evaluate_reports_model_and_baseline(cli, tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("PIPELINE_STORE", str(tiny_model))
    out = tmp_path / "eval"
    result = cli("evaluate", "ecg", SAMPLE_ECG, "--model", "tiny-cnn1d", "--json", "--out", out)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    for key in ("accuracy", "macro_f1", "n_records", "n_skipped", "per_class", "confusion", "accuracy_ci95", "baseline"):
        assert key in report
    assert report["n_records"] == 12 and np.sum(report["confusion"]) == 12
    assert report["baseline"]["accuracy"] >= 0.75  # the rule gets most of the bundled sample right
    assert (out / "report.json").is_file() and (out / "confusion.png").is_file()


def test_evaluate_accepts_a_manifest_and_reports_skipped(cli, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE_ECG, data)
    write_record(data, "nolabel", synthetic_ecg(), dx="59118001")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("record,source\nJS00013,data\nJS00007,data\nnolabel,data\n")
    result = cli("evaluate", "ecg", manifest, "--model", "rule", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n_records"] == 2 and report["n_skipped"] == 1
    assert report["skipped"][0]["reason"] == "label NONE"


def test_scalogram_png(cli, tmp_path):
    out = tmp_path / "pics" / "scalogram.png"
    result = cli("scalogram", SAMPLE_ECG / "JS00007.mat", "-o", out)
    assert result.code == 0, result.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.tmp*"))


def _record_variants(tmp_path):
    good = synthetic_ecg()
    cases = {}
    write_record(tmp_path / "two", "two", synthetic_ecg(n_leads=2), leads=["II", "V5"])
    cases["two-leads"] = (tmp_path / "two" / "two.dat", "12-lead models need")
    write_record(tmp_path / "short", "short", good[:2000])
    cases["short"] = (tmp_path / "short" / "short.dat", "lasts 4.00 s")
    write_record(tmp_path / "nohea", "nohea", good)
    (tmp_path / "nohea" / "nohea.hea").unlink()
    cases["missing-header"] = (tmp_path / "nohea" / "nohea.dat", "header file")
    (tmp_path / "text.txt").write_text("not an ecg")
    cases["not-wfdb"] = (tmp_path / "text.txt", "not a WFDB record")
    cases["directory"] = (tmp_path / "two", "is a directory")
    cases["nonexistent"] = (tmp_path / "nope.dat", "no such record")
    return cases


@pytest.mark.parametrize("case", ["two-leads", "short", "missing-header", "not-wfdb", "directory", "nonexistent"])
def test_predict_bad_input_is_one_clear_line(cli, tmp_path, case):
    path, fragment = _record_variants(tmp_path)[case]
    _assert_one_line_error(cli("predict", path, "--model", "rule"), fragment)


def test_longer_record_gives_more_windows_and_a_note(cli, tmp_path):
    write_record(tmp_path, "long", synthetic_ecg(seconds=15))
    result = cli("predict", tmp_path / "long.dat", "--model", "rule", "--json")
    assert result.code == 0 and "15 windows" in result.err


def test_bad_options_are_one_clear_line(cli, tmp_path):
    _assert_one_line_error(cli("predict", SAMPLE_ECG / "JS00007", "--model", "../etc"), "invalid model name")
    _assert_one_line_error(cli("predict", SAMPLE_ECG / "JS00007", "--model", "no-such-model"), "no model")
    _assert_one_line_error(cli("scalogram", SAMPLE_ECG / "JS00007", "-o", tmp_path / "x.jpg"), "must end in .png")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: resnet9000\n")
    _assert_one_line_error(cli("train", "ecg", "--config", bad, "--data", SAMPLE_ECG), "model.name")
    _assert_one_line_error(cli("train", "ecg", "--config", tmp_path / "none.yaml"), "config file not found")
    _assert_one_line_error(cli("evaluate", "ecg", tmp_path / "empty", "--model", "rule"), "no such data")


def test_every_command_has_help(cli):
    for command in (["predict"], ["scalogram"], ["evaluate", "ecg"], ["train", "ecg"], ["models", "list"]):
        result = cli(*command, "--help")
        assert result.code == 0 and "Usage" in result.out


def test_one_bad_record_does_not_stop_the_batch(cli, tmp_path):
    (tmp_path / "junk.txt").write_text("not an ecg")
    result = cli("predict", SAMPLE_ECG / "JS00013.mat", tmp_path / "junk.txt", SAMPLE_ECG / "JS00012.mat",
                 "--model", "rule", "--json")
    assert result.code == 2
    assert [json.loads(line)["label"] for line in result.out.splitlines()] == ["SB", "GSVT"]
    errors = [line for line in result.err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "not a WFDB record" in errors[0]


def test_rule_config_thresholds_are_used_in_cross_validation(tmp_path):
    from pipeline.config import EcgConfig
    from pipeline.ecg.train import cross_validate, load_dataset

    cfg = EcgConfig()
    cfg.model.name, cfg.model.args, cfg.train.folds = "rule", {"brady_bpm": 200.0}, 2
    report = cross_validate(cfg, load_dataset(cfg, SAMPLE_ECG, None, progress=False), tmp_path, progress=False)
    assert report["confusion"][0][0] == 3 and sum(row[0] for row in report["confusion"]) >= 6  # everything regular is "SB"
    assert report["baseline"]["accuracy"] > report["accuracy"]  # the baseline column keeps the default thresholds
