"""Mask networks: shapes, gradients, learning a separable toy problem, ONNX agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.svs.models import Lin2018, count_parameters, create_separator
from svs_util import tiny_bundle, tiny_config, toy_stems, one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("frames", [1, 37, 128])
def test_fcn_keeps_shape_for_any_length(frames):
    model = create_separator("fcn", 129, channels=(4, 8, 8)).eval()
    x = torch.randn(2, 129, frames)
    assert model(x).shape == x.shape


def test_fcn_every_parameter_gets_a_gradient():
    model = create_separator("fcn", 65, channels=(4, 8))
    model(torch.randn(2, 65, 16)).pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_lin2018_is_config_exact_and_centre_frame_matches_forward():
    model = create_separator("lin2018", 2049).eval()
    assert count_parameters(model) == 19_489_049  # the authors' count (01_parmInit_AE.py)
    x = torch.rand(3, 2049, 9)
    with torch.no_grad():
        full = model(x)
        centre = model.centre_logits(x)
    assert full.shape == x.shape and centre.shape == (3, 2049)
    assert torch.allclose(full[:, :, 4], centre, atol=1e-5)


def test_lin2018_sliding_inference_covers_every_frame():
    model = Lin2018(n_bins=60, frames=9, dense=(32, 16)).eval()
    x = torch.rand(1, 60, 23)
    with torch.no_grad():
        out = model.mask_logits(x, batch=5)
        padded = torch.nn.functional.pad(x, (4, 4))
        frame7 = model.centre_logits(padded[:, :, 7:16])
    assert out.shape == x.shape
    assert torch.allclose(out[0, :, 7], frame7[0], atol=1e-5)


def test_unknown_model_is_a_user_error():
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="unknown separator"):
        create_separator("nope", 10)


def test_tiny_fcn_learns_a_separable_toy_problem():
    from pipeline.svs.transforms import features, ideal_binary_mask, stft

    torch.manual_seed(0)
    cfg = tiny_config().stft
    pairs = [toy_stems(0.5, seed=s) for s in range(2)]
    v = stft(torch.from_numpy(np.stack([p[0] for p in pairs])), cfg)
    a = stft(torch.from_numpy(np.stack([p[1] for p in pairs])), cfg)
    x, y = features((v + a).abs(), "log"), ideal_binary_mask(v, a, (0.0, 1.0))
    first, last, accuracy = fit_toy(create_separator("fcn", cfg.n_bins, channels=(4, 8)), x, y, lr=1e-2)
    assert last < 0.5 * first
    assert accuracy > 0.9


def fit_toy(model, x, y, lr: float, steps: int = 40) -> tuple[float, float, float]:
    """Adam on BCE for ``steps``: first loss, last loss, bin accuracy after."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    first = loss_fn(model(x), y).item()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # train-mode BatchNorm: 40 steps are too few for the running statistics
        accuracy = ((model(x) > 0).float() == y).float().mean().item()
    return first, loss.item(), accuracy


def test_onnx_export_agrees_with_torch(tmp_path):
    from pipeline.svs.bundle import load_bundle

    folder = tiny_bundle(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} >= {"model.json", "model.pt", "model.onnx"}
    feats = np.random.default_rng(0).random((1, 129, 50)).astype(np.float32)
    by_onnx = load_bundle(folder, "onnx").runner.mask_logits(feats)
    by_torch = load_bundle(folder, "torch").runner.mask_logits(feats)
    assert by_onnx.shape == by_torch.shape == feats.shape
    assert np.allclose(by_onnx, by_torch, atol=1e-4)


def test_lin2018_onnx_export_agrees_with_torch(tmp_path):
    from pipeline.svs.bundle import load_bundle, save_bundle
    from pipeline.svs.config import SvsConfig

    cfg = SvsConfig.model_validate({"name": "lin-tiny", "stft": {"n_fft": 118, "win_length": 118, "hop": 32},
                                    "model": {"name": "lin2018", "args": {"dense": [32, 16]}}})
    model = create_separator("lin2018", cfg.stft.n_bins, **cfg.model.args)
    save_bundle(tmp_path / "lin", cfg, model)
    feats = np.random.default_rng(0).random((1, 60, 15)).astype(np.float32)
    by_onnx = load_bundle(tmp_path / "lin", "onnx").runner.mask_logits(feats)
    by_torch = load_bundle(tmp_path / "lin", "torch").runner.mask_logits(feats)
    assert by_onnx.shape == feats.shape
    assert np.allclose(by_onnx, by_torch, atol=1e-4)


