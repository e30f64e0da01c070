"""``pipeline models list``: what the artifact store holds."""

from __future__ import annotations

import json

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
