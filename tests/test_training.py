"""The fit loop learns a separable problem, weights classes, and resumes after an interruption; the
training data a config names."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pipeline.config import REPO_ROOT, EcgAugment, EcgConfig
from pipeline.ecg.inputs import augment_batch, make_input_fn, split_windows_torch
from pipeline.ecg.train import training_sources
from pipeline.errors import UserError
from pipeline.models import create_model
from pipeline.training import ArrayData, class_weights, fit, predict_logits


def _toy(n=96, seed=0):
    """Class = which of 4 frequencies the 12 leads oscillate at (plus noise)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    t = np.arange(400) / 100
    x = np.stack([np.sin(2 * np.pi * (1 + 2 * y) * t + rng.uniform(0, 6)) for y in labels])
    signals = x[:, None, :] * rng.uniform(0.5, 1.5, (n, 12, 1)) + 0.3 * rng.standard_normal((n, 12, 400))
    return ArrayData(signals.astype(np.float32), np.zeros((n, 1), np.float32), labels)


def _fit(model, data, epochs, checkpoint=None, stop_after_batches=None, patience=50, keep_last=False):
    no_aug = EcgAugment(time_shift=False, lead_dropout_p=0, gain_db=0)
    to_input = make_input_fn("signal", 32, no_aug)
    calls = {"train": 0}

    def maybe_interrupted(batch, train):
        if train:
            calls["train"] += 1
            if stop_after_batches is not None and calls["train"] > stop_after_batches:
                raise KeyboardInterrupt  # the machine went away mid-epoch
        return to_input(batch, train)

    return fit(
        model, data.subset(np.arange(64)), data.subset(np.arange(64, 96)), epochs=epochs, batch_size=16, lr=5e-3,
        weight_decay=0, patience=patience, device=torch.device("cpu"), to_model_input=maybe_interrupted,
        n_classes=4, checkpoint=checkpoint, progress=False, keep_last=keep_last,
    )


@pytest.mark.parametrize("name", ["cnn1d", "resnet1d"])
def test_signal_networks_learn_a_separable_problem(name):
    torch.manual_seed(0)
    data = _toy()
    model = create_model(name, n_classes=4, channels=[8, 16])
    _fit(model, data, epochs=12)
    held_out = _toy(40, seed=1)
    logits = predict_logits(model, held_out, torch.device("cpu"), make_input_fn("signal", 32, EcgAugment()))
    assert (logits.argmax(1) == held_out.labels).mean() > 0.9


def test_training_resumes_from_checkpoint(tmp_path):
    data = _toy()
    checkpoint = tmp_path / "last.pt"
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):  # 4 batches per epoch: dies in the third epoch
        _fit(create_model("cnn1d", n_classes=4, channels=[8, 16]), data, epochs=5, checkpoint=checkpoint,
             stop_after_batches=10)
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    resumed = _fit(create_model("cnn1d", n_classes=4, channels=[8, 16]), data, epochs=5, checkpoint=checkpoint)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2, 3, 4]


def test_keep_last_trains_every_epoch_and_lets_the_held_out_part_choose_nothing():
    """Cross-fitting: the fold scored out-of-fold must not pick the epoch (nor stop training)."""
    data = _toy()
    data.labels[64:] = (data.labels[64:] + 1) % 4  # validation labels the model gets worse at as it learns
    torch.manual_seed(0)
    stopped = _fit(create_model("cnn1d", n_classes=4, channels=[8, 16]), data, epochs=8, patience=1)
    torch.manual_seed(0)
    model = create_model("cnn1d", n_classes=4, channels=[8, 16])
    last = _fit(model, data, epochs=8, patience=1, keep_last=True)
    assert len(stopped.history) < 8 == len(last.history)  # patience 1 stops the default early here
    assert last.best_epoch == 7
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, last.state_dict[name])


def test_each_epoch_is_logged_for_the_flow_logs(caplog):
    """Flows train with progress bars off; the per-epoch lines reach Prefect through the logger."""
    caplog.set_level(logging.INFO, logger="pipeline.training")
    torch.manual_seed(0)
    _fit(create_model("cnn1d", n_classes=4, channels=[4, 8]), _toy(), epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.training"]
    assert len(lines) == 2 and lines[1].startswith("train: epoch 2/2, train loss")


def test_class_weights_balance_counts():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert torch.allclose(weights, torch.tensor([4 / 9, 4 / 3, 1.0]))


def test_augmentations_keep_shape_and_content():
    x = torch.arange(2 * 24 * 20, dtype=torch.float32).reshape(2, 24, 20)
    shifted = augment_batch(x, EcgAugment(time_shift=True, lead_dropout_p=0, gain_db=0))
    assert shifted.shape == x.shape
    assert torch.equal(torch.sort(shifted, dim=2).values, torch.sort(x, dim=2).values)  # a roll keeps the values
    dropped = augment_batch(x, EcgAugment(time_shift=False, lead_dropout_p=1.0, gain_db=0), additive_gain=False)
    assert torch.count_nonzero(dropped) == 0
    windows = split_windows_torch(x, 5)
    assert windows.shape == (2, 4, 24, 5) and torch.equal(windows[:, 1], x[:, :, 5:10])


def test_training_sources_start_at_the_repository_root(tmp_path, monkeypatch):
    """The CLI and the flows pick the same folders, wherever they run (a worker's folder is elsewhere)."""
    monkeypatch.chdir(tmp_path)
    cfg = EcgConfig(data=["samples/ecg", "/data/other", "s3://bucket/ecg"])
    assert training_sources(cfg) == [str(REPO_ROOT / "samples" / "ecg"), "/data/other", "s3://bucket/ecg"]
    assert training_sources(EcgConfig(data="samples/ecg")) == [str(REPO_ROOT / "samples" / "ecg")]
    assert training_sources(cfg, [tmp_path]) == [str(tmp_path)]  # --data / data= as given
    with pytest.raises(UserError, match="no training data"):
        training_sources(EcgConfig())


def test_a_disk_backed_image_bank_trains_exactly_like_arrays_in_memory():
    from pipeline.ecg.image_bank import ImageBank

    data = _toy()
    bank = ImageBank(len(data) + 5, max_ram_bytes=0)  # forced onto disk; 5 rows never filled (skipped records)
    order = np.random.default_rng(1).permutation(len(data) + 5)[: len(data)]  # records land in any row
    for sample, row in enumerate(order):
        bank.keep(int(row), data.inputs[sample])
    assert bank.on_disk and bank.filled.sum() == len(data)
    banked = ArrayData(bank.array, data.features, data.labels, rows=order)
    fold = banked.subset(np.arange(10, 30))
    assert fold.inputs is bank.array  # a subset is an index, not a copy
    assert np.array_equal(fold.input_batch([0, 5]), data.inputs[[10, 15]])

    torch.manual_seed(0)
    in_memory = _fit(create_model("cnn1d", n_classes=4, channels=[8, 16]), data, epochs=2).state_dict
    torch.manual_seed(0)
    from_bank = _fit(create_model("cnn1d", n_classes=4, channels=[8, 16]), banked, epochs=2).state_dict
    assert all(torch.equal(in_memory[k], from_bank[k]) for k in in_memory)
    model = create_model("cnn1d", n_classes=4, channels=[8, 16])
    logits = [predict_logits(model, d, torch.device("cpu"), lambda x, train: x, batch_size=40) for d in (data, banked)]
    assert logits[0].shape == (96, 4) and np.array_equal(logits[0], logits[1])  # batches of 40: a ragged last one
    assert bank.keep(0, np.zeros((3, 3))).shape == (3, 3)  # another shape is left out of the bank