def test_bin_weights_put_the_loss_where_the_energy_is():
    from pipeline.svs.train import bin_weights

    mag = torch.rand(3, 17, 11) * torch.linspace(0.01, 10.0, 17)[:, None]
    assert bin_weights(mag, 0.0) is None  # the paper's plain cross-entropy
    w = bin_weights(mag, 0.5)
    assert w.shape == mag.shape
    assert torch.allclose(w.mean(dim=(1, 2)), torch.ones(3), atol=1e-5)
    ratio = w / mag.sqrt()  # proportional to sqrt(|M|) within each patch
    assert torch.allclose(ratio, ratio[:, :1, :1].expand_as(ratio), rtol=1e-4)
    silent = bin_weights(torch.zeros(1, 4, 4), 1.0)
    assert torch.isfinite(silent).all()


def test_level_normalised_training_batches_do_not_depend_on_the_input_gain():
    from pydantic import ValidationError

    from pipeline.svs.config import SvsAugment, SvsConfig
    from pipeline.svs.data import PatchSampler
    from pipeline.svs.train import _batch_tensors, patch_gains

    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(16000).astype(np.float32), rng.standard_normal(16000).astype(np.float32))]
    cfg = SvsConfig.model_validate({"stft": {"n_fft": 256, "win_length": 256, "hop": 64},
                                    "train": {"input_rms_db": -26.0, "augment": {"shift_p": 0.0}},
                                    "separate": {"input_rms_db": -26.0}})

    def batch(gain_db: float):
        augment = SvsAugment(remix_p=0.0, gain_db=(gain_db, gain_db), shift_p=0.0)
        return _batch_tensors(PatchSampler(waves, 64, 32, augment, seed=1), cfg, 3)

    quiet, loud = batch(-20.0), batch(0.0)
    assert torch.allclose(quiet[0], loud[0], atol=1e-4)  # the network's input: same patch, same features
    assert torch.equal(quiet[2], loud[2])  # IBM labels untouched by a common gain
    mixture = rng.standard_normal((2, 4000)) * np.array([[0.01], [1.0]])
    levels = 20 * np.log10(np.sqrt(np.mean((patch_gains(mixture, -26.0) * mixture) ** 2, axis=1)))
    assert np.allclose(levels, -26.0, atol=1e-4)
    assert patch_gains(np.zeros((1, 10)), -26.0)[0, 0] == 1.0
    with pytest.raises(ValidationError, match="must be fed that level"):
        SvsConfig.model_validate({"train": {"input_rms_db": -26.0}})
    with pytest.raises(ValidationError, match="greater than or equal to -100"):  # below any real recording's floor
        SvsConfig.model_validate({"separate": {"input_rms_db": -500.0}})


@pytest.mark.parametrize("stem_levels", [0, 2])
@pytest.mark.parametrize("bins,frames", [(129, 1), (65, 37), (33, 101)])
def test_hourglass_keeps_shape_for_odd_sizes(bins, frames, stem_levels):
    model = create_separator("hourglass", bins, stacks=2, channels=8, depth=3, stem_levels=stem_levels).eval()
    x = torch.randn(2, bins, frames)
    with torch.no_grad():
        stacks = model.stack_logits(x)
        out = model(x)
    assert out.shape == x.shape
    assert len(stacks) == 3 and all(s.shape[0] == 2 for s in stacks)
    assert torch.equal(stacks[-1], out)


