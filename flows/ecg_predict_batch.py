"""``ecg-predict-batch``: every new WFDB record under an inbox -> one predictions CSV in the store.

"New" means: no earlier batch under ``predictions/ecg/`` classified the same record content
(sha256 of its header and signal files) with the same model spec. Runs every 15 minutes on
the ``cpu`` pool (see prefect.yaml).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fsspec  # noqa: E402
import flows  # noqa: E402,F401  (ephemeral-mode defaults before Prefect is imported)
from prefect import flow, task  # noqa: E402

from flows.alerts import HOOKS, alert  # noqa: E402
from flows.tasks import (  # noqa: E402
    IO_RETRIES,
    Progress,
    download_cache,
    is_remote,
    list_inbox,
    markdown_table,
    predict_ecg_task,
    predictions_csv,
    publish_report,
    publish_ui,
    sweep_incomplete,
)
from pipeline.store import Store, new_run_id  # noqa: E402

FLOW = "ecg-predict-batch"
AREA = ("predictions", "ecg")
SIGNAL_SUFFIXES = (".mat", ".dat")


@task(name="localize-record", **IO_RETRIES)
def localize_record(header_uri: str) -> dict:
    """Copy a record's ``.hea`` and signal file locally (if remote); return its path and content sha256."""
    base = header_uri[: -len(".hea")]
    if is_remote(header_uri):
        fs, _ = fsspec.core.url_to_fs(header_uri)
        folder = download_cache(base)
        folder.mkdir(parents=True, exist_ok=True)
        for suffix in (".hea", *SIGNAL_SUFFIXES):
            if fs.exists(base + suffix):
                fs.get_file(base + suffix, str(folder / (Path(base).name + suffix)))
        local = str(folder / Path(base).name)
    else:
        local = base
    digest = hashlib.sha256()
    for suffix in (".hea", *SIGNAL_SUFFIXES):
        candidate = Path(local + suffix)
        if candidate.exists():
            digest.update(candidate.read_bytes())
    return {"uri": header_uri, "path": local, "sha256": digest.hexdigest(), "name": Path(base).name}


def already_predicted(store: Store, model: str) -> set[str]:
    """sha256 of every record some earlier batch classified with ``model``."""
    done = set()
    for run in store.list_runs(*AREA):
        manifest = store.read_manifest(*AREA, run) or {}
        if manifest.get("model_spec") == model:
            done.update(i.get("sha256") for i in manifest.get("inputs", []))
    return done


@flow(name=FLOW, log_prints=True, timeout_seconds=3600, **HOOKS)
def ecg_predict_batch(inbox: str, model: str = "ecg-default", store: str | None = None) -> dict:
    """Classify the rhythm of every new record under ``inbox`` (folder or fsspec URL).

    Args:
        inbox: folder or URL holding ``*.hea`` plus ``.mat``/``.dat`` files.
        model: model name in the store, ``NAME@RUN``, a model folder, or ``rule``.
        store: artifact store root; default ``PIPELINE_STORE`` or the repo's ``artifacts/``.

    Returns:
        ``{"n_new", "n_seen", "n_failed", "uri"}`` (``uri`` is None when nothing was new).
        Unreadable records are listed in the report and manifest, raise an alert, and are not
        retried until their files change. A missing inbox fails the run.
    """
    sweep_incomplete(store, [AREA])
    progress = Progress(FLOW, f"classify new records in {inbox}")
    headers = list_inbox(inbox, (".hea",))
    records = [localize_record(h) for h in headers]
    seen = already_predicted(Store.open(store), model)
    new = [r for r in records if r["sha256"] not in seen]
    progress.update(30, f"{len(new)} new of {len(records)} records")
    if not new:
        publish_ui(FLOW, table=None, markdown=f"# {FLOW}\n\nNo new records in `{inbox}` ({len(records)} seen).\n",
                   manifest_uri=None)
        progress.update(100, "nothing new")
        return {"n_new": 0, "n_seen": len(records), "n_failed": 0, "uri": None}
    output = predict_ecg_task(model, [r["path"] for r in new], store)
    sha = {r["path"]: r["sha256"] for r in new}
    errors = {f["record"]: f["error"] for f in output["failed"]}
    counts = Counter(row["label"] for row in output["results"])
    markdown = "\n".join([
        f"# {FLOW}: {len(new)} new records", "", f"* inbox: `{inbox}`", f"* model: `{output['model']}`", "",
        markdown_table(["label", "records"], sorted(counts.items())), "",
        markdown_table(["record", "label", "probability"],
                       [[Path(r["record"]).name, r["label"], max(r["probabilities"].values())]
                        for r in output["results"][:200]]),
        *(["", "Notes:", *[f"* {n}" for n in output["notes"]]] if output["notes"] else []),
        *(["", "Unreadable (recorded, not retried until the files change):", "",
           markdown_table(["record", "error"], [[Path(k).name, v] for k, v in errors.items()])] if errors else []),
    ]) + "\n"
    uri = publish_report(
        store, AREA, {"predictions.csv": predictions_csv(output["results"], sha), "report.md": markdown},
        run_id=new_run_id(), kind="predictions",
        metrics={"n_records": len(new), "labels": dict(counts), "n_failed": len(errors)},
        inputs=[{"uri": r["uri"], "record": r["name"], "sha256": r["sha256"],
                 **({"error": errors[r["path"]]} if r["path"] in errors else {})} for r in new],
        extra={"model_spec": model, "model": output["model"]},
    )
    if errors:
        alert(FLOW, f"{len(errors)} of {len(new)} new records in {inbox} are unusable",
              "\n".join(f"* {Path(k).name}: {v}" for k, v in errors.items()) + f"\n\nBatch: {uri}")
    table = [{"record": Path(r["record"]).name, "label": r["label"], **r["probabilities"]} for r in output["results"]]
    publish_ui(FLOW, table=table, markdown=markdown + f"\nStored at `{uri}`\n", manifest_uri=uri,
               description=f"{len(new)} records, model {output['model']}")
    progress.update(100, f"published {uri}")
    return {"n_new": len(new), "n_seen": len(records), "n_failed": len(errors), "uri": uri}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=ecg_predict_batch.__doc__)
    parser.add_argument("inbox")
    parser.add_argument("--model", default="ecg-default")
    ecg_predict_batch(**vars(parser.parse_args()))
