"""Record preparation: cache keyed by content and config, worker processes equal to in-process,
one cache for the flows' scalogram step and training."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from pipeline.config import EcgConfig
from pipeline.ecg.feature_store import shared_cache, store_folder
from pipeline.ecg.prepare import find_records, prepare_many, prepare_path
from pipeline.errors import UserError
from tests.conftest import SAMPLE_ECG
from tests.svs_util import one_thread  # noqa: F401  (fixture)


def test_cache_hit_equals_fresh_and_config_change_misses(tmp_path):
    cfg = EcgConfig()
    fresh = prepare_path(SAMPLE_ECG / "JS00007", cfg, tmp_path)
    cached = prepare_path(SAMPLE_ECG / "JS00007", cfg, tmp_path)
    np.testing.assert_array_equal(fresh.image, cached.image)
    assert cached.label == fresh.label and cached.label.label == "AFIB"
    other = EcgConfig()
    other.scalogram.scale_rows_per_lead = 4
    assert prepare_path(SAMPLE_ECG / "JS00007", other, tmp_path).image.shape[0] == 48
    assert len(list(tmp_path.glob("*/*.npz"))) == 2


def test_worker_processes_match_in_process_and_report_bad_records(tmp_path):
    cfg = EcgConfig()
    paths = find_records(SAMPLE_ECG)
    bad = tmp_path / "broken.dat"
    bad.write_bytes(b"\x00" * 10)
    jobs = paths + paths[:4] + [bad]  # 17 jobs: above the in-process threshold
    parallel = prepare_many(jobs, cfg, workers=2, progress=False)
    assert isinstance(parallel[-1], UserError) and "header file" in str(parallel[-1])
    serial = prepare_many(paths[:2], cfg, workers=1, progress=False)
    for a, b in zip(parallel[:2], serial):
        np.testing.assert_allclose(a.image, b.image, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a.features, b.features, rtol=1e-5)


def test_streamed_prediction_in_small_batches_equals_one_batch(tmp_path):
    """predict_paths classifies while workers prepare; batch boundaries and a bad record
    in the middle change nothing."""
    from pipeline.ecg.predict import predict_paths, predict_prepared, resolve_model

    model = resolve_model("ecg-default")
    paths = find_records(SAMPLE_ECG)
    bad = tmp_path / "broken.hea"
    bad.write_text("not a header\n")
    jobs = paths[:8] + [bad] + paths + paths[:2]  # 23 jobs: the worker-process path
    results, _, errors = predict_paths(model, jobs, batch=5)
    assert [e["record"] for e in errors] == [str(bad)]
    assert [r["record"] for r in results] == [str(p) for p in jobs if p != bad]
    whole = predict_prepared(model, prepare_many(paths, model.config, workers=1, progress=False))
    by_record = {str(p): probs for p, probs in zip(paths, whole)}
    for result in results:
        expected = by_record[result["record"]]
        got = np.array([result["probabilities"][c] for c in model.meta["classes"]])
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_preparation_skips_what_a_model_does_not_read_with_identical_inputs():
    from pipeline.ecg.predict import resolve_model
    from pipeline.ecg.prepare import Needed

    cfg = EcgConfig()
    full = prepare_path(SAMPLE_ECG / "JS00007", cfg)
    signal_only = prepare_path(SAMPLE_ECG / "JS00007", cfg, needed=Needed(image=False))
    assert signal_only.image.size == 0 and full.image.size > 0
    np.testing.assert_array_equal(signal_only.signal, full.signal)
    np.testing.assert_array_equal(signal_only.features, full.features)
    image_only = prepare_path(SAMPLE_ECG / "JS00007", cfg, needed=Needed(features=False))
    assert image_only.features.size == 0
    np.testing.assert_array_equal(image_only.image, full.image)
    assert resolve_model("rule").needed == Needed(image=False, features=True)


def on_machine(monkeypatch, folder) -> None:
    """Switch to another "machine": a remote store's feature cache lives under the local temp dir."""
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


def spy_on_computing(monkeypatch) -> list[str]:
    """Names of the records ``prepare_record`` computes from now on."""
    from pipeline.ecg import prepare

    computed = []
    real = prepare.prepare_record
    monkeypatch.setattr(prepare, "prepare_record", lambda *a, **k: computed.append(a[0].name) or real(*a, **k))
    return computed


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """An empty remote store (``memory://``, one per test) and a rule config that trains in seconds."""
    from pipeline.store import Store

    monkeypatch.setenv("PIPELINE_WORK", str(tmp_path / "work"))
    store = Store.open(f"memory://feature-cache-{tmp_path.name}")
    assert not store.is_local
    return store, EcgConfig(name="remote-cache", model={"name": "rule"}, train={"folds": 2})


def test_training_on_another_machine_reuses_the_scalograms_the_flow_uploaded(tmp_path, monkeypatch, remote):
    """``ecg-train``'s scalogram step (one record per task, maybe on a Dask worker) uploads to a remote
    store; training on a machine with an empty disk used to compute them all again."""
    from pipeline.ecg.train import train_ecg

    store, cfg = remote
    on_machine(monkeypatch, tmp_path / "A")
    for path in find_records(SAMPLE_ECG):  # the flow's mapped scalogram step
        with shared_cache(store, cfg, [path]) as cache_dir:
            prepare_path(path, cfg, cache_dir)
    assert len(store.list_entries(*store_folder(cfg))[1]) == 12
    on_machine(monkeypatch, tmp_path / "B")
    computed = spy_on_computing(monkeypatch)
    result = train_ecg(cfg, SAMPLE_ECG, store=store, progress=False)
    assert computed == [] and result["metrics"]["n_records"] == 12
    assert len(list((tmp_path / "B").rglob("*.npz"))) == 12


