"""ECG networks: shapes, finite outputs, gradients everywhere, timm weight loading, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import EcgConfig
from pipeline.errors import UserError
from pipeline.models import available_models, create_model

SMALL = {
    "timm_cnn": {"backbone": "resnet18"}, "cnn_lstm": {"channels": [4, 8]}, "cnn1d": {"channels": [8, 16]},
    "resnet1d": {"channels": [8, 16, 16]},
}


def _inputs(model, batch=3, windows=10):
    if model.input_kind == "scalogram":
        return torch.randn(batch, windows, 96, 32)
    return torch.randn(batch, 12, windows * 100)


def test_registry_lists_every_model():
    assert set(available_models()) == {"timm_cnn", "cnn_lstm", "cnn1d", "resnet1d"}
    with pytest.raises(ValueError, match="choose one of"):
        create_model("resnet9000", n_classes=4)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("n_features", [0, 6])
def test_forward_shape_and_every_parameter_gets_a_gradient(name, n_features):
    torch.manual_seed(0)
    model = create_model(name, n_classes=4, n_features=n_features, **SMALL[name])
    x = _inputs(model)
    logits = model(x, torch.randn(3, max(n_features, 1)))
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    logits.sum().backward()
    # timm zero-initialises the last BatchNorm of each residual block, so some gradients are exactly 0
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn1d", "resnet1d"])
def test_variable_record_length(name):
    model = create_model(name, n_classes=4, **SMALL[name]).eval()
    for windows in (8, 15):
        assert model(_inputs(model, 2, windows), torch.zeros(2, 1)).shape == (2, 4)


def _receptive_field_samples(encode, samples=1000) -> int:
    """Input samples that reach the middle position of the last feature map (nonzero gradient)."""
    x = torch.randn(1, 12, samples, requires_grad=True)
    hidden = encode(x)
    hidden[0, :, hidden.shape[-1] // 2].sum().backward()
    reached = np.flatnonzero(x.grad[0].abs().sum(0).numpy())
    return int(reached[-1] - reached[0] + 1)


def test_resnet1d_sees_several_beats_where_cnn1d_sees_one():
    """The reason resnet1d exists: at 100 Hz its last layer spans > 2 s (two or three beats), cnn1d's ~1 s."""
    torch.manual_seed(0)
    resnet = create_model("resnet1d", n_classes=4).eval()
    plain = create_model("cnn1d", n_classes=4).eval()
    assert _receptive_field_samples(lambda x: resnet.blocks(resnet.stem(x))) > 200
    assert _receptive_field_samples(plain.encoder) < 120
    with pytest.raises(ValueError, match="odd"):
        create_model("resnet1d", n_classes=4, kernel=8)


def test_timm_local_weights_file_is_loaded(tmp_path):
    import timm

    reference = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=3)
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    model = create_model("timm_cnn", n_classes=4, backbone="resnet18", pretrained=str(weights))
    # timm folds the 3-channel stem into 1 channel by summing over input channels
    np.testing.assert_allclose(
        model.backbone.conv1.weight.detach().numpy(),
        reference.conv1.weight.detach().sum(dim=1, keepdim=True).numpy(), rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_array_equal(model.backbone.layer4[1].conv2.weight.detach().numpy(),
                                  reference.layer4[1].conv2.weight.detach().numpy())


def test_timm_missing_weights_file_and_offline_hub(tmp_path, monkeypatch):
    import timm

    with pytest.raises(UserError, match="not found"):
        create_model("timm_cnn", n_classes=4, pretrained=str(tmp_path / "nope.pth"))
    real_create = timm.create_model

    def offline(name, pretrained=False, **kwargs):  # what the hub download does without a network
        if pretrained and "pretrained_cfg_overlay" not in kwargs:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real_create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(UserError, match="local weights file"):
        create_model("timm_cnn", n_classes=4, backbone="resnet18", pretrained="imagenet")


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn1d", "resnet1d"])
def test_onnx_export_matches_torch(tmp_path, name):
    from pipeline.ecg.bundle import ONNX, load_bundle, save_bundle

    cfg = EcgConfig()
    cfg.model.name = name
    cfg.model.args = SMALL[name]
    cfg.scalogram.scale_rows_per_lead, cfg.scalogram.time_cols_per_window = 8, 32
    model = create_model(name, n_classes=4, n_features=6, **SMALL[name]).eval()
    save_bundle(tmp_path, cfg, model, model.input_kind, 6)
    assert (tmp_path / ONNX).is_file()
    x = _inputs(model, 2, 12).numpy()  # more windows than the export example: dynamic axes work
    features = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    onnx_logits = load_bundle(tmp_path, "onnx").runner.logits(x, features)
    torch_logits = load_bundle(tmp_path, "torch").runner.logits(x, features)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_creates_no_tensor_off_the_input_device(name):
    """On the meta device any tensor made on the CPU inside forward raises: a CPU stand-in for CUDA runs."""
    model = create_model(name, n_classes=4, n_features=6, **SMALL[name]).to("meta")
    x = _inputs(model).to("meta")
    assert model(x, torch.randn(3, 6, device="meta")).shape == (3, 4)


def test_training_bench_cases_keep_every_tensor_on_the_model_device():
    from bench.train import ecg_case, separator_case

    for model, loss_fn, x in (ecg_case("cnn_lstm", {"channels": [4, 8]}, 2), separator_case(2)):
        assert loss_fn(model.to("meta"), x.to("meta")).device.type == "meta"
