"""Deep ensembles, the internal test split, calibration and several data folders (issue: ECG generalization)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml

from pipeline.config import EcgConfig
from tests.conftest import REPO, SAMPLE_ECG, SHARED_DATA

SMALL_ENSEMBLE = {
    "name": "tiny-ensemble",
    "seed": 0,
    "scalogram": {"scale_rows_per_lead": 8, "time_cols_per_window": 32},
    "model": {"name": "ensemble", "members": [
        {"name": "cnn_lstm", "args": {"channels": [4, 8, 8]}, "seeds": [0]},
        {"name": "cnn1d", "args": {"channels": [4, 8]}, "seeds": [0, 1]},
    ]},
    "train": {"epochs": 1, "batch_size": 4, "val_fraction": 0.3, "parallel": 1},
}


def test_calibration_error_on_a_known_case():
    from pipeline.evaluation import calibration_report

    # 4 records at confidence 0.9 (3 right: bin accuracy 0.75) and 2 at 0.6 (both right: accuracy 1.0)
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 0])
    report = calibration_report(labels, probs)
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(1.0 - 0.6)
    assert report["ece"] == pytest.approx(expected)
    assert [b["count"] for b in report["bins"]] == [2, 4]
    perfect = calibration_report(np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect["ece"] == pytest.approx(0.0)


def test_balanced_accuracy_weights_classes_equally():
    from pipeline.evaluation import classification_report

    truth = np.array([0] * 8 + [1] * 2)
    always_zero = np.zeros(10, dtype=int)
    report = classification_report(truth, always_zero, ["a", "b"])
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["balanced_accuracy"] == pytest.approx(0.5)


def test_combiner_prefers_the_informative_view_and_sharpens():
    from pipeline.ecg.combine import combine, fit_combiner

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    informative = np.full((300, 3), 0.2)
    informative[np.arange(300), labels] = 0.6  # right but under-confident
    noise = rng.dirichlet(np.ones(3), 300)
    probs = np.stack([informative, noise, noise])
    weights, temperature = fit_combiner(probs, labels, views=[0, 1, 1])
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > 0.9 and weights[1] == pytest.approx(weights[2])
    assert temperature < 1.0  # under-confident mixture gets sharpened
    combined = combine(probs, weights, temperature)
    assert (combined.argmax(1) == labels).mean() == 1.0
    np.testing.assert_allclose(combined.sum(1), 1.0, rtol=1e-5)


def test_stratified_holdout_keeps_every_stratum():
    from pipeline.ecg.splits import stratified_holdout

    names = [f"r{i}" for i in range(100)]
    strata = ["SB"] * 50 + ["AFIB"] * 30 + ["AFIB-flutter"] * 10 + ["SR"] * 10
    test = stratified_holdout(names, strata, 0.2, seed=0)
    assert len(test) == 20 and test == sorted(test)
    picked = [strata[names.index(n)] for n in test]
    assert picked.count("AFIB-flutter") == 2 and picked.count("SB") == 10
    assert stratified_holdout(names, strata, 0.2, seed=0) == test  # seeded


@pytest.mark.shared
def test_committed_internal_test_split_regenerates_from_the_manifest():
    from pipeline.ecg.splits import manifest_strata, read_record_list, stratified_holdout

    names, strata = manifest_strata(SHARED_DATA / "ecg" / "manifest.csv", ["chapman", "chapman-extra"])
    committed = read_record_list(REPO / "configs" / "ecg" / "splits" / "chapman-test.txt")
    assert committed == set(stratified_holdout(names, strata, 0.2, seed=0))
    flutter = [n for n, s in zip(names, strata) if s == "AFIB-flutter"]
    assert 5 <= len(committed & set(flutter)) <= 9  # ~20% of the 36 flutter records


def _two_folders(tmp_path):
    """The bundled sample split into two folders (records alternate)."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for i, header in enumerate(sorted(SAMPLE_ECG.glob("*.hea"))):
        target = folders[i % 2]
        target.mkdir(exist_ok=True)
        shutil.copy(header, target)
        shutil.copy(header.with_suffix(".mat"), target)
    return folders


