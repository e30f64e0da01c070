"""Lead x second explanations (issue 14): shapes, normalisation, and faithfulness on a synthetic
problem whose answer lives in one known lead."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.config import EcgConfig
from pipeline.labels import RhythmLabel
from tests.conftest import SAMPLE_ECG

KEY_LEAD = 7  # V2: the only lead that tells the classes apart
N_WINDOWS = 4
ROWS, COLS = 8, 32


def _synthetic_records(n: int, seed: int):
    """Noise everywhere; class AFIB (1) marks lead V2 in both views: the upper half of its
    scalogram band raised and the lower half lowered, an 8-Hz oscillation in its signal.

    Both marks have zero median, so the deletion test's fills (the lead's median in the
    scalogram, zero in the signal) really remove them.
    """
    from pipeline.ecg.prepare import PreparedRecord

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    records = []
    for i, label in enumerate(labels):
        image = rng.standard_normal((12 * ROWS, N_WINDOWS * COLS)).astype(np.float32)
        signal = rng.standard_normal((12, N_WINDOWS * 100)).astype(np.float32)
        if label:
            phase = rng.uniform(0, 2 * np.pi)
            image[KEY_LEAD * ROWS:KEY_LEAD * ROWS + ROWS // 2] += 3
            image[KEY_LEAD * ROWS + ROWS // 2:(KEY_LEAD + 1) * ROWS] -= 3
            signal[KEY_LEAD] += 2 * np.sin(2 * np.pi * 8 * np.arange(N_WINDOWS * 100) / 100 + phase)
        name = "AFIB" if label else "SB"
        records.append(PreparedRecord(f"syn{i}", image, signal, np.zeros(7, np.float32), RhythmLabel("ok", name, (name,))))
    return records, labels


def _train(name: str, args: dict, records, labels, steps: int = 80):
    import torch

    from pipeline.ecg.inputs import split_windows_torch
    from pipeline.models import create_model

    torch.manual_seed(0)
    net = create_model(name, n_classes=4, n_features=0, **args)
    if net.input_kind == "scalogram":
        x = split_windows_torch(torch.from_numpy(np.stack([r.image for r in records])), COLS)
    else:
        x = torch.from_numpy(np.stack([r.signal for r in records]))
    y = torch.from_numpy(labels)
    features = torch.zeros(len(records), 1)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x, features), y).backward()
        optimiser.step()
    return net.eval()


def _config(name: str, model: str = "cnn1d", args: dict | None = None) -> EcgConfig:
    return EcgConfig.model_validate({"name": name, "model": {"name": model, "args": args or {}},
                                     "scalogram": {"scale_rows_per_lead": ROWS, "time_cols_per_window": COLS}})


@pytest.fixture(scope="module")
def synthetic_models(tmp_path_factory):
    """A tiny cnn_lstm and cnn1d trained on the synthetic problem, and their ensemble (saved and loaded)."""
    from pipeline.ecg.bundle import load_bundle, member_meta, save_ensemble

    records, labels = _synthetic_records(24, seed=0)
    folder = tmp_path_factory.mktemp("synthetic-ensemble")
    members = []
    for name, args in (("cnn_lstm", {"channels": [4, 8, 8], "embed": 16, "hidden": 8}), ("cnn1d", {"channels": [8, 16]})):
        net = _train(name, args, records, labels)
        members.append((member_meta(_config(name, name, args), net.input_kind, 0, name), net))
    save_ensemble(folder, _config("synthetic"), members, weights=[0.5, 0.5], temperature=1.0)
    ensemble = load_bundle(folder, "torch")
    test_records, _ = _synthetic_records(8, seed=1)
    return {"ensemble": ensemble, "cnn_lstm": ensemble.members[0], "cnn1d": ensemble.members[1],
            "records": [r for r in test_records if r.label.label == "AFIB"]}


@pytest.mark.parametrize("which", ["cnn_lstm", "cnn1d", "ensemble"])
def test_saliency_finds_the_lead_that_holds_the_answer(synthetic_models, which):
    from pipeline.ecg.explain import Explainer

    explainer = Explainer(synthetic_models[which])
    salient, random = [], []
    for record in synthetic_models["records"]:
        result = explainer.explain(record)
        saliency = np.asarray(result["saliency"])
        assert result["label"] == "AFIB"
        assert saliency.shape == (12, N_WINDOWS) and (saliency >= 0).all()
        assert saliency.sum() == pytest.approx(1.0, abs=1e-3)
        assert saliency.sum(axis=1).argmax() == KEY_LEAD
        salient.append(result["deletion"]["drop_salient"])
        random.append(result["deletion"]["drop_random"])
    # the faithfulness check: removing the salient 10% hurts far more than removing random cells
    assert np.mean(salient) > 2 * np.mean(random) and np.mean(salient) > 0.2, (salient, random)


def test_occlusion_fills_lead_median_in_the_image_and_zero_in_the_signal():
    from pipeline.ecg.explain import occlude

    (record,), _ = _synthetic_records(1, seed=2)
    cells = np.zeros((12, N_WINDOWS), dtype=bool)
    cells[3, 2] = True
    out = occlude(record, cells)
    block = out.image[3 * ROWS:4 * ROWS, 2 * COLS:3 * COLS]
    assert np.all(block == np.median(record.image[3 * ROWS:4 * ROWS]))
    assert np.all(out.signal[3, 200:300] == 0) and np.count_nonzero(out.signal[3]) == 100 * (N_WINDOWS - 1)
    changed = np.argwhere(out.image != record.image)
    assert changed[:, 0].min() >= 3 * ROWS and changed[:, 0].max() < 4 * ROWS
    assert np.array_equal(record.image[0], out.image[0])  # the input is not modified


def test_normalise_is_non_negative_and_sums_to_one():
    from pipeline.ecg.explain import normalise

    out = normalise(np.array([[-1.0, 3.0], [1.0, 0.0]]))
    np.testing.assert_allclose(out, [[0, 0.75], [0.25, 0]])
    np.testing.assert_allclose(normalise(np.zeros((12, 10))), 1 / 120)


def test_explain_cli_json_and_picture(cli, tmp_path):
    result = cli("explain", SAMPLE_ECG / "JS00007.mat", SAMPLE_ECG / "JS00012", "--json", "-o", tmp_path)
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [line["record"].rsplit("/", 1)[-1] for line in lines] == ["JS00007.mat", "JS00012"]
    for line in lines:
        assert set(line) == {"record", "label", "probabilities", "leads", "saliency", "deletion"}
        saliency = np.asarray(line["saliency"])
        assert saliency.shape == (12, 10) and saliency.min() >= 0 and saliency.sum() == pytest.approx(1.0, abs=1e-3)
        assert line["deletion"]["fraction"] == 0.1 and {"drop_salient", "drop_random"} <= set(line["deletion"])
    assert (tmp_path / "JS00007.png").stat().st_size > 20_000


def test_explain_refuses_the_rule_baseline_in_one_line(cli):
    result = cli("explain", SAMPLE_ECG / "JS00007.mat", "--model", "rule")
    assert result.code == 2 and result.err.startswith("error: the rule baseline has no saliency map")
