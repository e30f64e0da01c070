"""``pipeline stems list`` / ``pipeline stems get``: separated stems in the artifact store."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli import app
from pipeline.errors import UserError

stems_app = typer.Typer(help="Separated stems in the artifact store.")
app.add_typer(stems_app, name="stems")


@stems_app.command("list")
def list_stems(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every separated track with its complete runs (newest last)."""
    from pipeline.cli import listed_folders
    from pipeline.store import Store

    store = Store.open()
    rows = []
    for track in listed_folders(store, "stems"):
        for run in store.list_runs("stems", track):
            manifest = store.read_manifest("stems", track, run) or {}
            source = (manifest.get("inputs") or [{}])[0]
            rows.append({"track_id": track, "run_id": run, "model": manifest.get("config", {}).get("model"),
                         "created_utc": manifest.get("created_utc"), "seconds": source.get("seconds"),
                         "stems": [o["path"] for o in manifest.get("outputs", [])]})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['track_id']}\t{row['run_id']}\t{row['model']}\t{row['seconds']} s\t{','.join(row['stems'])}")


@stems_app.command("get")
def get_stems(
    track_id: str = typer.Argument(..., help="Track id printed by 'pipeline separate'."),
    run: Optional[str] = typer.Option(None, "--run", help="Model run id (default: the newest run for this track)."),
    stem: str = typer.Option("all", "--stem", help="vocals, accompaniment or all."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to copy the stems into."),
) -> None:
    """Copy stems of a separated track from the store into a folder (checksums verified)."""
    from pipeline.io.audio import check_writable_dir
    from pipeline.store import Store, validate_id

    validate_id(track_id, "track id")
    if run is not None:
        validate_id(run, "run id")
    if stem not in ("vocals", "accompaniment", "all"):
        raise UserError(f"unknown stem {stem!r}; use vocals, accompaniment or all")
    store = Store.open()
    runs = store.list_runs("stems", track_id)
    if not runs:
        raise UserError(f"no stems for track {track_id!r} in {store.root}; see 'pipeline stems list'")
    if run is None:
        manifests = {r: store.read_manifest("stems", track_id, r) or {} for r in runs}
        run = max(runs, key=lambda r: (manifests[r].get("created_utc") or "", r))
    elif run not in runs:
        raise UserError(f"track {track_id!r} has no run {run!r}; runs: {', '.join(runs)}")
    manifest = store.read_manifest("stems", track_id, run)
    wanted = [o for o in manifest["outputs"] if stem == "all" or o["path"].rsplit(".", 1)[0] == stem]
    check_writable_dir(out)
    with tempfile.TemporaryDirectory(prefix=".tmp-stems-", dir=out) as tmp:  # verified before it replaces anything
        fetched = store.fetch_run(("stems", track_id, run), tmp, [o["path"] for o in wanted])
        for name, path in fetched.items():
            os.replace(path, out / name)
            typer.echo(str(out / name))