@pytest.mark.slow
def test_ensemble_trains_from_two_folders_without_seeing_the_holdout(tmp_path, tmp_store, monkeypatch, cli):
    from pipeline.ecg import prepare

    monkeypatch.setenv("PIPELINE_WORK", str(tmp_path / "work"))
    folders = _two_folders(tmp_path)
    holdout = ["JS00007", "JS00012"]  # one from each folder
    (tmp_path / "holdout.txt").write_text("# test\n" + "\n".join(holdout) + "\n")
    cfg = {**SMALL_ENSEMBLE, "holdout": str(tmp_path / "holdout.txt")}
    (tmp_path / "ens.yaml").write_text(yaml.safe_dump(cfg))

    prepared_for_training = []
    real = prepare.prepare_path

    def spy(path, cfg, *args):
        prepared_for_training.append(prepare.record_base(path).name)
        return real(path, cfg, *args)

    monkeypatch.setattr(prepare, "prepare_path", spy)
    result = cli("train", "ecg", "--config", tmp_path / "ens.yaml", "--data", folders[0], "--data", folders[1],
                 "--bundle", tmp_path / "bundle")
    assert result.code == 0, result.err
    assert not set(holdout) & set(prepared_for_training)
    assert len(prepared_for_training) == 10
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    assert metrics["holdout"]["n_excluded"] == 2 and metrics["n_records"] == 10
    assert not set(holdout) & set(metrics["validation"]["records"])
    assert "internal_test" not in metrics  # scored only when asked, after every choice is made
    meta = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert meta["model_name"] == "ensemble" and len(meta["members"]) == 3
    assert sum(meta["weights"]) == pytest.approx(1.0) and meta["temperature"] > 0


def test_ensemble_round_trip_torch_and_onnx_agree(tmp_path):
    from pipeline.ecg.bundle import load_bundle, member_meta, save_ensemble
    from pipeline.ecg.ensemble import member_config, member_key
    from pipeline.ecg.predict import predict_paths
    from pipeline.models import create_model

    cfg = EcgConfig.model_validate(SMALL_ENSEMBLE)
    members = []
    for view, member in enumerate(cfg.model.members):
        for seed in member.seeds:
            mcfg = member_config(cfg, view, seed)
            model = create_model(member.name, n_classes=4, n_features=0, **member.args).eval()
            members.append((member_meta(mcfg, model.input_kind, 0, member_key(cfg, view, seed)), model))
    save_ensemble(tmp_path, cfg, members, weights=[0.5, 0.25, 0.25], temperature=0.7)
    records = sorted(str(p) for p in SAMPLE_ECG.glob("*.mat"))[:3]
    by_onnx, _, errors = predict_paths(load_bundle(tmp_path, "onnx"), records)
    by_torch, _, _ = predict_paths(load_bundle(tmp_path, "torch"), records)
    assert not errors and len(by_onnx) == 3
    from pipeline.ecg.predict import predict_prepared
    from pipeline.ecg.prepare import Needed, prepare_path

    bundle = load_bundle(tmp_path, "onnx")
    assert bundle.needed == Needed(image=True, features=False)  # no member reads rhythm features
    everything = predict_prepared(bundle, [prepare_path(r, bundle.config) for r in records])
    np.testing.assert_allclose([list(r["probabilities"].values()) for r in by_onnx], everything, atol=1e-4)
    from pipeline.ecg.evaluate import evaluate_paths

    report = evaluate_paths(load_bundle(tmp_path), [SAMPLE_ECG / "JS00007", SAMPLE_ECG / "JS00013"], progress=False)
    assert set(report["members"]) == {"m0-cnn_lstm-s0", "m1-cnn1d-s0", "m1-cnn1d-s1", "m1-cnn1d (mean of 2 members)"}
    for a, b in zip(by_onnx, by_torch):  # the same float16-exact weights on both paths
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-4)
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    import onnx

    for meta, _ in members:  # ONNX files hold their weights as float16 (half the size), not as float32
        weights = onnx.load(str(tmp_path / meta["onnx_file"])).graph.initializer
        big = [w for w in weights if np.prod(w.dims) > 1]
        assert big and all(w.data_type == onnx.TensorProto.FLOAT16 for w in big)


