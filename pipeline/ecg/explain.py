"""Where in the ECG: a lead x second saliency map from the model's own computation, and the
deletion test that checks the map is faithful (removing the salient cells must hurt more
than removing random ones).

Scalogram networks get Grad-CAM on their last 4-D feature map (the window image stacks the
12 leads row-wise, so a row band of the map is a lead); the 1-D CNN gets integrated
gradients from a flat (zero) signal, summed per lead per second; an ensemble averages its
members' maps with its own weights. torch is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.ecg.bundle import WEIGHTS, LoadedModel, TorchRunner
from pipeline.ecg.predict import cascade_exits, ensemble_probabilities, member_probabilities, predict_prepared
from pipeline.ecg.prepare import SIGNAL_RATE_HZ, PreparedRecord
from pipeline.errors import UserError
from pipeline.io.ecg import STANDARD_LEADS
from pipeline.transforms.rhythm import feature_vector_for_network
from pipeline.transforms.scalogram import split_windows

N_LEADS = len(STANDARD_LEADS)
DELETION_FRACTION = 0.1
N_RANDOM_SETS = 10


class Explainer:
    """Saliency maps and deletion tests for one model (its torch networks are built once)."""

    def __init__(self, model: LoadedModel):
        if model.runner is None and not model.members:
            raise UserError("the rule baseline has no saliency map (it decides from heart rate and RR "
                            "irregularity, not from lead-seconds); pass a trained model with --model")
        self.model = model
        parts = model.members or [model]
        weights = model.meta["weights"] if model.members else [1.0]
        self.nets = [(float(w), part.meta, _torch_network(part)) for w, part in zip(weights, parts)]

    def saliency(self, record: PreparedRecord, target: int, exited: bool | None = None) -> np.ndarray:
        """(12, n_windows), non-negative, summing to 1: evidence for class ``target`` per lead-second
        (for a record an ensemble's cascade lets its signal members decide, theirs alone; ``exited``
        says whether it does when the caller already knows, else the members are run to find out)."""
        nets = self.nets
        if self.model.meta.get("cascade"):
            if exited is None:
                exited = bool(cascade_exits(self.model, member_probabilities(self.model, [record]))[0])
            if exited:
                nets = [self.nets[i] for i in self.model.meta["cascade"]["members"]]
        total = sum(weight * normalise(_network_saliency(net, meta, record, target)) for weight, meta, net in nets)
        return normalise(total)

    def explain(self, record: PreparedRecord) -> dict:
        """Predicted label, probabilities, saliency (for the predicted class) and the deletion test."""
        classes = self.model.meta["classes"]
        exited = None
        if self.model.members:  # every member once: the probabilities and, for a cascade, who decided
            per_member = member_probabilities(self.model, [record])
            probs = ensemble_probabilities(self.model, per_member)[0]
            exited = bool(cascade_exits(self.model, per_member)[0])
        else:
            probs = predict_prepared(self.model, [record])[0]
        target = int(probs.argmax())
        saliency = self.saliency(record, target, exited)
        return {
            "record": record.name,
            "label": classes[target],
            "probabilities": {c: round(float(p), 4) for c, p in zip(classes, probs)},
            "leads": list(STANDARD_LEADS),
            "saliency": np.round(saliency, 5).tolist(),
            "deletion": deletion_test(self.model, record, saliency, target),
        }


def normalise(saliency: np.ndarray) -> np.ndarray:
    """Clip at zero and scale to sum 1 (uniform when nothing is positive)."""
    saliency = np.clip(np.nan_to_num(np.asarray(saliency, dtype=np.float64)), 0.0, None)
    total = saliency.sum()
    return saliency / total if total > 0 else np.full_like(saliency, 1.0 / saliency.size)


def _torch_network(model: LoadedModel):
    """The torch module behind a loaded model, whichever backend predicts with it."""
    if isinstance(model.runner, TorchRunner):
        return model.runner.model
    return TorchRunner(model.folder / model.meta.get("weights_file", WEIGHTS), model.meta).model


def _network_saliency(net, meta: dict, record: PreparedRecord, target: int) -> np.ndarray:
    import torch

    from pipeline.config import EcgConfig

    features = feature_vector_for_network(record.features[None]) if meta["n_features"] else np.zeros((1, 1), np.float32)
    features = torch.from_numpy(np.asarray(features, dtype=np.float32))
    spec = EcgConfig.model_validate(meta["config"]).scalogram
    if meta["input_kind"] == "scalogram":
        x = torch.from_numpy(split_windows(record.image, spec.time_cols_per_window)[None].astype(np.float32))
        return grad_cam(net, x, features, target)
    x = torch.from_numpy(record.signal[None].astype(np.float32))
    n_windows = int(record.signal.shape[1] // (SIGNAL_RATE_HZ * spec.window_s))
    return integrated_gradients(net, x, features, target, n_windows)


def grad_cam(net, x, features, target: int) -> np.ndarray:
    """Grad-CAM per window image, averaged within each lead's row band.

    The last module to output a 4-D (images, channels, rows, cols) tensor is taken as the
    last conv feature map (the encoder of ``cnn_lstm``, ``layer4`` of a timm ResNet).

    Args:
        x: (1, windows, rows, cols) stacked scalograms.
    Returns:
        (12, windows), unnormalised, non-negative.
    """
    import torch
    import torch.nn.functional as F

    maps = []

    def keep(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            maps.append(output)

    hooks = [m.register_forward_hook(keep) for m in net.modules() if m is not net]
    try:
        with torch.enable_grad():
            logits = net(x, features)
            activation = maps[-1]
            (gradient,) = torch.autograd.grad(logits[0, target], activation)
    finally:
        for hook in hooks:
            hook.remove()
    cam = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1, keepdim=True))
    per_lead = F.adaptive_avg_pool2d(cam, (N_LEADS, 1))[:, 0, :, 0]  # (windows, 12)
    return per_lead.T.detach().numpy()


def integrated_gradients(net, x, features, target: int, n_windows: int, steps: int = 32) -> np.ndarray:
    """Integrated gradients from the zero signal (the filtered signal's baseline), summed per
    lead-second; negative sums (evidence against the class) are dropped.

    Args:
        x: (1, 12, samples) filtered normalised signal.
    Returns:
        (12, n_windows), unnormalised, non-negative.
    """
    import torch

    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps)[:, None, None]
    path = (alphas * x).requires_grad_(True)
    with torch.enable_grad():
        logits = net(path, features.expand(steps, -1))
        (gradient,) = torch.autograd.grad(logits[:, target].sum(), path)
    attribution = (x[0] * gradient.mean(dim=0))[:, : n_windows * (x.shape[-1] // n_windows)]
    per_second = attribution.reshape(x.shape[1], n_windows, -1).sum(dim=-1)
    return per_second.clamp(min=0).detach().numpy()


def occlude(record: PreparedRecord, cells: np.ndarray) -> PreparedRecord:
    """A copy with the lead-seconds in ``cells`` ((12, windows) bool) removed from both views:
    the scalogram block set to that lead's median value, the signal set to zero (its baseline).

    The rhythm features are kept: they are not lead-second inputs.
    """
    image, signal = record.image.copy(), record.signal.copy()
    n_windows = cells.shape[1]
    rows = image.shape[0] // N_LEADS
    cols = image.shape[1] // n_windows
    samples = signal.shape[1] // n_windows
    medians = np.median(image.reshape(N_LEADS, -1), axis=1)
    for lead, window in zip(*np.nonzero(cells)):
        image[lead * rows:(lead + 1) * rows, window * cols:(window + 1) * cols] = medians[lead]
        signal[lead, window * samples:(window + 1) * samples] = 0.0
    return dataclasses.replace(record, image=image, signal=signal)


def deletion_test(model: LoadedModel, record: PreparedRecord, saliency: np.ndarray, target: int,
                  fraction: float = DELETION_FRACTION, n_random: int = N_RANDOM_SETS, seed: int = 0) -> dict:
    """Fall of the ``target`` probability when the most salient ``fraction`` of lead-seconds is
    removed, against the mean fall over ``n_random`` random sets of the same size."""
    size = saliency.size
    k = max(1, int(round(fraction * size)))
    rng = np.random.default_rng(seed)
    chosen = [np.argsort(-saliency.ravel(), kind="stable")[:k]]
    chosen += [rng.choice(size, k, replace=False) for _ in range(n_random)]
    variants = [record]
    for cells in chosen:
        mask = np.zeros(size, dtype=bool)
        mask[cells] = True
        variants.append(occlude(record, mask.reshape(saliency.shape)))
    probs = predict_prepared(model, variants)[:, target]
    drops = probs[0] - probs[1:]
    return {"fraction": fraction, "drop_salient": round(float(drops[0]), 4),
            "drop_random": round(float(drops[1:].mean()), 4)}


def explain_paths(model: LoadedModel, paths: list, out=None) -> tuple[list[dict], list[str], list[dict]]:
    """Explain records one by one; with ``out`` also draw ``out/<record>.png``.

    Returns:
        One :meth:`Explainer.explain` dict per usable record (``record`` is the path as given,
        ``truth`` the label from ``#Dx``), notes (padding), and ``{"record", "error"}`` per
        unusable record.
    """
    from pipeline.ecg.plots import plot_explanation
    from pipeline.ecg.prepare import preprocess_signal, prepare_record
    from pipeline.io.ecg import read_record

    explainer = Explainer(model)
    cfg = model.config
    results, notes, errors = [], [], []
    for path in paths:
        try:
            raw = read_record(path)
            record = prepare_record(raw, cfg)
        except UserError as exc:
            errors.append({"record": str(path), "error": str(exc)})
            continue
        result = {**explainer.explain(record), "record": str(path), "truth": record.label.describe() or None}
        results.append(result)
        if record.note:
            notes.append(record.note)
        if out is not None:
            signal_mv, _ = preprocess_signal(raw, cfg)
            plot_explanation(signal_mv, cfg.preprocess.fs, np.asarray(result["saliency"]),
                             explanation_title(result, record.name, model.label), out / f"{record.name}.png", cfg.scalogram.window_s)
    return results, notes, errors


def explanation_title(result: dict, name: str, model_label: str) -> str:
    """Three lines: prediction against the label, probabilities, what the shading is and how faithful it was."""
    label, probs, deletion = result["label"], result["probabilities"], result["deletion"]
    truth = f", labelled {result['truth']}" if result.get("truth") else ""
    return (f"{name}: {model_label} predicts {label} ({probs[label]:.2f}){truth}\n"
            + "   ".join(f"{c} {p:.2f}" for c, p in probs.items()) + "\n"
            + f"shading: share of the evidence for {label} per lead-second; removing the top "
            f"{deletion['fraction']:.0%} drops p({label}) by {deletion['drop_salient']:.3f} "
            f"(random cells: {deletion['drop_random']:.3f})")
