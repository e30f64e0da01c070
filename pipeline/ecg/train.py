"""Train and cross-validate ECG rhythm classifiers; publish self-describing model folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipeline.config import REPO_ROOT, EcgConfig, config_hash, dump_config, repo_path
from pipeline.ecg.feature_store import shared_cache
from pipeline.ecg.prepare import PreparedRecord, find_all, prepare_many
from pipeline.ecg.splits import read_record_list
from pipeline.errors import UserError
from pipeline.evaluation import calibration_report, classification_report, plot_confusion, plot_reliability, subgroup_recall
from pipeline.models.rule import rule_predict
from pipeline.scratch import scratch_dir
from pipeline.transforms.rhythm import NETWORK_FEATURE_COUNT, feature_vector_for_network


@dataclass
class EcgDataset:
    """Prepared, labelled records plus what was skipped and why."""

    records: list[PreparedRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)  # internal test records, never prepared here
    bank: np.ndarray | None = None  # every record's image, row bank_rows[i] (None: stack them)
    bank_rows: np.ndarray | None = None

    def labels(self, classes: list[str]) -> np.ndarray:
        return np.array([classes.index(r.label.label) for r in self.records])

    def flutter(self) -> np.ndarray:
        return np.array([r.label.flutter for r in self.records], dtype=bool)

    def features(self) -> np.ndarray:
        return np.stack([r.features for r in self.records])


def holdout_names(cfg: EcgConfig) -> set[str]:
    """Names of the internal test records the config keeps out of training and selection."""
    return read_record_list(repo_path(cfg.holdout)) if cfg.holdout else set()


def training_sources(cfg: EcgConfig, data: list | None = None) -> list[str]:
    """The folders/manifests to train on: ``data`` as given, else the config's ``data`` (one or a
    list), relative to the repository root like ``holdout``. Used by the CLI and the flows alike."""
    if data:
        return [str(d) for d in data]
    configured = cfg.data if isinstance(cfg.data, list) else [cfg.data] if cfg.data else []
    if not configured:
        raise UserError("no training data: pass data (--data DIR) or set 'data' in the config")
    return [repo_path(d) for d in configured]


def load_dataset(cfg: EcgConfig, data: str | Path | list, store=None, progress: bool = True,
                 exclude: set[str] = frozenset()) -> EcgDataset:
    """Prepare every record of ``data`` (one or several folders/manifests) except those in ``exclude``,
    through the feature cache of ``store`` (None: no cache); unreadable or unlabelled records are
    skipped with a reason."""
    paths, held_out = find_all(data, exclude)
    return dataset_from_paths(paths, cfg, store, progress, held_out, source=data)


def dataset_from_paths(paths: list[Path], cfg: EcgConfig, store=None, progress: bool = True,
                       held_out: list[str] | None = None, source=None) -> EcgDataset:
    """Prepare ``paths`` (through the feature cache of ``store``) into an :class:`EcgDataset` whose
    images sit in one :class:`~pipeline.ecg.image_bank.ImageBank`, moved there as each is ready."""
    from pipeline.ecg.image_bank import ImageBank

    records, rows, skipped = [], [], []
    bank = ImageBank(len(paths))

    def into_bank(position: int, record: PreparedRecord) -> None:
        if record.image is not None and record.image.size:
            record.image = bank.keep(position, record.image)

    prepared_all = prepare_cached(paths, cfg, store, progress, sink=into_bank)
    for position, (path, prepared) in enumerate(zip(paths, prepared_all)):
        if isinstance(prepared, UserError):
            skipped.append((path.name, str(prepared)))
        elif prepared.label.status != "ok" or prepared.label.label not in cfg.classes:
            skipped.append((path.name, f"label {prepared.label.describe()}"))
        else:
            records.append(prepared)
            rows.append(position)
    if not records:
        where = ", ".join(map(str, source)) if isinstance(source, (list, tuple)) else source
        raise UserError(f"no usable labelled records in {where or 'the given records'} ({len(skipped)} skipped)")
    rows = np.array(rows)
    in_bank = bank.array is not None and bool(bank.filled[rows].all())
    return EcgDataset(records, skipped, list(held_out or []), bank.array if in_bank else None,
                      rows if in_bank else None)


def prepare_cached(paths: list[Path], cfg: EcgConfig, store, progress: bool, sink=None) -> list:
    """:func:`prepare_many` into the store's feature cache (shared with other machines when remote)."""
    if store is None:
        return prepare_many(paths, cfg, progress=progress, image_device=scalogram_device(cfg), sink=sink)
    with shared_cache(store, cfg, paths) as cache_dir:
        return prepare_many(paths, cfg, cache_dir, progress=progress, image_device=scalogram_device(cfg), sink=sink)


