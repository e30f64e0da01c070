"""Evaluate an ECG model on a folder (or manifest) of labelled WFDB records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pipeline.atomic import atomic_path
from pipeline.ecg.predict import predict_prepared, resolve_model
from pipeline.ecg.prepare import find_records, prepare_many
from pipeline.errors import UserError
from pipeline.evaluation import classification_report, plot_confusion
from pipeline.models.rule import rule_predict


def evaluate_folder(data: str | Path, model_spec: str | None, backend: str = "auto", out: Path | None = None) -> dict:
    """Report with ``accuracy``, ``macro_f1``, ``per_class``, ``confusion``, ``accuracy_ci95``,
    ``n_records``, ``n_skipped`` (with reasons) and the rule ``baseline`` on the same records."""
    model = resolve_model(model_spec, backend=backend)
    cfg = model.config
    classes = model.meta["classes"]
    prepared, skipped = [], []
    paths = find_records(data)
    for path, record in zip(paths, prepare_many(paths, cfg)):
        if isinstance(record, UserError):
            skipped.append({"record": path.name, "reason": str(record)})
        elif record.label.status != "ok" or record.label.label not in classes:
            skipped.append({"record": path.name, "reason": f"label {record.label.describe()}"})
        else:
            prepared.append(record)
    if not prepared:
        raise UserError(f"no usable labelled records in {data} ({len(skipped)} skipped)")
    truth = np.array([classes.index(r.label.label) for r in prepared])
    predicted = predict_prepared(model, prepared).argmax(1)
    baseline = rule_predict(np.stack([r.features for r in prepared]), tuple(classes)).argmax(1)
    report = classification_report(truth, predicted, classes)
    report.update(
        model=model.label, n_records=len(prepared), n_skipped=len(skipped), skipped=skipped,
        baseline=classification_report(truth, baseline, classes),
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "report.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2))
        plot_confusion(report["confusion"], classes, out / "confusion.png", f"{model.label}: accuracy {report['accuracy']:.3f}")
    return report
