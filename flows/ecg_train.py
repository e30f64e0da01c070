"""``ecg-train``: ingest -> scalograms (mapped, cached by content) -> train -> evaluate -> publish.

Nightly on the ``gpu`` pool (see prefect.yaml). Locally: ``pipeline flow run ecg-train
--config configs/ecg/ecg-default.yaml`` or ``python flows/ecg_train.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flows  # noqa: E402,F401  (ephemeral-mode defaults before Prefect is imported)
from prefect import flow  # noqa: E402

from flows._common import ecg_sources, resolve_config, training_device  # noqa: E402
from flows.alerts import HOOKS, alert  # noqa: E402
from flows.features import DEFAULT_CONFIG, run_scalograms  # noqa: E402
from flows.tasks import (  # noqa: E402
    Progress,
    classification_rows,
    confusion_markdown,
    device_note,
    evaluate_ecg_task,
    ingest_dataset,
    local_path,
    localize,
    markdown_table,
    model_folder,
    publish_report,
    publish_ui,
    safe_id,
    sweep_incomplete,
    train_ecg_task,
)
from pipeline.store import new_run_id  # noqa: E402

FLOW = "ecg-train"
RECORD_FILES = (".hea", ".mat", ".dat", ".csv")  # WFDB records and manifest CSVs


def report_markdown(cfg, result: dict, evaluation: dict, datasets: list[dict], features: dict, eval_label: str,
                    report_uri: str | None = None) -> str:
    """The run report: data versions, CV (model vs rule), evaluation confusion matrix, links."""
    metrics = result["metrics"]
    lines = [
        f"# ecg-train: {cfg.name} run {result['run_id']}",
        "",
        f"* model: `{result['uri']}` ({cfg.model.name})",
        *[f"* data: `{d['uri']}` (version {d['version']}, {d['n_files']} files)" for d in datasets],
        f"* records: {features['n_usable']}/{features['n_records']} usable"
        + (f", {metrics['holdout']['n_excluded']} held out by `{cfg.holdout}`" if cfg.holdout else ""),
        f"* feature cache: `{features['cache_dir']}`",
        f"* device: {device_note(result['device'])}",
    ]
    if report_uri:
        lines.append(f"* report: `{report_uri}`")
    cvm = metrics.get("cross_validation")
    if cvm:
        lines += ["", f"## {cvm['folds']}-fold cross-validation (held-out records)", "",
                  markdown_table(["", "accuracy", "95% CI", "macro-F1"], [
                      [cfg.model.name, cvm["accuracy"], f"{cvm['accuracy_ci95'][0]:.3f}-{cvm['accuracy_ci95'][1]:.3f}",
                       cvm["macro_f1"]],
                      ["rule baseline", cvm["baseline"]["accuracy"],
                       f"{cvm['baseline']['accuracy_ci95'][0]:.3f}-{cvm['baseline']['accuracy_ci95'][1]:.3f}",
                       cvm["baseline"]["macro_f1"]],
                  ]), "", "Confusion (out-of-fold):", "", confusion_markdown(cvm["confusion"], cvm["classes"])]
    lines += ["", f"## Evaluation on {eval_label}", "",
              markdown_table(["", "accuracy", "macro-F1", "records"], [
                  [evaluation["model"], evaluation["accuracy"], evaluation["macro_f1"], evaluation["n_records"]],
                  ["rule baseline", evaluation["baseline"]["accuracy"], evaluation["baseline"]["macro_f1"],
                   evaluation["n_records"]],
              ]), "", confusion_markdown(evaluation["confusion"], evaluation["classes"])]
    if features["skipped"]:
        lines += ["", "## Skipped records", "",
                  markdown_table(["record", "reason"], [[s["record"], s.get("reason", s["status"])]
                                                       for s in features["skipped"][:50]])]
    return "\n".join(lines) + "\n"


def dataset_name(source: str) -> str:
    """``ecg-<parent>-<folder>`` for a data source (``../shared/data/ecg/chapman`` -> ``ecg-ecg-chapman``)."""
    return "ecg-" + safe_id("-".join(Path(local_path(source)).parts[-2:]))


def evaluate(eval_data: str | list[str] | None, local: list[str], folder: str, metrics: dict,
             holdout: set[str]) -> tuple[dict, str]:
    """The evaluation shown in the report, and its label: ``eval_data`` when given, else the internal
    test scored by training (``test``), else the training records (in-sample, the holdout left out)."""
    if eval_data:
        given = [eval_data] if isinstance(eval_data, str) else eval_data
        return evaluate_ecg_task([localize(d) for d in given], folder), f"`{eval_data}`"
    if "internal_test" in metrics:
        return metrics["internal_test"], "the internal test split (holdout; scored once, nothing chosen from it)"
    return (evaluate_ecg_task(local, folder, holdout),
            "the training records (in-sample; see CV or validation for held-out)")


@flow(name=FLOW, log_prints=True, timeout_seconds=10 * 3600, **HOOKS)
def ecg_train(config: str = DEFAULT_CONFIG, data: str | list[str] | None = None, store: str | None = None,
              cv: bool = True, test: bool = False, eval_data: str | list[str] | None = None,
              task_runner: str = "threads", max_workers: int = 2, require_cuda: bool = False) -> dict:
    """Train an ECG rhythm classifier and publish it, its report and UI artifacts.

    Args:
        config: ECG config YAML (``configs/ecg/*.yaml``).
        data: folder(s) (or fsspec URLs) of WFDB records or manifest CSVs; default: the config's
            ``data`` (one or a list), chosen as ``pipeline train ecg`` chooses them. The config's
            ``holdout`` records are never trained on.
        store: artifact store root; default ``PIPELINE_STORE`` or the repo's ``artifacts/``.
        cv: k-fold cross-validation (model and rule baseline) before the final fit (single models).
        test: score the finished model once on the config's holdout records (``train ecg --test``);
            the report then shows that evaluation.
        eval_data: labelled records to evaluate on instead.
        task_runner: ``threads``, ``dask`` or a Dask scheduler address for the scalogram step.
        max_workers: parallel scalogram workers.
        require_cuda: fail at once when training would not run on a CUDA device.
    """
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.train import holdout_names

    config = resolve_config(config)
    cfg = load_config(config, EcgConfig)
    sources = ecg_sources(data, cfg, config)
    device = training_device(cfg.train.device, require_cuda)
    if "warning" in device:
        alert(FLOW, f"{cfg.name}: training on CPU", device["warning"])
    sweep_incomplete(store, [("reports", FLOW), ("models", "ecg", cfg.name)])
    progress = Progress(FLOW, f"{cfg.name}: ingest, scalograms, train, evaluate, publish")
    local = [localize(source) for source in sources]
    datasets = [ingest_dataset(path, dataset_name(source), store, RECORD_FILES) for source, path in zip(sources, local)]
    progress.update(10, ", ".join(f"dataset {d['version']} ({d['n_files']} files)" for d in datasets))
    features = run_scalograms(config, local, store, task_runner, max_workers)
    progress.update(40, f"scalograms for {features['n_usable']}/{features['n_records']} records")
    result = {**train_ecg_task(config, local, store, cv, test), "device": device}
    progress.update(80, f"trained {result['uri']}")
    folder = model_folder(store, ("models", "ecg", cfg.name, result["run_id"]))
    evaluation, eval_label = evaluate(eval_data, local, folder, result["metrics"], holdout_names(cfg))
    summary = {
        "model_uri": result["uri"], "model_run_id": result["run_id"], "dataset_uris": [d["uri"] for d in datasets],
        "device": device, "evaluation": {k: evaluation[k] for k in ("accuracy", "macro_f1", "accuracy_ci95", "n_records")},
        "rule_baseline": {k: evaluation["baseline"][k] for k in ("accuracy", "macro_f1")},
    }
    cvm = result["metrics"].get("cross_validation")
    if cvm:
        summary["cross_validation"] = {"accuracy": cvm["accuracy"], "macro_f1": cvm["macro_f1"],
                                       "rule_accuracy": cvm["baseline"]["accuracy"]}
    markdown = report_markdown(cfg, result, evaluation, datasets, features, eval_label)
    report_uri = publish_report(
        store, ("reports", FLOW), {"report.md": markdown, "evaluation.json": json.dumps(evaluation, indent=2)},
        run_id=new_run_id(), config=cfg.model_dump(mode="json"), metrics=summary,
        inputs=[{"uri": d["uri"], "version": d["version"]} for d in datasets],
        extra={"model_uri": result["uri"], "device": device},
    )
    summary["report_uri"] = report_uri
    publish_ui(FLOW, table=classification_rows(cvm or evaluation, cfg.model.name),
               markdown=report_markdown(cfg, result, evaluation, datasets, features, eval_label, report_uri),
               manifest_uri=result["uri"], description=f"{cfg.name} {result['run_id']}")
    progress.update(100, f"published {result['uri']}")
    return summary


if __name__ == "__main__":
    ecg_train()