def scalogram_device(cfg: EcgConfig):
    """The CUDA device training will run on, where the scalograms are then computed too
    (batched across records); None on CPU, where worker processes compute them."""
    from pipeline.device import resolve_device

    device = resolve_device(cfg.train.device)
    return device if device.type == "cuda" else None


def build_arrays(dataset: EcgDataset, cfg: EcgConfig, input_kind: str):
    from pipeline.training import ArrayData

    rows = None
    if input_kind == "scalogram" and dataset.bank is not None:
        inputs, rows = dataset.bank, dataset.bank_rows  # no copy: batches are read from the bank
    elif input_kind == "scalogram":
        inputs = np.stack([r.image for r in dataset.records]).astype(np.float32, copy=False)
    else:
        inputs = np.stack([r.signal for r in dataset.records]).astype(np.float32, copy=False)
    n_records = len(dataset.records)
    n_features = NETWORK_FEATURE_COUNT if cfg.model.rhythm_features else 0
    features = feature_vector_for_network(dataset.features()) if n_features else np.zeros((n_records, 1), np.float32)
    return ArrayData(inputs, features.astype(np.float32), dataset.labels(cfg.classes), rows), n_features


def fit_model(cfg: EcgConfig, train_data, n_features: int, checkpoint: Path | None, desc: str, progress: bool = True,
              split: tuple[np.ndarray, np.ndarray] | None = None, keep_last: bool = False):
    """Fit on ``train_data`` with early stopping on a validation part: ``split`` (fit, validation)
    indices, or a stratified ``val_fraction`` split off here; return the trained model.
    ``keep_last``: no early stopping, the validation part is only reported (see ``fit``)."""
    from pipeline.device import resolve_device, seed_everything
    from pipeline.ecg.inputs import make_input_fn
    from pipeline.models import create_model
    from pipeline.training import fit

    seed_everything(cfg.seed)
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    model = create_model(cfg.model.name, n_classes=len(cfg.classes), n_features=n_features, **cfg.model.args)
    fit_idx, val_idx = split if split is not None else validation_split(train_data.labels, cfg.train.val_fraction, cfg.seed)
    if getattr(model, "feature_skip", None) is not None:
        warm_start_feature_path(model, train_data.subset(fit_idx), len(cfg.classes))
    to_input = make_input_fn(model.input_kind, cfg.scalogram.time_cols_per_window, cfg.train.augment)
    result = fit(
        model, train_data.subset(fit_idx), train_data.subset(val_idx),
        epochs=cfg.train.epochs, batch_size=cfg.train.batch_size, lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay, patience=cfg.train.patience,
        device=resolve_device(cfg.train.device), to_model_input=to_input, n_classes=len(cfg.classes),
        checkpoint=checkpoint, seed=cfg.seed, desc=desc, progress=progress, keep_last=keep_last,
    )
    return model, result, to_input


