"""``pipeline models list`` / ``retune``: what the artifact store holds, and new inference defaults."""

from __future__ import annotations

import json
from typing import Optional

import typer

from pipeline.cli import models_app


@models_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List trained models (task, name, latest run, headline metrics)."""
    from pipeline.cli import listed_folders
    from pipeline.store import Store

    store = Store.open()
    rows = []
    for task in ("ecg", "svs"):
        for name in listed_folders(store, "models", task):
            run = store.latest("models", task, name)
            if run:
                manifest = store.read_manifest("models", task, name, run) or {}
                rows.append({"task": task, "name": name, "run_id": run, "metrics": manifest.get("metrics", {})})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items() if isinstance(v, float))
        typer.echo(f"{row['task']}\t{row['name']}\t{row['run_id']}\t{metrics}")


@models_app.command("retune")
def retune(
    name: str = typer.Argument(..., help="Separator name in the store, e.g. svs-default."),
    run: Optional[str] = typer.Option(None, "--run", help="Run id to start from (default: the latest)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Voice-probability threshold."),
    wiener: Optional[bool] = typer.Option(None, "--wiener/--no-wiener", help="Soft Wiener-like post-filter."),
    input_rms_db: Optional[float] = typer.Option(None, "--input-rms-db", min=-100.0, max=0.0, help="Scale each chunk to this RMS level (dBFS) before the network."),
    reason: str = typer.Option("", "--reason", help="A sentence for the model card: how the settings were chosen."),
) -> None:
    """Publish a separator again with other inference defaults (same weights, new run, latest moved to it)."""
    from pipeline.store import Store, validate_id
    from pipeline.svs.retune import retune_separator

    validate_id(name, "model name")
    if run:
        validate_id(run, "run id")
    new = retune_separator(Store.open(), name, run, threshold=threshold, wiener=wiener, input_rms_db=input_rms_db,
                           reason=reason)
    typer.echo(new)
