"""``svs-train``: ingest -> separator training (autoencoder pre-training, then IBM) -> evaluate -> publish.

Nightly on the ``gpu`` pool (see prefect.yaml). The two training stages run inside
``pipeline.svs.train.train_separator``; spectrograms are computed there on the fly (no
separate feature step).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flows  # noqa: E402,F401  (ephemeral-mode defaults before Prefect is imported)
from prefect import flow  # noqa: E402

from flows._common import config_data, resolve_config, training_device  # noqa: E402
from flows.alerts import HOOKS, alert  # noqa: E402
from flows.tasks import (  # noqa: E402
    Progress,
    device_note,
    evaluate_svs_task,
    ingest_dataset,
    local_path,
    localize,
    markdown_table,
    model_folder,
    publish_report,
    publish_ui,
    safe_id,
    sweep_incomplete,
    train_svs_task,
)
from pipeline.store import new_run_id  # noqa: E402

FLOW = "svs-train"
DEFAULT_CONFIG = "configs/svs/svs-default.yaml"
AUDIO = (".wav", ".flac")
_METRICS = ("gnsdr", "gsdr", "gsir", "gsar")
_TRACK_COLUMNS = ("model_nsdr_vocals", "model_sdr_vocals", "model_sir_vocals", "model_sar_vocals",
                  "model_nsdr_accompaniment", "oracle_nsdr_vocals")


def metric_tables(evaluation: dict) -> tuple[list[dict], list[dict]]:
    """(global rows: model / oracle IBM / mixture x metric x source, per-track rows) in dB."""
    report = evaluation["report"]
    global_rows = []
    for label, block in (("model", report), ("oracle IBM", report.get("oracle_ibm", {})),
                         ("mixture", report.get("mixture", {}))):
        for metric in _METRICS:
            values = block.get(metric)
            if isinstance(values, dict):
                global_rows.append({"system": label, "metric": metric,
                                    **{src: round(float(v), 3) for src, v in values.items()}})
    track_rows = []
    for row in evaluation.get("tracks", []):
        out = {"track": row.get("track")}
        for column in _TRACK_COLUMNS:
            if row.get(column) not in (None, ""):
                out[column.replace("model_", "")] = round(float(row[column]), 2)
        track_rows.append(out)
    return global_rows, track_rows


def report_markdown(cfg, result: dict, evaluation: dict, dataset: dict, report_uri: str | None = None) -> str:
    global_rows, track_rows = metric_tables(evaluation)
    report = evaluation["report"]
    lines = [f"# svs-train: {cfg.name} run {result['run_id']}", "",
             f"* model: `{result['uri']}` ({cfg.model.name})",
             f"* data: `{dataset['uri']}` (version {dataset['version']}, {dataset['n_files']} files)",
             f"* device: {device_note(result['device'])}",
             f"* evaluated on: {report.get('n_tracks')} {'held-out' if evaluation['subset'] == 'test' else ''} tracks"
             f" ({report.get('seconds')} s)"]
    if report_uri:
        lines.append(f"* report: `{report_uri}`")
    if global_rows:
        header = list(dict.fromkeys(k for row in global_rows for k in row))
        lines += ["", "## Global metrics (dB, duration-weighted)", "",
                  markdown_table(header, [[row.get(h) for h in header] for row in global_rows])]
    if track_rows:
        header = list(dict.fromkeys(k for row in track_rows for k in row))
        lines += ["", "## Per-track SDR / SIR / SAR (dB)", "",
                  markdown_table(header, [[row.get(h) for h in header] for row in track_rows[:200]])]
    return "\n".join(lines) + "\n"


@flow(name=FLOW, log_prints=True, timeout_seconds=10 * 3600, **HOOKS)
def svs_train(config: str = DEFAULT_CONFIG, data: str | None = None, store: str | None = None,
              eval_data: str | None = None, require_cuda: bool = False) -> dict:
    """Train the singing-voice separator, evaluate it (NSDR/SIR/SAR), publish model, report, UI artifacts.

    Args:
        config: separator config YAML (``configs/svs/*.yaml``).
        data: training data folder (or fsspec URL); default: the config's ``data``.
        store: artifact store root; default ``PIPELINE_STORE`` or the repo's ``artifacts/``.
        eval_data: data to evaluate on; default: ``data`` (the library holds out its test split).
        require_cuda: fail at once when training would not run on a CUDA device.
    """
    from pipeline.config import load_config
    from pipeline.svs.config import SvsConfig

    config = resolve_config(config)
    cfg = load_config(config, SvsConfig)
    source = config_data(data, cfg.data, config)
    device = training_device(cfg.train.device, require_cuda)
    if "warning" in device:
        alert(FLOW, f"{cfg.name}: training on CPU", device["warning"])
    sweep_incomplete(store, [("reports", FLOW), ("models", "svs", cfg.name)])
    progress = Progress(FLOW, f"{cfg.name}: ingest, pre-train + train, evaluate, publish")
    local = localize(source)
    dataset = ingest_dataset(local, "svs-" + safe_id("-".join(Path(local_path(source)).parts[-2:])), store, AUDIO)
    progress.update(10, f"dataset {dataset['version']} ({dataset['n_files']} audio files)")
    result = {**train_svs_task(config, local, store), "device": device}
    progress.update(75, f"trained {result['uri']}")
    folder = model_folder(store, ("models", "svs", cfg.name, result["run_id"]))
    evaluation = evaluate_svs_task(localize(eval_data) if eval_data else local, folder)
    global_rows, track_rows = metric_tables(evaluation)
    summary = {"model_uri": result["uri"], "model_run_id": result["run_id"], "dataset_uri": dataset["uri"],
               "device": device,
               "evaluation": {f"{r['metric']}_vocals": r.get("vocals") for r in global_rows if r["system"] == "model"}}
    report_uri = publish_report(
        store, ("reports", FLOW), {"report.md": report_markdown(cfg, result, evaluation, dataset),
                                   "evaluation.json": json.dumps(evaluation["report"], indent=2, default=str)},
        run_id=new_run_id(), config=cfg.model_dump(mode="json"), metrics=summary["evaluation"],
        inputs=[{"uri": dataset["uri"], "version": dataset["version"]}], extra={"model_uri": result["uri"], "device": device},
    )
    summary["report_uri"] = report_uri
    publish_ui(FLOW, table=track_rows or global_rows,
               markdown=report_markdown(cfg, result, evaluation, dataset, report_uri),
               manifest_uri=result["uri"], description=f"{cfg.name} {result['run_id']}")
    progress.update(100, f"published {result['uri']}")
    return summary


if __name__ == "__main__":
    svs_train()
