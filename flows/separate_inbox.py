"""``separate-inbox``: every new audio file under an inbox -> vocals + accompaniment stems in the store.

Stems live at ``stems/<track_id>/<model_run_id>/``; a file is skipped when that folder is
complete for the model the run uses now, so a new or different model separates everything
again, and a changed file with the same name gets a new track id (it embeds a content hash).
Runs every 15 minutes on the ``gpu`` pool (see prefect.yaml); fetch results with
``pipeline stems list`` / ``pipeline stems get TRACK_ID -o DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flows  # noqa: E402,F401  (ephemeral-mode defaults before Prefect is imported)
from prefect import flow, get_run_logger  # noqa: E402

from flows.alerts import HOOKS  # noqa: E402
from flows.tasks import (  # noqa: E402
    AUDIO_SUFFIXES,
    Progress,
    list_inbox,
    load_callable,
    localize,
    markdown_table,
    publish_report,
    publish_ui,
    safe_id,
    separate_task,
    sweep_incomplete,
)
from pipeline.store import RunExistsError, Store, new_run_id, sha256_file  # noqa: E402

FLOW = "separate-inbox"
DEFAULT_SEPARATOR = "pipeline.svs.separate:separate_file"


def track_id_function(separator: str):
    """The ``track_id_for(path, sha256)`` that goes with ``separator`` (same module), else a fallback."""
    module = separator.partition(":")[0]
    try:
        return load_callable(f"{module}:track_id_for")
    except (ImportError, AttributeError):
        return lambda path, digest: f"{safe_id(Path(path).name)}-{digest[:8]}"


def model_run_id(separator: str, model: str | None, store: Store) -> str:
    """Run id of the model ``separator`` would use now: ``model_run_id(model, store)`` from the
    separator's module, else the store's separator model (``pipeline.svs.bundle.resolve_model``)."""
    module = separator.partition(":")[0]
    try:
        resolve = load_callable(f"{module}:model_run_id")
    except (ImportError, AttributeError):
        from pipeline.svs.bundle import resolve_model

        return resolve_model(model, store).run_id
    return resolve(model, store)


@flow(name=FLOW, log_prints=True, timeout_seconds=6 * 3600, **HOOKS)
def separate_inbox(inbox: str, model: str | None = None, store: str | None = None,
                   separator: str = DEFAULT_SEPARATOR, limit: int | None = None) -> dict:
    """Separate every audio file under ``inbox`` that has no stems from the current model yet.

    Args:
        inbox: folder or fsspec URL (``s3://bucket/inbox``) with wav/flac/mp3/... files.
        model: separator model (``NAME``, ``NAME@RUN`` or a folder); default ``svs-default``.
        store: artifact store root; default ``PIPELINE_STORE`` or the repo's ``artifacts/``.
        separator: ``module:function`` with ``separate_file``'s signature (dependency injection).
        limit: separate at most this many files per run (the rest wait for the next run).

    Returns:
        ``{"separated": [...], "skipped": [...], "failed": [...], "report_uri"}``.
    """
    logger = get_run_logger()
    progress = Progress(FLOW, f"separate new audio in {inbox}")
    track_id_for = track_id_function(separator)
    target = Store.open(store)
    sweep_incomplete(store, [("reports", FLOW)])
    files = list_inbox(inbox, AUDIO_SUFFIXES)
    model_run = model_run_id(separator, model, target) if files else None
    todo, skipped = [], []
    for uri in files:
        local = localize(uri)
        track_id = track_id_for(Path(local), sha256_file(local))
        if target.read_manifest("stems", track_id, model_run) is not None:
            skipped.append({"file": Path(local).name, "track_id": track_id, "run_id": model_run})
        else:
            todo.append((uri, local, track_id))
    if limit is not None:
        todo = todo[:limit]
    logger.info("%d audio files: %d new, %d already separated by model run %s", len(files), len(todo), len(skipped),
                model_run)
    progress.update(5, f"{len(todo)} new of {len(files)} files")
    separated, failed = [], []
    for index, (uri, local, track_id) in enumerate(todo, start=1):
        state = separate_task(local, model, store, separator, return_state=True)
        if state.is_completed():
            result = state.result()
            manifest = target.uri("stems", result["track_id"], result["run_id"])
            separated.append({"file": Path(local).name, "track_id": result["track_id"], "run_id": result["run_id"],
                              "seconds": result.get("seconds"), "elapsed_s": result.get("elapsed_s"),
                              "stems": manifest})
        else:
            error = state.result(raise_on_failure=False)
            if isinstance(error, RunExistsError):  # another run separated it meanwhile
                skipped.append({"file": Path(local).name, "track_id": track_id, "run_id": None})
            else:
                failed.append({"file": Path(local).name, "error": str(error)[:300]})
        progress.update(5 + 90 * index / max(len(todo), 1), f"{index}/{len(todo)} {Path(local).name}")
    rows = [[s["file"], s["track_id"], s["run_id"], s["seconds"], s["elapsed_s"]] for s in separated]
    markdown = "\n".join([
        f"# {FLOW}: {len(separated)} separated, {len(skipped)} skipped, {len(failed)} failed", "",
        f"* inbox: `{inbox}`", f"* store: `{target.root}`", "",
        "Fetch stems with `pipeline stems get TRACK_ID -o DIR`.", "",
        markdown_table(["file", "track id", "model run", "seconds", "elapsed s"], rows) if rows else "Nothing new.",
        *(["", "## Failed", "", markdown_table(["file", "error"], [[f["file"], f["error"]] for f in failed])]
          if failed else []),
    ]) + "\n"
    report_uri = None
    if separated or failed:
        report_uri = publish_report(
            store, ("reports", FLOW), {"report.md": markdown}, run_id=new_run_id(), kind="report",
            metrics={"separated": len(separated), "skipped": len(skipped), "failed": len(failed)},
            inputs=[{"uri": uri} for uri, _, _ in todo], extra={"separated": separated, "failed": failed},
        )
    publish_ui(FLOW, table=[{k: v for k, v in s.items()} for s in separated] or None, markdown=markdown,
               manifest_uri=separated[-1]["stems"] if separated else report_uri,
               description=f"{len(separated)} separated from {inbox}")
    progress.update(100, "done")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(todo)} files failed: " +
                           "; ".join(f"{f['file']}: {f['error']}" for f in failed[:5]))
    return {"separated": separated, "skipped": skipped, "failed": failed, "report_uri": report_uri}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=separate_inbox.__doc__)
    parser.add_argument("inbox")
    parser.add_argument("--model", default=None)
    separate_inbox(**vars(parser.parse_args()))
