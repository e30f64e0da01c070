"""Prediction core on arrays, with adapters for record paths and model names.

No torch import on this path when the model has an ONNX export (cold start of
``pipeline predict`` is dominated by imports).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.ecg.bundle import LoadedModel, load_bundle
from pipeline.ecg.prepare import (
    Needed, PreparedRecord, complete_image, iter_prepared, one_blas_thread, pool_size, prepare_path,
)
from pipeline.errors import UserError
from pipeline.labels import RhythmLabel
from pipeline.models.rule import rule_predict
from pipeline.transforms.rhythm import feature_vector_for_network
from pipeline.transforms.scalogram import ScalogramSpec, split_windows

DEFAULT_MODEL = "ecg-default"


def resolve_model(spec: str | None, store=None, backend: str = "auto") -> LoadedModel:
    """A model folder path, ``NAME`` or ``NAME@RUN_ID`` in the store, or ``rule``.

    A name the store (e.g. a fresh ``PIPELINE_STORE``) lacks falls back to the models bundled in the
    repository (``ecg-default``, ``ecg-fast``, ``ecg-scalogram``), as separators do.
    """
    from pipeline.store import DEFAULT_ROOT, Store, validate_id

    spec = spec or DEFAULT_MODEL
    candidate = Path(spec).expanduser()
    if candidate.is_dir():
        return load_bundle(candidate, backend)
    if spec == "rule":
        return _builtin_rule()
    if os.sep in spec and candidate.exists():
        raise UserError(f"{spec} is a file; --model takes a model folder, NAME or NAME@RUN from the store, or 'rule'")
    name, _, run = spec.partition("@")
    validate_id(name, "model name")
    if run:
        validate_id(run, "run id")
    stores = [store or Store.open()]
    if stores[0].root != str(DEFAULT_ROOT):
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
    """(members, records, classes): each ensemble member's own probabilities.

    With a cascade and records whose image was deferred (prediction), the scalogram members run
    only on the records the signal members leave uncertain, whose images are computed then; their
    other entries stay NaN. Records prepared whole (evaluation, explanations) get every member.
    """
    cascade = model.meta.get("cascade")
    if not cascade or all(record.image is not None for record in records):
        return np.stack([predict_prepared(member, records) for member in model.members])
    per_member = np.full((len(model.members), len(records), len(model.meta["classes"])), np.nan, np.float32)
    for i in cascade["members"]:
        per_member[i] = predict_prepared(model.members[i], records)
    uncertain = np.flatnonzero(~cascade_exits(model, per_member))
    if len(uncertain):
        spec = ScalogramSpec.from_config(model.config.scalogram, model.config.preprocess.fs)
        completed = [complete_image(records[k], spec) for k in uncertain]
        for i, member in enumerate(model.members):
            if i not in cascade["members"]:
                per_member[i, uncertain] = predict_prepared(member, completed)
    return per_member


def cascade_exits(model: LoadedModel, per_member: np.ndarray) -> np.ndarray:
    """(records,) True where the cascade's signal members decide alone (all False without a cascade)."""
    from pipeline.ecg.combine import cascade_exits as above_threshold

    cascade = model.meta.get("cascade")
    if not cascade:
        return np.zeros(per_member.shape[1], dtype=bool)
    return above_threshold(_signal_probabilities(model, per_member), cascade["threshold"])


def _signal_probabilities(model: LoadedModel, per_member: np.ndarray) -> np.ndarray:
    """The cascade's signal members combined alone: their weights renormalised, the same temperature."""
    from pipeline.ecg.combine import combine

    chosen = model.meta["cascade"]["members"]
    weights = np.asarray(model.meta["weights"])[chosen]
    return combine(per_member[chosen], weights / weights.sum(), model.meta["temperature"])


def ensemble_probabilities(model: LoadedModel, per_member: np.ndarray) -> np.ndarray:
    """The ensemble's probabilities from its members' (its weights and temperature); with a cascade,
    the signal members' alone where they are confident enough."""
    from pipeline.ecg.combine import combine

    weights, temperature = np.asarray(model.meta["weights"]), model.meta["temperature"]
    if not model.meta.get("cascade"):
        return combine(per_member, weights, temperature)
    exits = cascade_exits(model, per_member)
    probabilities = _signal_probabilities(model, per_member)
    if not exits.all():
        probabilities[~exits] = combine(per_member[:, ~exits], weights, temperature)
    return probabilities


@dataclass
class ScoredRecord:
    """One record's outcome, without its inputs: probabilities (and each ensemble member's), what
    the reports need of it, or why it could not be used."""

    name: str
    probabilities: np.ndarray | None = None  # (classes,)
    members: np.ndarray | None = None  # (members, classes) for ensembles
    label: RhythmLabel | None = None
    features: np.ndarray | None = None
    note: str | None = None
    error: str | None = None


