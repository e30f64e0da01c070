"""Prefect tasks: thin wrappers over ``pipeline`` functions, plus the UI-artifact helpers.

Rules (see ../shared/PREFECT.md): tasks exchange URIs, ids and small dicts, never arrays or
models; ``cache_policy=NO_CACHE`` everywhere (our content-keyed caches live in the artifact
store, Prefect's result cache is off). Retries only for transient errors (``UserError`` means
the input is wrong and repeats), on I/O tasks and on the tasks that write the store (their
writes are idempotent: training resumes from its checkpoint, stems are keyed by model run).
Every task has a timeout. Every task body is a plain function reachable as ``task.fn``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import fsspec
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from pipeline.errors import UserError
from pipeline.store import CLAIM, Store, sha256_file

HOUR = 3600


def transient(task, task_run, state) -> bool:
    """Retry condition: anything but a ``UserError`` (a wrong input fails the same way again),
    except a ``UserError`` raised from an ``OSError``: an I/O failure worded for people (the store
    does this) may pass on the next attempt."""
    try:
        state.result()
    except UserError as exc:
        return isinstance(exc.__cause__, OSError)
    except Exception:  # noqa: BLE001 - any other failure may be transient (I/O, CUDA, network)
        return True
    return True


IO_RETRIES = {"retries": 3, "retry_delay_seconds": [2, 10, 30], "retry_condition_fn": transient,
              "cache_policy": NO_CACHE, "timeout_seconds": HOUR}
COMPUTE = {"cache_policy": NO_CACHE, "timeout_seconds": HOUR}
#: Store-writing compute (training, separation): one retry after a minute, resuming/idempotent.
STORE_WRITE = {"retries": 1, "retry_delay_seconds": 60, "retry_condition_fn": transient, "cache_policy": NO_CACHE}
TRAIN = {**STORE_WRITE, "timeout_seconds": 8 * HOUR}
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aiff", ".aif")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# -- plain helpers (no Prefect context needed) ------------------------------------------------
def is_remote(uri: str) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def local_path(uri: str) -> str:
    return str(uri)[len("file://"):] if str(uri).startswith("file://") else str(uri)


def safe_id(name: str) -> str:
    """A store-safe id from a file name (``My Song (live).wav`` -> ``My-Song-live``)."""
    stem = Path(name).stem if "." in name else name
    cleaned = _UNSAFE.sub("-", stem).strip("-._")[:100]
    return cleaned or "track-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def load_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (dependency injection for flows)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"expected 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def download_cache(uri: str) -> Path:
    """A local folder reserved for copies of ``uri`` (stable per URI, under the temp dir)."""
    return Path(tempfile.gettempdir()) / "pipeline-inputs" / hashlib.sha256(uri.encode()).hexdigest()[:16]


# -- I/O tasks (retried) -----------------------------------------------------------------------
@task(name="localize", **IO_RETRIES)
def localize(uri: str) -> str:
    """A local path for a file or folder URI: itself when local, else a copy in a cache folder."""
    if not is_remote(uri):
        return local_path(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    target = download_cache(uri)
    if fs.isdir(path):
        target.mkdir(parents=True, exist_ok=True)
        fs.get(path.rstrip("/") + "/", str(target) + "/", recursive=True)
        return str(target)
    target.mkdir(parents=True, exist_ok=True)
    out = target / Path(path).name  # re-fetched every time: the remote file may have changed
    fs.get_file(path, str(out) + ".part")
    Path(str(out) + ".part").replace(out)
    return str(out)


@task(name="list-inbox", **IO_RETRIES)
def list_inbox(inbox: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files under ``inbox`` (any fsspec URL or folder) whose names end in ``suffixes``, sorted.

    Hidden files and partial uploads (``.part``, ``.tmp``) are skipped. A missing inbox is a
    ``UserError``: a mistyped path must not look like an empty inbox run after run.
    """
    fs, base = fsspec.core.url_to_fs(local_path(inbox) if not is_remote(inbox) else inbox)
    if not fs.isdir(base):
        raise UserError(f"inbox {inbox} does not exist (or is not a folder); create it or fix the 'inbox' parameter")
    found = []
    for path in fs.find(base):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(".") or not name.lower().endswith(tuple(s.lower() for s in suffixes)):
            continue
        found.append(fs.unstrip_protocol(path) if is_remote(inbox) else path)
    return sorted(found)


