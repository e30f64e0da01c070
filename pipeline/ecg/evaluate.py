"""Evaluate an ECG model on labelled WFDB records (folders, manifests, or a record list within them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.ecg.bundle import LoadedModel
from pipeline.ecg.predict import resolve_model, score_paths
from pipeline.ecg.prepare import Needed, find_all
from pipeline.ecg.report_page import write_ecg_page
from pipeline.ecg.splits import read_record_list
from pipeline.errors import UserError
from pipeline.evaluation import (calibration_report, classification_report, plot_confusion, plot_reliability,
                                 subgroup_recall)
from pipeline.models.rule import rule_predict


def select_records(data: str | Path | list, only: str | Path | None, exclude: set[str] = frozenset()) -> list[Path]:
    """Record paths of ``data`` less those named in ``exclude``; with ``only`` (a record list file),
    just the records it names."""
    paths, _ = find_all(data, exclude)
    if only is None:
        return paths
    wanted = read_record_list(only)
    chosen = [p for p in paths if p.name in wanted]
    if not chosen:
        where = ", ".join(map(str, data)) if isinstance(data, (list, tuple)) else str(data)
        raise UserError(f"none of the {len(wanted)} records listed in {only} is in {where}")
    return chosen


def evaluate_paths(model: LoadedModel, paths: list[Path], progress: bool = True) -> dict:
    """Report with ``accuracy`` (bootstrap CI), ``balanced_accuracy``, ``macro_f1``, ``per_class``,
    ``confusion``, ``calibration`` (ECE), ``flutter`` recall, ``errors``, skipped records with reasons,
    and the rule ``baseline`` on the same records.

    Records are scored as :func:`~pipeline.ecg.predict.score_paths` scores them (worker processes,
    no inputs kept), so memory does not grow with the number of records."""
    classes = model.meta["classes"]
    prepared, skipped = [], []
    needed = Needed(image=model.needed.image, features=True)  # the rule baseline reads the rhythm features
    for path, record in zip(paths, score_paths(model, paths, progress=progress, needed=needed)):
        if record.error is not None:
            skipped.append({"record": path.name, "reason": record.error})
        elif record.label.status != "ok" or record.label.label not in classes:
            skipped.append({"record": path.name, "reason": f"label {record.label.describe()}"})
        else:
            prepared.append(record)
    if not prepared:
        raise UserError(f"no usable labelled records among {len(paths)} ({len(skipped)} skipped)")
    truth = np.array([classes.index(r.label.label) for r in prepared])
    flutter = np.array([r.label.flutter for r in prepared], dtype=bool)
    probabilities = np.stack([r.probabilities for r in prepared])
    per_member = np.stack([r.members for r in prepared], axis=1) if model.members else None
    predicted = probabilities.argmax(1)
    baseline = rule_predict(np.stack([r.features for r in prepared]), tuple(classes)).argmax(1)
    report = classification_report(truth, predicted, classes)
    report.update(
        model=model.label, n_records=len(prepared), n_skipped=len(skipped), skipped=skipped,
        calibration=calibration_report(truth, probabilities), flutter=subgroup_recall(truth, predicted, flutter),
        errors=[{"record": prepared[i].name, "true": classes[truth[i]], "predicted": classes[predicted[i]],
                 "probability": round(float(probabilities[i].max()), 4)} for i in np.flatnonzero(predicted != truth)],
        baseline={**classification_report(truth, baseline, classes), "flutter": subgroup_recall(truth, baseline, flutter)},
    )
    if model.members:
        report["members"] = member_breakdown(model, per_member, truth, flutter)
    return report


def member_breakdown(model: LoadedModel, per_member: np.ndarray, truth: np.ndarray, flutter: np.ndarray) -> dict:
    """Each member alone, and each view's seeds averaged (equal weights, no temperature), on the same
    records: what one seed and what seeds of one view achieve, beside the whole ensemble."""
    from pipeline.ecg.combine import combine

    classes = model.meta["classes"]

    def short(probs: np.ndarray) -> dict:
        pred = probs.argmax(1)
        full = classification_report(truth, pred, classes)
        return {"accuracy": full["accuracy"], "balanced_accuracy": full["balanced_accuracy"], "macro_f1": full["macro_f1"],
                "ece": calibration_report(truth, probs)["ece"], "flutter": subgroup_recall(truth, pred, flutter)}

    keys = [m["name"] for m in model.meta["members"]]
    out = {key: short(probs) for key, probs in zip(keys, per_member)}
    views: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        views.setdefault(key.rsplit("-s", 1)[0], []).append(i)
    for view, index in views.items():
        if len(index) > 1:
            out[f"{view} (mean of {len(index)} members)"] = short(combine(per_member[index], np.full(len(index), 1 / len(index)), 1.0))
    return out


def evaluate_folder(data: str | Path | list, model_spec: str | None, backend: str = "auto", out: Path | None = None,
                    only: str | Path | None = None, exclude: set[str] = frozenset(), progress: bool = True) -> dict:
    """:func:`evaluate_paths` on the records of ``data`` (restricted to ``only``, less ``exclude``),
    written to ``out`` (``report.json``, the plots, and ``report.html`` with explanations of the errors)."""
    from pipeline.io.audio import check_writable_dir

    model = resolve_model(model_spec, backend=backend)
    paths = select_records(data, only, exclude)
    if out is not None:  # before the records are scored, not after
        check_writable_dir(out, what="report folder")
    report = evaluate_paths(model, paths, progress)
    if out is not None:
        with atomic_path(out / "report.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2))
        plot_confusion(report["confusion"], model.meta["classes"], out / "confusion.png",
                       f"{model.label}: accuracy {report['accuracy']:.3f}")
        plot_reliability(report["calibration"], out / "reliability.png", model.label)
        write_ecg_page(report, model, paths, out)
    return report