#: Records a worker prepares and classifies per task (ten windows each: a batch of 80 images).
WORKER_CHUNK = 8


def score_paths(model: LoadedModel, paths: list[Path], batch: int = 64, progress: bool = False,
                needed: Needed | None = None) -> list[ScoredRecord]:
    """Read, prepare and classify records, one :class:`ScoredRecord` each in input order; a bad
    record does not stop the others. ``needed``: what to prepare (default: what the model reads;
    evaluation adds the rhythm features for its rule baseline).

    Many records: worker processes (one per core) each prepare and classify their own records with
    a single-threaded copy of the model. The main process classifying while the workers prepared
    put four busy threads on two cores, and ONNX Runtime's parallel operators waited on the
    descheduled ones (1.4x slower, BENCHMARKS.md). Few records (or one core): this process, in
    batches of ``batch``. Either way no record's inputs outlive its batch. A cascade's images are
    computed only for the records its signal members leave uncertain, unless ``needed`` is given
    (evaluation: every member scores every record; the labels are the same).
    """
    defer = needed is None and bool(model.meta.get("cascade")) and model.needed.image
    needed = needed or model.needed
    workers = pool_size(len(paths))
    if workers <= 1:
        scored, pending = [], []
        records = iter_prepared(paths, model.config, workers=1, progress=progress, needed=needed, defer_image=defer)
        for path, record in zip(paths, records):
            pending.append((path, record))
            if len(pending) >= batch:
                scored += _score_batch(model, pending)
                pending = []
        return scored + _score_batch(model, pending)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunks = [(paths[i:i + WORKER_CHUNK], needed, defer) for i in range(0, len(paths), WORKER_CHUNK)]
    scored = []
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=_load_worker_model, initargs=(_worker_spec(model),)) as pool, \
            tqdm(total=len(paths), desc="score records", unit="record", disable=not progress or None, leave=False) as bar:
        for part in pool.map(_score_chunk, chunks):
            scored += part
            bar.update(len(part))
    return scored


def _score_batch(model: LoadedModel, pending: list) -> list[ScoredRecord]:
    usable = [record for _, record in pending if isinstance(record, PreparedRecord)]
    members = member_probabilities(model, usable) if model.members and usable else None
    if not usable:
        probabilities = []
    elif members is not None:
        probabilities = ensemble_probabilities(model, members)
    else:
        probabilities = predict_prepared(model, usable)
    scored, k = [], 0
    for path, record in pending:
        if isinstance(record, UserError):
            scored.append(ScoredRecord(Path(path).name, error=str(record)))
            continue
        scored.append(ScoredRecord(record.name, probabilities[k], None if members is None else members[:, k],
                                   record.label, record.features, record.note))
        k += 1
    return scored


_WORKER: dict = {}


def _worker_spec(model: LoadedModel) -> tuple:
    """What a worker process needs to open its own copy of ``model`` (sessions do not survive a fork)."""
    return ("model", model) if model.runner is None and not model.members else (str(model.folder), model.backend)


def _load_worker_model(spec: tuple) -> None:
    one_blas_thread()
    _WORKER["model"] = spec[1] if spec[0] == "model" else load_bundle(Path(spec[0]), spec[1], threads=1)


def _score_chunk(chunk: tuple[list[Path], Needed, bool]) -> list[ScoredRecord]:
    model = _WORKER["model"]
    paths, needed, defer = chunk
    pending = []
    for path in paths:
        try:
            pending.append((path, prepare_path(path, model.config, needed=needed, defer_image=defer)))
        except UserError as exc:
            pending.append((path, exc))
    return _score_batch(model, pending)


def predict_paths(model: LoadedModel, paths: list[str | Path], batch: int = 64) -> tuple[list[dict], list[str], list[dict]]:
    """Read, prepare and classify records (:func:`score_paths`); a bad record does not stop the others.

    Returns:
        One ``{"record", "label", "probabilities", "model"}`` dict per readable record (in
        input order), notes for the user (padding, extra windows), and one
        ``{"record", "error"}`` per record that could not be used.
    """
    results, notes, errors = [], [], []
    classes = model.meta["classes"]
    for path, scored in zip(paths, score_paths(model, [Path(p) for p in paths], batch)):
        if scored.error is not None:
            errors.append({"record": str(path), "error": scored.error})
            continue
        probs = scored.probabilities
        results.append({
            "record": str(path),
            "label": classes[int(probs.argmax())],
            "probabilities": {c: round(float(p), 4) for c, p in zip(classes, probs)},
            "model": model.label,
        })
        if scored.note:
            notes.append(scored.note)
    return results, notes, errors