@task(name="ingest-dataset", **IO_RETRIES)
def ingest_dataset(data: str, name: str, store_root: str | None, suffixes: tuple[str, ...] | None = None) -> dict:
    """Checksum every file of a local dataset folder and record it under ``datasets/<name>/<version>/``.

    The version is a content hash, so re-ingesting unchanged data reuses the same folder.

    Returns:
        ``{"uri", "version", "n_files", "bytes", "reused"}``.
    """
    from pipeline.store import RunExistsError

    root = Path(data)
    if root.is_file():
        files = [root]
        root = root.parent
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        raise UserError(f"no such data folder or file: {data}")
    if suffixes:
        files = [p for p in files if p.name.lower().endswith(tuple(s.lower() for s in suffixes))]
    if not files:
        raise UserError(f"no input files in {data}")
    entries = [{"path": str(p.relative_to(root)), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files]
    version = hashlib.sha256("\n".join(f"{e['path']} {e['sha256']}" for e in entries).encode()).hexdigest()[:16]
    store = Store.open(store_root)
    prefix = ("datasets", name, version)
    reused = store.read_manifest(*prefix) is not None
    if not reused:
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "checksums.json"
            listing.write_text(json.dumps(entries, indent=1))
            try:
                store.publish_run(prefix, {"checksums.json": listing}, kind="dataset",
                                  inputs=[{"uri": str(Path(data).resolve())}],
                                  metrics={"n_files": len(entries), "bytes": sum(e["bytes"] for e in entries)})
            except RunExistsError:  # a concurrent ingest of the same content won the race
                reused = True
    return {"uri": store.uri(*prefix), "version": version, "n_files": len(entries),
            "bytes": sum(e["bytes"] for e in entries), "reused": reused}


@task(name="publish-report", **IO_RETRIES)
def publish_report(store_root: str | None, area: tuple[str, ...], texts: dict[str, str], *, run_id: str,
                   kind: str = "report", config: dict | None = None, metrics: dict | None = None,
                   inputs: list[dict] | None = None, extra: dict | None = None) -> str:
    """Write text files (report.md, metrics.json, predictions.csv...) as ``<area...>/<run_id>/``, manifest last.

    Idempotent for retries: the caller fixes ``run_id``; a complete run is returned as is, and a
    failed attempt removes its partial folder, so no orphan is left and the retry can claim it.
    """
    store = Store.open(store_root)
    prefix = (*area, run_id)
    if store.read_manifest(*prefix) is not None:
        return store.uri(*prefix)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, text in texts.items():
            files[name] = Path(tmp) / name
            files[name].write_text(text)
        try:
            return store.publish_run(prefix, files, kind=kind, config=config, metrics=metrics, inputs=inputs,
                                     extra=extra)
        except BaseException:
            remove_partial(store, prefix)
            raise


def remove_partial(store: Store, prefix: tuple[str, ...]) -> None:
    """Delete a run folder this writer claimed but never completed (best effort)."""
    if store.read_manifest(*prefix) is None and store.fs.exists(store.path(*prefix, CLAIM)):
        store.fs.rm(store.path(*prefix), recursive=True)


@task(name="sweep-incomplete", **IO_RETRIES)
def sweep_incomplete(store_root: str | None, areas: list[tuple[str, ...]],
                     older_than_s: float = 24 * HOUR) -> list[str]:
    """Remove run folders that never got a manifest (a writer died) under each area; returns their URIs."""
    store = Store.open(store_root)
    removed = []
    for area in areas:
        removed += [store.uri(*area, run) for run in store.sweep_incomplete(*area, older_than_s=older_than_s)]
    if removed:
        get_run_logger().warning("removed %d incomplete run folders: %s", len(removed), ", ".join(removed))
    return removed


@task(name="fetch-model-folder", **IO_RETRIES)
def model_folder(store_root: str | None, prefix: tuple[str, ...]) -> str:
    """A local folder holding a stored run (the store folder itself, or a verified download)."""
    store = Store.open(store_root)
    if store.is_local:
        return store.path(*prefix)
    target = download_cache(store.uri(*prefix))
    store.fetch_run(tuple(prefix), target)
    return str(target)


# -- ECG -------------------------------------------------------------------------------------
@task(name="prepare-ecg-record", cache_policy=NO_CACHE, timeout_seconds=600)
def prepare_ecg_record(record: str, config: str, store_root: str | None) -> dict:
    """Scalogram, signal and rhythm features of one record, cached by content + config in the store
    (a remote store's entries go through this machine's disk: see ``pipeline.ecg.feature_store``)."""
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.feature_store import shared_cache
    from pipeline.ecg.prepare import prepare_path

    cfg = load_config(config, EcgConfig)
    try:
        with shared_cache(Store.open(store_root), cfg, [record]) as cache_dir:
            prepared = prepare_path(record, cfg, cache_dir)
    except UserError as exc:
        return {"record": Path(record).name, "status": "skipped", "reason": str(exc)}
    return {"record": prepared.name, "status": prepared.label.status, "label": prepared.label.label}


@task(name="train-ecg", **TRAIN)
def train_ecg_task(config: str, data: list[str], store_root: str | None, cv: bool = True, test: bool = False) -> dict:
    """``pipeline.ecg.train.train_ecg`` -> ``{"uri", "run_id", "metrics"}`` (model published to the store)."""
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.train import train_ecg

    cfg = load_config(config, EcgConfig)
    return train_ecg(cfg, data, store=Store.open(store_root), cv=cv, progress=False, test=test)


@task(name="evaluate-ecg", **COMPUTE)
def evaluate_ecg_task(data: str | list[str], model: str, exclude: set[str] = frozenset()) -> dict:
    """``pipeline.ecg.evaluate.evaluate_folder`` (model and the rule baseline on the same records);
    no progress bar, which would only clutter the worker's log."""
    from pipeline.ecg.evaluate import evaluate_folder

    return evaluate_folder(data, model, exclude=exclude, progress=False)


@task(name="predict-ecg", **COMPUTE)
def predict_ecg_task(model: str, records: list[str], store_root: str | None) -> dict:
    """Classify local records with ``model`` (name, NAME@RUN, folder or ``rule``)."""
    from pipeline.ecg.predict import predict_paths, resolve_model

    loaded = resolve_model(model, store=Store.open(store_root))
    results, notes, failed = predict_paths(loaded, records)  # unreadable records are listed, not fatal
    return {"results": results, "notes": notes, "failed": failed, "model": loaded.label}


# -- separation ------------------------------------------------------------------------------
@task(name="train-separator", **TRAIN)
def train_svs_task(config: str, data: str, store_root: str | None) -> dict:
    """``pipeline.svs.train.train_separator`` -> ``{"uri", "run_id", "metrics"}``."""
    from pipeline.config import load_config
    from pipeline.svs.config import SvsConfig
    from pipeline.svs.train import train_separator

    cfg = load_config(config, SvsConfig)
    return train_separator(cfg, data, store=Store.open(store_root), progress=False)


@task(name="evaluate-separator", **COMPUTE)
def evaluate_svs_task(data: str, model: str | None) -> dict:
    """``pipeline.svs.evaluate.evaluate_separator`` on the model's held-out tracks (all tracks if it
    records none). Returns ``{"report", "tracks", "subset"}``; ``tracks`` are per-track rows."""
    from pipeline.svs.evaluate import evaluate_separator

    with tempfile.TemporaryDirectory() as tmp:
        try:
            report, subset = evaluate_separator(data, model=model, out=tmp, subset="test"), "test"
        except UserError:
            report, subset = evaluate_separator(data, model=model, out=tmp, subset="all"), "all"
        rows = []
        table = Path(tmp) / "tracks.csv"
        if table.exists():
            with table.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
    return {"report": report, "tracks": rows, "subset": subset}


@task(name="separate-file", **STORE_WRITE, timeout_seconds=HOUR)
def separate_task(path: str, model: str | None, store_root: str | None, separator: str) -> dict:
    """One audio file -> stems in the store (``stems/<track_id>/<run_id>/``, manifest last)."""
    separate = load_callable(separator)
    return separate(path, model=model, store=Store.open(store_root))


# -- Prefect UI artifacts ----------------------------------------------------------------------
def artifact_key(*parts: str) -> str:
    """Artifact keys allow only lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def confusion_markdown(confusion: list[list[int]], classes: list[str]) -> str:
    header = ["true \\ predicted", *classes]
    return markdown_table(header, [[c, *row] for c, row in zip(classes, confusion)])


def classification_rows(report: dict, name: str) -> list[dict]:
    """Per-class + overall rows for a table artifact, model and rule baseline side by side."""
    rows = []
    for label, rep in ((name, report), ("rule baseline", report.get("baseline"))):
        if not rep:
            continue
        rows.append({"model": label, "class": "all", "accuracy": round(rep["accuracy"], 4),
                     "macro_f1": round(rep["macro_f1"], 4), "sensitivity": None, "specificity": None,
                     "f1": None, "support": sum(c["support"] for c in rep["per_class"].values())})
        for cls, m in rep["per_class"].items():
            rows.append({"model": label, "class": cls, "accuracy": None, "macro_f1": None,
                         "sensitivity": None if m["sensitivity"] is None else round(m["sensitivity"], 4),
                         "specificity": None if m["specificity"] is None else round(m["specificity"], 4),
                         "f1": round(m["f1"], 4), "support": m["support"]})
    return rows


def device_note(device: dict) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``: what trained the model, for reports."""
    return device["device"] + (f" ({device['gpu']})" if device.get("gpu") else "")


def manifest_link(uri: str) -> str:
    link = uri.rstrip("/") + "/manifest.json"
    return link if "://" in link else "file://" + link


def publish_ui(flow_name: str, *, table: list[dict] | None, markdown: str, manifest_uri: str | None,
               description: str = "") -> None:
    """Table, markdown report and manifest link artifacts (keyed, so the UI keeps their history)."""
    if table:
        create_table_artifact(table, key=artifact_key(flow_name, "metrics"), description=description or None)
    create_markdown_artifact(markdown, key=artifact_key(flow_name, "report"), description=description or None)
    if manifest_uri:
        create_link_artifact(manifest_link(manifest_uri), link_text="manifest.json",
                             key=artifact_key(flow_name, "manifest"), description=manifest_uri)


class Progress:
    """A progress artifact that a flow bumps as steps finish (0-100 %)."""

    def __init__(self, flow_name: str, description: str) -> None:
        self.id = create_progress_artifact(0.0, key=artifact_key(flow_name, "progress"), description=description)

    def update(self, percent: float, note: str | None = None) -> None:
        update_progress_artifact(self.id, max(0.0, min(100.0, float(percent))), description=note)
        if note:
            get_run_logger().info("%3.0f%% %s", percent, note)


def predictions_csv(results: list[dict], sha256: dict[str, str]) -> str:
    """One row per record: record, label, probability per class, model, input sha256."""
    classes = list(results[0]["probabilities"]) if results else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["record", "label", *[f"p_{c}" for c in classes], "model", "sha256"])
    for row in results:
        writer.writerow([Path(row["record"]).name, row["label"], *[row["probabilities"][c] for c in classes],
                         row["model"], sha256.get(row["record"], "")])
    return buffer.getvalue()