def test_hourglass_onnx_export_agrees_with_torch(tmp_path):
    from pipeline.svs.bundle import load_bundle, save_bundle
    from pipeline.svs.config import SvsConfig

    cfg = SvsConfig.model_validate({"name": "hg-tiny", "stft": {"n_fft": 256, "win_length": 256, "hop": 64},
                                    "model": {"name": "hourglass", "args": {"stacks": 2, "channels": 8, "depth": 3}}})
    torch.manual_seed(0)
    model = create_separator(cfg.model.name, cfg.stft.n_bins, **cfg.model.args)
    save_bundle(tmp_path / "hg", cfg, model)
    feats = np.random.default_rng(0).random((1, 129, 53)).astype(np.float32)
    by_onnx = load_bundle(tmp_path / "hg", "onnx").runner.mask_logits(feats)
    by_torch = load_bundle(tmp_path / "hg", "torch").runner.mask_logits(feats)
    assert by_onnx.shape == by_torch.shape == feats.shape
    assert np.allclose(by_onnx, by_torch, atol=1e-4)


def test_tiny_hourglass_learns_a_separable_toy_problem():
    """Mask = every bin whose energy is above a threshold; 40 steps bring the loss well down."""
    torch.manual_seed(0)
    x = torch.rand(4, 33, 24) * 3.0
    y = (x > 1.5).float()
    model = create_separator("hourglass", 33, stacks=2, channels=8, depth=2, stem_levels=1)
    first, last, accuracy = fit_toy(model, x, y, lr=2e-2)
    assert last < 0.5 * first
    assert accuracy > 0.9


@pytest.mark.parametrize("name,args", [("fcn", {"channels": (4, 8, 8)}),
                                       ("hourglass", {"stacks": 2, "channels": 8, "depth": 2, "stem_levels": 1})])
def test_multiresolution_networks_take_channels_and_return_one_mask(name, args):
    model = create_separator(name, 65, in_channels=3, **args).eval()
    single = create_separator(name, 65, **args)
    assert count_parameters(model) > count_parameters(single)
    x = torch.randn(2, 3, 65, 37)
    with torch.no_grad():
        assert model(x).shape == (2, 65, 37)
    with pytest.raises(Exception, match="lin2018 takes one input channel"):
        create_separator("lin2018", 65, in_channels=3)


def test_multiresolution_bundle_exports_trains_and_separates(tmp_path):
    """A model with stft.extra_windows: training batches, ONNX = torch, separation through ONNX."""
    from pipeline.errors import UserError
    from pipeline.svs.bundle import load_bundle, save_bundle
    from pipeline.svs.config import SvsAugment
    from pipeline.svs.data import PatchSampler
    from pipeline.svs.separate import separate_array, voice_mask
    from pipeline.svs.spectral import stft
    from pipeline.svs.train import _batch_tensors

    base = tiny_config().model_dump()
    cfg = type(tiny_config()).model_validate({**base, "stft": {**base["stft"], "extra_windows": [128, 512]}})
    voice, acc = toy_stems(1.0)
    sampler = PatchSampler([(voice, acc)], 64, 32, SvsAugment(shift_p=1.0), seed=0)
    mix, vfeat, label, _ = _batch_tensors(sampler, cfg, 2)
    assert mix.shape == vfeat.shape == (2, 3, 129, 32) and label.shape == (2, 129, 32)
    torch.manual_seed(0)
    model = create_separator(cfg.model.name, cfg.stft.n_bins, in_channels=cfg.stft.in_channels, **cfg.model.args)
    save_bundle(tmp_path / "mr", cfg, model, extra={"run_id": "mr-run"})
    feats = np.random.default_rng(0).random((1, 3, 129, 41)).astype(np.float32)
    by_onnx, by_torch = (load_bundle(tmp_path / "mr", b).runner.mask_logits(feats) for b in ("onnx", "torch"))
    assert by_onnx.shape == (1, 129, 41) and np.allclose(by_onnx, by_torch, atol=1e-4)
    sep = load_bundle(tmp_path / "mr", "onnx")
    audio = (voice + acc)[None, :8000]
    assert separate_array(audio, sep).shape == audio.shape
    with pytest.raises(UserError, match="multi-resolution"):
        voice_mask(stft(audio, cfg.stft), sep)