def test_cascade_threshold_changes_at_most_the_allowed_predictions():
    from pipeline.ecg.combine import cascade_exits, cascade_threshold

    # signal views' probabilities, most confident first; the full ensemble disagrees on records 1 and 3
    signal = np.array([[0.99, 0.01], [0.97, 0.03], [0.95, 0.05], [0.9, 0.1], [0.6, 0.4]])
    full = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.3, 0.7], [0.7, 0.3]])
    assert cascade_threshold(signal, full, 0) == pytest.approx(0.97)  # only record 0 may exit
    assert cascade_threshold(signal, full, 1) == pytest.approx(0.9)  # records 0-2: one change
    assert cascade_threshold(signal, full, 2) == 0.0  # both changes allowed: everyone exits
    for allowed in (0, 1, 2):
        exits = cascade_exits(signal, cascade_threshold(signal, full, allowed))
        decided = np.where(exits, signal.argmax(1), full.argmax(1))
        assert (decided != full.argmax(1)).sum() <= allowed


def test_cascade_computes_images_only_for_uncertain_records_and_matches_evaluation(tmp_path, monkeypatch):
    """Records the 1-D CNNs are sure of never get a scalogram; the rest get the full ensemble. The
    evaluation path (every member on every record) gives the same probabilities."""
    import pipeline.ecg.prepare as prepare
    from pipeline.ecg.bundle import load_bundle, member_meta, save_ensemble
    from pipeline.ecg.combine import combine
    from pipeline.ecg.ensemble import member_config, member_key
    from pipeline.ecg.predict import member_probabilities, predict_paths, score_paths
    from pipeline.models import create_model

    torch = pytest.importorskip("torch")
    cfg = EcgConfig.model_validate(SMALL_ENSEMBLE)
    members = []
    for view, member in enumerate(cfg.model.members):
        for seed in member.seeds:
            torch.manual_seed(seed + 10 * view)
            model = create_model(member.name, n_classes=4, n_features=0, **member.args).eval()
            members.append((member_meta(member_config(cfg, view, seed), model.input_kind, 0, member_key(cfg, view, seed)), model))
    weights, temperature = [0.5, 0.25, 0.25], 0.3  # a sharp temperature spreads the random networks' confidences
    save_ensemble(tmp_path / "full", cfg, members, weights, temperature)
    records = sorted(SAMPLE_ECG.glob("*.mat"))[:6]
    full = load_bundle(tmp_path / "full", "onnx")
    per_member = member_probabilities(full, [prepare.prepare_path(r, full.config) for r in records])
    signal = combine(per_member[1:], [0.5, 0.5], temperature)
    threshold = float(np.median(signal.max(1)))
    exits = signal.max(1) > threshold
    assert 0 < exits.sum() < len(records)
    save_ensemble(tmp_path / "cascade", cfg, members, weights, temperature, {"cascade": {"members": [1, 2], "threshold": threshold}})
    cascade = load_bundle(tmp_path / "cascade", "onnx")

    computed = []
    real = prepare.stacked_scalogram
    monkeypatch.setattr(prepare, "stacked_scalogram", lambda x, spec: computed.append(1) or real(x, spec))
    predicted, _, errors = predict_paths(cascade, records)
    assert not errors and len(computed) == len(records) - exits.sum()
    expected = np.where(exits[:, None], signal, combine(per_member, weights, temperature))
    got = np.array([list(r["probabilities"].values()) for r in predicted])
    np.testing.assert_allclose(got, expected, atol=1e-3)
    computed.clear()
    whole = score_paths(cascade, records, needed=prepare.EVERYTHING)  # as evaluation scores them
    assert len(computed) == len(records) and not np.isnan(np.stack([r.members for r in whole])).any()
    np.testing.assert_allclose(np.stack([r.probabilities for r in whole]), got, atol=1e-4)
    import pipeline.ecg.explain as explain

    explained = []  # the members whose maps make each explanation: the deciding ones
    monkeypatch.setattr(explain, "_network_saliency", lambda net, meta, record, target: explained.append(meta["name"]) or np.ones((12, 10)))
    explainer = explain.Explainer(cascade)
    for record, exited in zip([prepare.prepare_path(r, cfg) for r in records], exits):
        explained.clear()
        explainer.saliency(record, 0)
        assert explained == (["m1-cnn1d-s0", "m1-cnn1d-s1"] if exited else ["m0-cnn_lstm-s0", "m1-cnn1d-s0", "m1-cnn1d-s1"])