def warm_start_feature_path(model, data, n_classes: int) -> None:
    """Start the hybrid at a logistic regression on the rhythm features (fitted in closed form
    by scikit-learn on the training part) with the scalogram branch's output layer at zero.

    Training then only has to learn corrections the features cannot make (e.g. atrial
    flutter with regular conduction), instead of rediscovering heart-rate thresholds
    from a few hundred records.
    """
    import torch
    from sklearn.linear_model import LogisticRegression

    from sklearn.preprocessing import StandardScaler

    present = np.unique(data.labels)
    scaler = StandardScaler().fit(data.features)
    regression = LogisticRegression(C=0.3, max_iter=5000, class_weight="balanced").fit(
        scaler.transform(data.features), data.labels
    )
    if len(present) > 2:
        coef, intercept = regression.coef_, regression.intercept_
    else:  # binary: softmax over [-z/2, z/2] equals the sigmoid of z
        coef = np.vstack([-regression.coef_, regression.coef_]) / 2
        intercept = np.array([-1.0, 1.0]) * regression.intercept_[0] / 2
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    weight = np.zeros((n_classes, data.features.shape[1]), np.float32)
    bias = np.full(n_classes, -10.0, np.float32)  # classes absent from training stay unlikely
    weight[present] = coef / scale  # fold the standardisation into the linear layer
    bias[present] = intercept - (coef * scaler.mean_ / scale).sum(axis=1)
    with torch.no_grad():
        model.feature_skip.weight.copy_(torch.from_numpy(weight))
        model.feature_skip.bias.copy_(torch.from_numpy(bias))
        last = model.head[-1]
        last.weight.zero_()
        last.bias.zero_()


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified by class when every class can give one record to each side, else random."""
    index = np.arange(len(labels))
    n_val = max(1, int(round(fraction * len(labels))))
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratify = labels if counts.min() >= 2 and n_val >= len(counts) and len(labels) - n_val >= len(counts) else None
    if len(labels) < 3:
        raise UserError(f"only {len(labels)} training records: too few to hold out a validation part")
    return train_test_split(index, test_size=n_val, stratify=stratify, random_state=seed)


def input_kind_of(cfg: EcgConfig) -> str:
    """``scalogram``, ``signal`` or ``rule``: which stored arrays the configured model eats."""
    if cfg.model.name == "rule":
        return "rule"
    from pipeline.models import model_class

    return model_class(cfg.model.name).input_kind


def cross_validate(cfg: EcgConfig, dataset: EcgDataset, work_dir: Path, progress: bool = True) -> dict:
    """Stratified k-fold by record: the model and the rule baseline on the same folds."""
    from pipeline.device import resolve_device
    from pipeline.training import predict_logits

    work_dir.mkdir(parents=True, exist_ok=True)
    labels = dataset.labels(cfg.classes)
    folds = StratifiedKFold(cfg.train.folds, shuffle=True, random_state=cfg.seed)
    model_probs = np.zeros((len(labels), len(cfg.classes)), dtype=np.float32)
    rule_pred = rule_predict(dataset.features(), tuple(cfg.classes)).argmax(1)
    fold_acc, rule_fold_acc = [], []
    kind = input_kind_of(cfg)
    arrays = n_features = None
    if kind != "rule":
        arrays, n_features = build_arrays(dataset, cfg, kind)
    for fold, (train_idx, test_idx) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        if kind == "rule":  # the configured thresholds (the baseline column keeps the defaults)
            probs = rule_predict(dataset.features()[test_idx], tuple(cfg.classes), **cfg.model.args)
        else:
            model, _, to_input = fit_model(
                cfg, arrays.subset(train_idx), n_features, work_dir / f"fold{fold}.pt", f"fold {fold + 1}/{cfg.train.folds}", progress
            )
            probs = softmax(predict_logits(model, arrays.subset(test_idx), resolve_device(cfg.train.device), to_input))
        pred = probs.argmax(1)
        model_probs[test_idx] = probs
        fold_acc.append(float((pred == labels[test_idx]).mean()))
        rule_fold_acc.append(float((rule_pred[test_idx] == labels[test_idx]).mean()))
    model_pred = model_probs.argmax(1)
    report = classification_report(labels, model_pred, cfg.classes)
    baseline = classification_report(labels, rule_pred, cfg.classes)
    report.update(
        calibration=calibration_report(labels, model_probs),
        flutter=subgroup_recall(labels, model_pred, dataset.flutter()),
        fold_accuracy=fold_acc, mean_fold_accuracy=float(np.mean(fold_acc)),
        n_records=len(labels), n_skipped=len(dataset.skipped), folds=cfg.train.folds,
        errors=[{"record": dataset.records[i].name, "true": cfg.classes[labels[i]], "predicted": cfg.classes[model_pred[i]]}
                for i in np.flatnonzero(model_pred != labels)],
    )
    baseline.update(fold_accuracy=rule_fold_acc, mean_fold_accuracy=float(np.mean(rule_fold_acc)),
                    flutter=subgroup_recall(labels, rule_pred, dataset.flutter()))
    report["baseline"] = baseline
    return report


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def train_ecg(cfg: EcgConfig, data: str | Path | list, store=None, cv: bool = True, progress: bool = True,
              bundle_dir: Path | None = None, test: bool = False) -> dict:
    """Cross-validate (optional; ensembles use their validation part instead), fit on all records
    except the config's ``holdout`` list, publish the model to the store.

    Args:
        test: after training, score the model once on the holdout records found in ``data`` (the
            final report; nothing is chosen from it) and add it to metrics.json and the model card.
    Returns:
        ``{"uri", "run_id", "metrics"}``; the run folder holds model.json, the weights and ONNX
        export(s), config.yaml, metrics.json, confusion/reliability plots and MODEL_CARD.md.
    """
    from pipeline.device import device_info, resolve_device
    from pipeline.store import Store, new_run_id, validate_id

    validate_id(cfg.name, "model name")
    if test and not cfg.holdout:
        raise UserError("--test needs a 'holdout' record list in the config")
    store = store or Store.open()
    device = device_info(resolve_device(cfg.train.device))
    started = time.perf_counter()
    dataset = load_dataset(cfg, data, store, progress, exclude=holdout_names(cfg))
    run_id = new_run_id()
    work = work_dir_for(cfg, data)
    work.mkdir(parents=True, exist_ok=True)
    sources = [str(d) for d in (data if isinstance(data, (list, tuple)) else [data])]
    with scratch_dir("pipeline-ecg-train-") as tmp:
        bundle = Path(tmp) / "bundle"
        metrics: dict = {"n_records": len(dataset.records), "n_skipped": len(dataset.skipped),
                         "skipped": [{"record": n, "reason": r} for n, r in dataset.skipped],
                         "holdout": {"list": cfg.holdout, "n_excluded": len(dataset.held_out)}, "data": sources,
                         **device}
        extra: dict = {"run_id": run_id}
        if cfg.model.name == "ensemble":
            from pipeline.ecg.ensemble import train_ensemble

            metrics.update(train_ensemble(cfg, dataset, bundle, run_id, progress))
            metrics["seconds"] = {"total": round(time.perf_counter() - started, 1)}
        else:
            if cv:
                metrics["cross_validation"] = cross_validate(cfg, dataset, work, progress)
            cv_seconds = time.perf_counter() - started
            kind = input_kind_of(cfg)
            model, n_features = None, 0
            if kind != "rule":
                arrays, n_features = build_arrays(dataset, cfg, kind)
                model, result, _ = fit_model(cfg, arrays, n_features, work / "final.pt", "final fit", progress)
                extra.update(best_epoch=result.best_epoch, history=result.history)
            metrics["seconds"] = {"cross_validation": round(cv_seconds, 1), "total": round(time.perf_counter() - started, 1)}
            save_bundle_dir(bundle, cfg, model, kind, n_features, metrics, extra)
        if test:
            metrics["internal_test"] = score_holdout(bundle, cfg, sources, progress)
        finish_bundle_dir(bundle, cfg, metrics, extra)
        files = {p.name: p for p in sorted(bundle.iterdir())}
        uri = store.publish_run(("models", "ecg", cfg.name, run_id), files, kind="model", config=cfg.model_dump(mode="json"),
                                metrics=_headline(metrics), inputs=[{"uri": d, "records": len(dataset.records)} for d in sources],
                                extra={"device": device})
        store.set_latest(("models", "ecg", cfg.name), run_id)
        shutil.rmtree(work, ignore_errors=True)  # published: the checkpoints have done their job
        if bundle_dir is not None:
            bundle_dir.mkdir(parents=True, exist_ok=True)
            for name, path in files.items():
                (bundle_dir / name).write_bytes(path.read_bytes())
    return {"uri": uri, "run_id": run_id, "metrics": metrics}


def score_holdout(bundle: Path, cfg: EcgConfig, sources: list[str], progress: bool) -> dict:
    """The finished model (as saved, through ONNX when exported) on the internal test records."""
    from pipeline.ecg.bundle import load_bundle
    from pipeline.ecg.evaluate import evaluate_paths, select_records

    report = evaluate_paths(load_bundle(bundle), select_records(sources, repo_path(cfg.holdout)), progress)
    plot_confusion(report["confusion"], cfg.classes, bundle / "confusion_test.png",
                   f"{cfg.name}: internal test, acc {report['accuracy']:.3f}")
    return report


def work_root() -> Path:
    """Where checkpoints live: ``PIPELINE_WORK`` or the repository's ``artifacts/work``."""
    return Path(os.environ.get("PIPELINE_WORK", REPO_ROOT / "artifacts" / "work"))


