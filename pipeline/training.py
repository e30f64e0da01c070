"""Generic supervised fit loop: early stopping, class weights, AMP on CUDA, resumable checkpoints."""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)  # per-epoch lines; flows show them (PREFECT_LOGGING_EXTRA_LOGGERS=pipeline)


@dataclass
class ArrayData:
    """Samples: model inputs, rhythm features and integer labels.

    ``rows`` picks the samples' inputs out of ``inputs`` (None: all, in order), so a subset of a
    large image array (a fold, a validation part) is an index, not a copy; batches are gathered
    by :meth:`input_batch`.
    """

    inputs: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "ArrayData":
        index = np.asarray(index)
        rows = index if self.rows is None else self.rows[index]
        return ArrayData(self.inputs, self.features[index], self.labels[index], rows)

    def input_batch(self, index: np.ndarray) -> np.ndarray:
        """float32 inputs of samples ``index`` (a new array)."""
        index = np.asarray(index)
        return np.asarray(self.inputs[index if self.rows is None else self.rows[index]], dtype=np.float32)


@dataclass
class FitResult:
    state_dict: dict
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float | None = None  # training wall time over all sessions (None: an old checkpoint without it)


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 (classes absent from ``labels`` get weight 1)."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def fit(
    model: nn.Module,
    train: ArrayData,
    val: ArrayData,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    device: torch.device,
    to_model_input: Callable[[torch.Tensor, bool], torch.Tensor],
    n_classes: int,
    checkpoint: Path | None = None,
    seed: int = 0,
    desc: str = "train",
    progress: bool = True,
    keep_last: bool = False,
) -> FitResult:
    """Train with AdamW + cosine schedule, keep the weights with the lowest validation loss.

    Args:
        to_model_input: turns a batch of stored inputs into the model input; its second
            argument says whether to augment (training batches only).
        checkpoint: file rewritten after every epoch; when it exists, training resumes
            from it (same model, optimiser, schedule, best weights and history).
        keep_last: train every epoch and keep the last weights: ``val`` is then only reported,
            never used to choose (cross-fitting, where it is the fold scored out-of-fold).
    """
    model.to(device, memory_format=torch.channels_last)  # 4-D conv weights only; +9-28% (bench/train.py)
    criterion = nn.CrossEntropyLoss(weight=class_weights(train.labels, n_classes).to(device))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=epochs * steps_per_epoch)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = np.random.default_rng(seed)
    start, best_loss, best_epoch, stale, spent = 0, math.inf, -1, 0, 0.0
    session_start = time.perf_counter()
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict] = []
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        start, best_loss, best_epoch, stale = saved["epoch"] + 1, saved["best_loss"], saved["best_epoch"], saved["stale"]
        best_state, history = saved["best_state"], saved["history"]
        spent = saved.get("seconds")
        generator = np.random.default_rng(seed + start)

    bar = tqdm(range(start, epochs), desc=desc, disable=not progress or None, leave=False, initial=start, total=epochs)
    for epoch in bar:
        if stale >= patience and not keep_last:
            break
        model.train()
        order = generator.permutation(len(train))
        running = 0.0
        for begin in range(0, len(order), batch_size):
            index = order[begin : begin + batch_size]
            if len(index) < 2:  # BatchNorm needs two samples
                continue
            inputs = to_model_input(torch.from_numpy(train.input_batch(index)), True).to(device)
            features = torch.from_numpy(train.features[index]).to(device)
            labels = torch.from_numpy(train.labels[index]).long().to(device)
            with torch.autocast(device.type, enabled=use_amp):
                loss = criterion(model(inputs, features), labels)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            running += loss.item() * len(index)
        # an empty validation part (a refit on every record, keep_last) has nothing to report
        val_loss, val_acc = evaluate_loss(model, val, criterion, device, to_model_input, batch_size) if len(val) else (math.nan, math.nan)
        history.append({"epoch": epoch, "train_loss": running / len(train), "val_loss": val_loss, "val_accuracy": val_acc})
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", val=f"{val_loss:.3f}", acc=f"{val_acc:.3f}")
        log.info("%s: epoch %d/%d, train loss %.4f, val loss %.4f, val accuracy %.3f", desc, epoch + 1, epochs,
                 history[-1]["train_loss"], val_loss, val_acc)
        if checkpoint is not None:
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                    "epoch": epoch, "best_loss": best_loss, "best_epoch": best_epoch, "stale": stale,
                    "best_state": best_state, "history": history,
                    "seconds": None if spent is None else spent + time.perf_counter() - session_start,
                },
                tmp,
            )
            tmp.replace(checkpoint)
    if keep_last:
        best_state, best_epoch = copy.deepcopy(model.state_dict()), len(history) - 1
    model.load_state_dict(best_state)
    seconds = None if spent is None else round(spent + time.perf_counter() - session_start, 1)
    return FitResult(best_state, best_epoch, history, seconds)


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: ArrayData, device: torch.device, to_model_input: Callable, batch_size: int = 64
) -> np.ndarray:
    """(n_samples, n_classes) logits in evaluation mode."""
    model.eval().to(device)
    out = []
    for begin in range(0, len(data), batch_size):
        inputs = to_model_input(torch.from_numpy(data.input_batch(np.arange(begin, min(begin + batch_size, len(data))))), False)
        inputs = inputs.to(device)
        features = torch.from_numpy(data.features[begin : begin + batch_size]).to(device)
        out.append(model(inputs, features).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def evaluate_loss(model, data: ArrayData, criterion, device, to_model_input, batch_size) -> tuple[float, float]:
    logits = predict_logits(model, data, device, to_model_input, batch_size)
    loss = criterion(torch.from_numpy(logits).to(device), torch.from_numpy(data.labels).long().to(device)).item()
    return float(loss), float((logits.argmax(1) == data.labels).mean())