def test_duplicate_record_across_data_folders_is_refused(tmp_path):
    from pipeline.ecg.prepare import find_all
    from pipeline.errors import UserError

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(SAMPLE_ECG / "JS00007.hea", tmp_path / name)
    with pytest.raises(UserError, match="JS00007 is in both"):
        find_all([tmp_path / "a", tmp_path / "b"])


def test_ensemble_config_needs_members():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="members"):
        EcgConfig.model_validate({"model": {"name": "ensemble"}})
    with pytest.raises(ValidationError, match="members"):
        EcgConfig.model_validate({"model": {"name": "cnn1d", "members": [{"name": "cnn1d"}]}})
    with pytest.raises(ValidationError, match="epochs"):  # a bad member override fails at load, before any data work
        EcgConfig.model_validate({"model": {"name": "ensemble", "members": [{"name": "cnn1d", "train": {"epochs": 0}}]}})


def test_evaluate_only_listed_records_with_calibration_and_flutter(tmp_path, cli):
    (tmp_path / "list.txt").write_text("JS00007\nJS00013\nJS99999\n")
    result = cli("evaluate", "ecg", SAMPLE_ECG, "--model", "rule", "--only", tmp_path / "list.txt", "--json",
                 "--out", tmp_path / "out")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n_records"] == 2  # JS99999 is not in the folder
    assert {"ece", "bins"} <= set(report["calibration"]) and report["flutter"]["count"] >= 0
    assert (tmp_path / "out" / "reliability.png").stat().st_size > 1000
    (tmp_path / "none.txt").write_text("JS99999\n")
    missing = cli("evaluate", "ecg", SAMPLE_ECG, "--model", "rule", "--only", tmp_path / "none.txt")
    assert missing.code == 2 and "none of the 1 records listed" in missing.err