def work_dir_for(cfg: EcgConfig, data: str | Path | list) -> Path:
    """Checkpoint folder of an interrupted run: the same config and data resume from it."""
    root = work_root()
    sources = data if isinstance(data, (list, tuple)) else [data]
    data_key = hashlib.sha256("|".join(str(Path(d).resolve()) for d in sources).encode()).hexdigest()[:8]
    return root / "ecg" / f"{cfg.name}-{config_hash(cfg)}-{data_key}"


def save_bundle_dir(folder: Path, cfg, model, kind, n_features, metrics, extra) -> None:
    from pipeline.ecg.bundle import save_bundle

    save_bundle(folder, cfg, model, kind if kind != "rule" else "features", n_features, extra)
    if "cross_validation" in metrics:
        cvm = metrics["cross_validation"]
        plot_confusion(cvm["confusion"], cfg.classes, folder / "confusion.png",
                       f"{cfg.name}: {cfg.train.folds}-fold CV, acc {cvm['accuracy']:.3f}")
        if kind != "rule":
            plot_reliability(cvm["calibration"], folder / "reliability.png", f"{cfg.name}: {cfg.train.folds}-fold CV")


def finish_bundle_dir(folder: Path, cfg, metrics: dict, extra: dict) -> None:
    """config.yaml, metrics.json and MODEL_CARD.md beside the weights."""
    from pipeline.ecg.model_card import write_model_card

    (folder / "config.yaml").write_text(dump_config(cfg))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_model_card(folder / "MODEL_CARD.md", cfg, metrics, extra)


def _headline(metrics: dict) -> dict:
    cvm = metrics.get("cross_validation")
    if "validation" in metrics:
        val = metrics["validation"]["ensemble"]
        return {"val_accuracy": val["accuracy"], "val_balanced_accuracy": val["balanced_accuracy"],
                "rule_val_accuracy": metrics["validation"]["rule"]["accuracy"], "n_records": metrics["n_records"]}
    if not cvm:
        return {"n_records": metrics["n_records"]}
    return {"cv_accuracy": cvm["accuracy"], "cv_macro_f1": cvm["macro_f1"], "cv_accuracy_ci95": cvm["accuracy_ci95"],
            "rule_cv_accuracy": cvm["baseline"]["accuracy"], "n_records": metrics["n_records"]}
