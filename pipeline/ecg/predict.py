"""Prediction core on arrays, with adapters for record paths and model names.

No torch import on this path when the model has an ONNX export (cold start of
``pipeline predict`` is dominated by imports).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pipeline.ecg.bundle import LoadedModel, load_bundle
from pipeline.ecg.prepare import PreparedRecord, iter_prepared
from pipeline.errors import UserError
from pipeline.models.rule import rule_predict
from pipeline.transforms.rhythm import feature_vector_for_network
from pipeline.transforms.scalogram import split_windows

DEFAULT_MODEL = "ecg-default"


def resolve_model(spec: str | None, store=None, backend: str = "auto") -> LoadedModel:
    """A model folder path, ``NAME`` or ``NAME@RUN_ID`` in the store, or ``rule``.

    ``ecg-default`` falls back to the copy bundled in the repository when the store
    (e.g. a fresh ``PIPELINE_STORE``) has none.
    """
    from pipeline.store import DEFAULT_ROOT, Store, validate_id

    spec = spec or DEFAULT_MODEL
    candidate = Path(spec).expanduser()
    if candidate.is_dir():
        return load_bundle(candidate, backend)
    if spec == "rule":
        return _builtin_rule()
    name, _, run = spec.partition("@")
    validate_id(name, "model name")
    if run:
        validate_id(run, "run id")
    stores = [store or Store.open()]
    if name == DEFAULT_MODEL and stores[0].root != str(DEFAULT_ROOT):
        stores.append(Store.open(DEFAULT_ROOT))
    for current in stores:
        run_id = run or current.latest("models", "ecg", name)
        if run_id and current.read_manifest("models", "ecg", name, run_id) is not None:
            return load_bundle(_local_folder(current, ("models", "ecg", name, run_id)), backend)
    raise UserError(
        f"no model {spec!r} in the store {stores[0].root} (train one with 'pipeline train ecg', "
        "list them with 'pipeline models list', or pass a model folder path)"
    )


def _local_folder(store, prefix: tuple[str, ...]) -> Path:
    if store.is_local:
        return Path(store.path(*prefix))
    manifest = store.read_manifest(*prefix)
    target = Path(tempfile.gettempdir()) / "pipeline-models" / "-".join(prefix)
    for output in manifest["outputs"]:
        if not (target / output["path"]).exists():
            store.get_file((*prefix, output["path"]), target / output["path"])
    return target


def _builtin_rule() -> LoadedModel:
    from pipeline.config import EcgConfig

    cfg = EcgConfig(name="rule")
    cfg.model.name = "rule"
    meta = {"task": "ecg", "name": "rule", "model_name": "rule", "model_args": {}, "classes": cfg.classes,
            "config": cfg.model_dump(mode="json"), "n_features": 0}
    return LoadedModel(Path("."), meta, None, "rule")


def predict_prepared(model: LoadedModel, records: list[PreparedRecord]) -> np.ndarray:
    """(n_records, n_classes) probabilities; records with equal window counts are batched."""
    classes = model.meta["classes"]
    features = np.stack([r.features for r in records])
    if model.members:
        return ensemble_probabilities(model, member_probabilities(model, records))
    if model.runner is None:
        return rule_predict(features, tuple(classes), **model.meta["model_args"])
    cfg = model.config
    net_features = feature_vector_for_network(features) if model.meta["n_features"] else np.zeros((len(records), 1), np.float32)
    probabilities = np.zeros((len(records), len(classes)), dtype=np.float32)
    groups: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        key = record.image.shape[-1] if model.meta["input_kind"] == "scalogram" else record.signal.shape[-1]
        groups.setdefault(key, []).append(i)
    for index in groups.values():
        if model.meta["input_kind"] == "scalogram":
            x = np.stack([split_windows(records[i].image, cfg.scalogram.time_cols_per_window) for i in index])
        else:
            x = np.stack([records[i].signal for i in index])
        logits = model.runner.logits(x, net_features[index])
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probabilities[index] = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def member_probabilities(model: LoadedModel, records: list[PreparedRecord]) -> np.ndarray:
    """(members, records, classes): each ensemble member's own probabilities."""
    return np.stack([predict_prepared(member, records) for member in model.members])


def ensemble_probabilities(model: LoadedModel, per_member: np.ndarray) -> np.ndarray:
    """The ensemble's probabilities from its members' (its weights and temperature)."""
    from pipeline.ecg.combine import combine

    return combine(per_member, np.asarray(model.meta["weights"]), model.meta["temperature"])


def predict_paths(model: LoadedModel, paths: list[str | Path], batch: int = 64) -> tuple[list[dict], list[str], list[dict]]:
    """Read, prepare and classify records; a bad record does not stop the others.

    Records are classified in batches of ``batch`` while worker processes prepare the next
    ones, so memory stays bounded however many records are given.

    Returns:
        One ``{"record", "label", "probabilities", "model"}`` dict per readable record (in
        input order), notes for the user (padding, extra windows), and one
        ``{"record", "error"}`` per record that could not be used.
    """
    results, notes, errors = [], [], []
    pending: list[tuple[str | Path, PreparedRecord]] = []

    def classify() -> None:
        probabilities = predict_prepared(model, [record for _, record in pending])
        classes = model.meta["classes"]
        for (path, record), probs in zip(pending, probabilities):
            results.append({
                "record": str(path),
                "label": classes[int(probs.argmax())],
                "probabilities": {c: round(float(p), 4) for c, p in zip(classes, probs)},
                "model": model.label,
            })
            if record.note:
                notes.append(record.note)
        pending.clear()

    for path, record in zip(paths, iter_prepared([Path(p) for p in paths], model.config, progress=False,
                                                    needed=model.needed)):
        if isinstance(record, UserError):
            errors.append({"record": str(path), "error": str(record)})
            continue
        pending.append((path, record))
        if len(pending) >= batch:
            classify()
    if pending:
        classify()
    return results, notes, errors