def test_a_failed_upload_warns_once_and_training_completes(tmp_path, monkeypatch, remote, caplog):
    """Training uploads what it computed; when the store refuses, the model is still trained, and a
    later run on that machine uploads what the store lacks."""
    from pipeline.ecg.train import train_ecg
    from pipeline.store import Store

    store, cfg = remote
    on_machine(monkeypatch, tmp_path / "A")
    attempts, put_file = [], Store.put_file

    def refused(self, source, *parts):  # the feature cache only: publishing the model still works
        if parts[0] != "features":
            return put_file(self, source, *parts)
        attempts.append(parts)
        raise OSError("quota")

    monkeypatch.setattr(Store, "put_file", refused)
    caplog.set_level("WARNING", logger="pipeline.ecg.feature_store")
    result = train_ecg(cfg, SAMPLE_ECG, store=store, progress=False)
    assert result["metrics"]["n_records"] == 12 and len(attempts) == 1
    assert [r.getMessage() for r in caplog.records if "feature cache" in r.getMessage()] == [
        f"could not write the feature cache {store.uri(*store_folder(cfg))} (quota); "
        "other machines will compute them again"]
    monkeypatch.setattr(Store, "put_file", put_file)
    computed = spy_on_computing(monkeypatch)
    paths = find_records(SAMPLE_ECG)
    with shared_cache(store, cfg, paths) as cache_dir:
        prepare_many(paths, cfg, cache_dir, workers=1, progress=False)
    assert computed == [] and len(store.list_entries(*store_folder(cfg))[1]) == 12


def test_images_batched_on_a_torch_device_equal_worker_images_and_are_cached(tmp_path, one_thread):
    """The training path on CUDA (here CPU torch): workers defer the image, one batch computes it."""
    pytest.importorskip("torch")
    cfg = EcgConfig()
    paths = find_records(SAMPLE_ECG)[:3]
    batched = prepare_many(paths, cfg, tmp_path, workers=1, progress=False, image_device="cpu")
    reference = prepare_many(paths, cfg, workers=1, progress=False)
    for a, b in zip(batched, reference):
        assert a.pending is None and a.image.shape == b.image.shape
        np.testing.assert_allclose(a.image, b.image, atol=2e-4)
        np.testing.assert_array_equal(a.signal, b.signal)
    cached = prepare_path(paths[0], cfg, tmp_path)
    np.testing.assert_array_equal(cached.image, batched[0].image)
    assert len(list(tmp_path.glob("*/*.npz"))) == 3


@pytest.mark.parametrize("image_device", [None, "cpu"])
def test_training_images_land_in_one_bank_as_they_are_prepared(monkeypatch, image_device):
    """One copy of the images: each record's image is a row of the bank, and the scalogram arrays
    training builds are that bank (worker path, and the batched torch-device path)."""
    from pipeline.ecg import train as ecg_train

    if image_device:
        pytest.importorskip("torch")
    monkeypatch.setattr(ecg_train, "scalogram_device", lambda cfg: image_device)
    cfg = EcgConfig()
    reference = prepare_many(find_records(SAMPLE_ECG), cfg, workers=1, progress=False)
    dataset = ecg_train.load_dataset(cfg, SAMPLE_ECG, progress=False)
    assert dataset.bank is not None and len(dataset.bank_rows) == len(dataset.records)
    for record, row in zip(dataset.records, dataset.bank_rows):
        assert np.shares_memory(record.image, dataset.bank[row])
    arrays, _ = ecg_train.build_arrays(dataset, cfg, "scalogram")
    assert arrays.inputs is dataset.bank
    by_name = {r.name: r.image for r in reference if not isinstance(r, UserError)}
    stacked = arrays.input_batch(np.arange(len(arrays)))
    expected = np.stack([by_name[r.name] for r in dataset.records])
    np.testing.assert_allclose(stacked, expected, atol=2e-4 if image_device else 0)


def test_evaluation_in_worker_processes_equals_evaluation_here(tmp_path, monkeypatch):
    """Many records are prepared and classified in worker processes with single-threaded model
    copies, few in this process in batches; an unreadable record, chunk and batch boundaries and
    the ensemble's per-member breakdown come out the same."""
    from pipeline.ecg import evaluate, predict
    from pipeline.ecg.predict import resolve_model

    model = resolve_model("ecg-default")
    bad = tmp_path / "broken.hea"
    bad.write_text("not a header\n")
    paths = find_records(SAMPLE_ECG)
    jobs = paths[:4] + [bad] + paths[4:] + paths  # 21 jobs: the worker path, chunks of 8
    in_workers = evaluate.evaluate_paths(model, jobs, progress=False)
    monkeypatch.setattr(predict, "pool_size", lambda n, workers=None: 1)
    monkeypatch.setattr(predict.score_paths, "__defaults__", (3, False, None))  # batches of 3 here
    here = evaluate.evaluate_paths(model, jobs, progress=False)
    assert in_workers["n_records"] == here["n_records"] == 2 * len(paths) - here["n_skipped"] + 1
    assert [s["record"] for s in in_workers["skipped"]] == [s["record"] for s in here["skipped"]]
    assert in_workers["confusion"] == here["confusion"] and in_workers["errors"] == here["errors"]
    assert in_workers["calibration"]["ece"] == pytest.approx(here["calibration"]["ece"], abs=1e-4)
    assert in_workers["members"].keys() == here["members"].keys()
    for key, member in here["members"].items():
        assert in_workers["members"][key]["accuracy"] == member["accuracy"]
        assert in_workers["members"][key]["ece"] == pytest.approx(member["ece"], abs=1e-4)