@pytest.mark.slow
def test_sigterm_stops_parallel_member_training(tmp_path):
    """Members train in child processes: stopping the command must not leave them running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = {**SMALL_ENSEMBLE, "train": {**SMALL_ENSEMBLE["train"], "epochs": 500, "patience": 500, "parallel": 2}}
    config = tmp_path / "slow-ensemble.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PIPELINE_STORE": str(tmp_path / "store"), "PIPELINE_WORK": str(tmp_path / "work")}
    command = [sys.executable, "-m", "pipeline.cli", "train", "ecg", "--config", str(config), "--data", str(SAMPLE_ECG)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    members = tmp_path / "work" / "ecg" / "members"
    deadline = time.monotonic() + 300  # generous: a loaded 2-core machine starts torch slowly
    try:
        while not (members.is_dir() and any(members.glob("*.pt"))):  # a member has finished an epoch
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() else "slow"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) != 0
    finally:  # a failed assertion must not leave the training running (the whole process group)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    time.sleep(1)
    survivors = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(config) not in survivors


def test_equal_view_weights_fit_only_the_temperature():
    from pipeline.ecg.combine import fit_combiner

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    good = np.full((200, 3), 0.25)
    good[np.arange(200), labels] = 0.5
    probs = np.stack([good, good, rng.dirichlet(np.ones(3), 200)])
    weights, temperature = fit_combiner(probs, labels, views=[0, 0, 1], fit_weights=False)
    np.testing.assert_allclose(weights, [0.25, 0.25, 0.5])
    assert temperature != pytest.approx(1.0)


def test_member_fingerprint_ignores_the_ensemble_around_a_member():
    from pipeline.ecg.ensemble import member_config, member_fingerprint

    first = EcgConfig.model_validate(SMALL_ENSEMBLE)
    other = EcgConfig.model_validate({**SMALL_ENSEMBLE, "name": "other", "holdout": "x.txt",
                                      "model": {"name": "ensemble", "view_weights": "equal",
                                                "members": [SMALL_ENSEMBLE["model"]["members"][1]]},
                                      "train": {**SMALL_ENSEMBLE["train"], "parallel": 2}})
    cnn1d_seed0 = member_fingerprint(member_config(first, 1, 0))
    assert member_fingerprint(member_config(other, 0, 0)) == cnn1d_seed0  # same network, seed, data setup
    assert member_fingerprint(member_config(first, 1, 1)) != cnn1d_seed0  # another seed
    assert member_fingerprint(member_config(first, 0, 0)) != cnn1d_seed0  # another network


def test_member_fingerprint_follows_the_scalogram_only_for_members_that_read_it():
    from pipeline.ecg.ensemble import member_config, member_fingerprint

    first = EcgConfig.model_validate(SMALL_ENSEMBLE)
    finer = EcgConfig.model_validate({**SMALL_ENSEMBLE, "scalogram": {"n_scales": 16, "scale_rows_per_lead": 16}})
    assert member_fingerprint(member_config(finer, 1, 0)) == member_fingerprint(member_config(first, 1, 0))  # 1-D CNN
    assert member_fingerprint(member_config(finer, 0, 0)) != member_fingerprint(member_config(first, 0, 0))  # scalogram CNN


def test_kfold_splits_partition_the_records_by_class_and_flutter():
    from pipeline.ecg.ensemble import fit_splits

    cfg = EcgConfig.model_validate({**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "selection": "kfold"},
                                    "train": {**SMALL_ENSEMBLE["train"], "folds": 5}})
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    flutter = np.zeros(100, dtype=bool)
    flutter[50:60] = True  # 10 of the AFIB records
    splits = fit_splits(cfg, labels, flutter)
    held = np.concatenate([h for _, h in splits])
    assert len(splits) == 5 and sorted(held) == list(range(100))  # every record held out exactly once
    for fit, out in splits:
        assert not set(fit) & set(out) and len(fit) + len(out) == 100
        assert flutter[out].sum() == 2 and (labels[out] == 0).sum() == 10


@pytest.mark.slow
def test_kfold_ensemble_scores_every_record_out_of_fold_and_picks_views(tmp_path, tmp_store, monkeypatch, cli):
    monkeypatch.setenv("PIPELINE_WORK", str(tmp_path / "work"))
    cfg = {**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "selection": "kfold", "select_views": True,
                                       "fold_members": 2},
           "train": {**SMALL_ENSEMBLE["train"], "folds": 3}}
    (tmp_path / "kfold.yaml").write_text(yaml.safe_dump(cfg))
    result = cli("train", "ecg", "--config", tmp_path / "kfold.yaml", "--data", SAMPLE_ECG, "--bundle", tmp_path / "bundle")
    assert result.code == 0, result.err
    assert "out-of-fold accuracy" in result.out
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    oof = metrics["validation"]
    assert oof["scheme"] == "kfold" and oof["n_records"] == metrics["n_records"] == len(set(oof["records"])) >= 10
    assert [row["views"] for row in oof["selection"]] and sorted(map(tuple, (r["views"] for r in oof["selection"]))) == [
        (0,), (0, 1), (1,)]  # every non-empty subset of the two views was scored
    assert oof["views"] == oof["selection"][0]["views"]
    assert all(m["fits"] == 3 for m in oof["members"].values())  # one model per fold for each view and seed
    meta = json.loads((tmp_path / "bundle" / "model.json").read_text())
    seeds = {0: 1, 1: 2}  # seeds per view in SMALL_ENSEMBLE
    assert len(meta["members"]) == sum(2 * seeds[v] for v in oof["views"])  # fold_members: first 2 folds kept
    assert all(m["name"].rsplit("-f", 1)[1] in ("0", "1") for m in meta["members"])
    assert sum(meta["weights"]) == pytest.approx(1.0)
    card = (tmp_path / "bundle" / "MODEL_CARD.md").read_text()
    assert "cross-fitted" in card and "out-of-fold" in card
    assert "| m0 " in card and "| m1 " in card  # selection rows name views as members are named (m<view>)


@pytest.mark.slow
def test_kfold_refit_publishes_members_fitted_on_every_training_record(tmp_path, tmp_store, monkeypatch, cli):
    import pipeline.ecg.train as ecg_train

    monkeypatch.setenv("PIPELINE_WORK", str(tmp_path / "work"))
    fitted = []  # (member name, records fitted, records held out) of every training
    real_fit = ecg_train.fit_model

    def recording_fit(cfg, data, *args, split=None, **kwargs):
        fitted.append((cfg.name, len(split[0]), len(split[1])))
        return real_fit(cfg, data, *args, split=split, **kwargs)

    monkeypatch.setattr(ecg_train, "fit_model", recording_fit)
    cfg = {**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "selection": "kfold", "refit_members": 2,
                                       "cascade": {"max_changed": 1}},
           "train": {**SMALL_ENSEMBLE["train"], "folds": 3}}
    (tmp_path / "refit.yaml").write_text(yaml.safe_dump(cfg))
    result = cli("train", "ecg", "--config", tmp_path / "refit.yaml", "--data", SAMPLE_ECG, "--bundle", tmp_path / "bundle")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    n = metrics["n_records"]
    folds = [f for f in fitted if f[2]]
    refits = [f for f in fitted if not f[2]]
    assert len(folds) == 3 * 3 and all(fit + out == n and out < n for _, fit, out in folds)  # 3 members x 3 folds
    assert sorted(name for name, _, _ in refits) == ["tiny-ensemble-m0-s0", "tiny-ensemble-m0-s1",
                                                     "tiny-ensemble-m1-s0", "tiny-ensemble-m1-s1"]
    assert all(fit == n for _, fit, _ in refits)  # every training record, nothing held out
    meta = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert sorted(m["name"] for m in meta["members"]) == ["m0-cnn_lstm-s0-all", "m0-cnn_lstm-s1-all",
                                                          "m1-cnn1d-s0-all", "m1-cnn1d-s1-all"]
    assert sorted(metrics["validation"]["refit"]) == sorted(m["name"] for m in meta["members"])
    assert "refit(s) per chosen view" in (tmp_path / "bundle" / "MODEL_CARD.md").read_text()
    # the cascade exits on the 1-D CNN refits (no scalogram), its threshold fitted out of fold
    assert [meta["members"][i]["name"] for i in meta["cascade"]["members"]] == ["m1-cnn1d-s0-all", "m1-cnn1d-s1-all"]
    cascade = metrics["validation"]["cascade"]
    assert cascade["threshold"] == meta["cascade"]["threshold"] and cascade["changed"] <= 1
    assert 0.0 <= cascade["exit_fraction"] <= 1.0
    assert "Cascade: the views that read no scalogram decide alone" in (tmp_path / "bundle" / "MODEL_CARD.md").read_text()
    predicted = cli("predict", SAMPLE_ECG / "JS00007.mat", "--model", tmp_path / "bundle", "--json")
    assert predicted.code == 0, predicted.err
    assert sum(json.loads(predicted.out)["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_kfold_options_need_kfold_selection():
    with pytest.raises(ValueError, match="need selection: kfold"):
        EcgConfig.model_validate({**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "select_views": True}})
    with pytest.raises(ValueError, match="need selection: kfold"):
        EcgConfig.model_validate({**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "refit_members": 2}})
    with pytest.raises(ValueError, match="exclude each other"):
        EcgConfig.model_validate({**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "selection": "kfold",
                                                               "fold_members": 2, "refit_members": 2}})
    with pytest.raises(ValueError, match="cascade needs model name 'ensemble'"):
        EcgConfig.model_validate({"model": {"name": "cnn1d", "cascade": {}}})
    with pytest.raises(ValueError, match="exceeds train.folds"):
        EcgConfig.model_validate({**SMALL_ENSEMBLE, "model": {**SMALL_ENSEMBLE["model"], "selection": "kfold",
                                                               "fold_members": 6}})


def test_device_part_configs_train_the_members_the_full_config_reuses(tmp_path):
    """bench/device/split_ensemble.py: each part trains exactly one (view, seed) of the full config,
    under the member-cache name the full config looks up, so the full run trains nothing again."""
    from bench.device.split_ensemble import main
    from pipeline.config import REPO_ROOT, load_config
    from pipeline.ecg.ensemble import member_config, member_fingerprint

    source = REPO_ROOT / "configs" / "ecg" / "ecg-gpu.yaml"
    main([str(source), str(tmp_path)])
    full = load_config(tmp_path / "full.yaml", EcgConfig)
    assert full == load_config(source, EcgConfig)  # the written full config is the config itself
    wanted = {(member_config(full, v, s).model.name, s, member_fingerprint(member_config(full, v, s)))
              for v, member in enumerate(full.model.members) for s in member.seeds}
    parts = [load_config(p, EcgConfig) for p in sorted(tmp_path.glob("part-*.yaml"))]
    got = {(member_config(p, 0, p.model.members[0].seeds[0]).model.name, p.model.members[0].seeds[0],
            member_fingerprint(member_config(p, 0, p.model.members[0].seeds[0]))) for p in parts}
    assert len(parts) == len(wanted) == 15 and got == wanted  # 5 views x 3 seeds
    assert all(len(p.model.members) == 1 and len(p.model.members[0].seeds) == 1 for p in parts)
    assert {(p.train.folds, p.seed) for p in parts} == {(full.train.folds, full.seed)}  # the same folds and records


@pytest.mark.slow
def test_member_pool_never_hangs_on_exit_under_the_cli_sigterm_handler():
    """Pool teardown after the last member: terminate() SIGTERMs idle workers; with the CLI's raising
    handler inherited, once in ~500-1500 pools one stayed blocked on the task queue's lock while the
    parent joined it forever. Up to 2000 pools (~80 s on a quiet machine), but none started after 60 s,
    so a loaded machine runs fewer instead of timing out; a hung pool still never finishes."""
    script = textwrap.dedent("""
        import signal, time
        from pipeline.cli import _terminate
        from pipeline.ecg import ensemble

        def instant_member(job):
            return {"key": str(job), "best_epoch": 0, "seconds": 0.0}

        signal.signal(signal.SIGTERM, _terminate)
        ensemble._train_member = instant_member
        start, pools = time.monotonic(), 0
        while pools < 2000 and time.monotonic() - start < 60:
            assert len(ensemble._run_jobs([(0, 0, 0), (0, 0, 1), (0, 0, 2)], 2, False)) == 3
            pools += 1
        print(pools)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0 and int(done.stdout.strip()) > 0, done.stderr[-500:]
