"""A published separator with other inference defaults, published as a new run of the same weights.

Runs are immutable and stems are filed under the model run that made them, so changing the
threshold, Wiener post-filter or input level a model applies by default means a new run: the
same weights and evaluation files, a new ``model.json`` / ``config.yaml``, a model-card section
naming the run it derives from, the manifest last and ``latest`` moved to it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import UserError
from pipeline.scratch import scratch_dir

CARD_MARKER = "inference-defaults"


def retune_separator(store, name: str, run_id: str | None = None, *, threshold: float | None = None,
                     wiener: bool | None = None, input_rms_db: float | None = None, reason: str = "") -> str:
    """Publish ``name``'s run (default: latest) again with new inference defaults; returns the new run id."""
    from pipeline.config import dump_config
    from pipeline.store import new_run_id
    from pipeline.svs.bundle import META
    from pipeline.svs.config import SvsConfig
    from pipeline.svs.model_card import amend_model_card

    if threshold is None and wiener is None and input_rms_db is None:
        raise UserError("nothing to change: give --threshold, --wiener/--no-wiener or --input-rms-db")
    parent = run_id or store.latest("models", "svs", name)
    manifest = store.read_manifest("models", "svs", name, parent) if parent else None
    if manifest is None:
        raise UserError(f"no separator {name}{'@' + parent if parent else ''} in the store {store.root}")
    new = new_run_id()
    with scratch_dir("pipeline-retune-") as tmp:
        files = store.fetch_run(("models", "svs", name, parent), tmp)
        meta = json.loads(Path(files[META]).read_text())
        cfg = SvsConfig.model_validate(meta["config"])
        if threshold is not None:
            cfg.ibm.threshold = threshold
        if wiener is not None:
            cfg.separate.wiener = wiener
        if input_rms_db is not None:
            cfg.separate.input_rms_db = input_rms_db
        cfg = SvsConfig.model_validate(cfg.model_dump())  # the new values pass the config's own checks
        meta.update(config=cfg.model_dump(mode="json"), derived_from=parent)
        Path(files[META]).write_text(json.dumps(meta, indent=2))
        if "config.yaml" in files:
            Path(files["config.yaml"]).write_text(dump_config(cfg))
        # the evaluation files and metrics were measured with the parent's settings: kept, but
        # only under the parent's name, and the card says so
        extra = {k: manifest[k] for k in ("split", "config_hash", "device") if k in manifest}
        store.publish_run(("models", "svs", name, new), files, kind=manifest["kind"], config=cfg.model_dump(mode="json"),
                          metrics={}, inputs=manifest.get("inputs"),
                          extra={**extra, "derived_from": parent, "parent_metrics": manifest.get("metrics", {})})
    settings = (f"threshold {cfg.ibm.threshold}, Wiener post-filter {'on' if cfg.separate.wiener else 'off'}, "
                f"input level {cfg.separate.input_rms_db if cfg.separate.input_rms_db is not None else 'as is'} dBFS")
    amend_model_card(store, ("models", "svs", name, new), CARD_MARKER,
                     f"## Inference defaults\nThe weights of run `{parent}`, published again with: {settings}. "
                     "The evaluation files and figures elsewhere in this card were measured with the parent's "
                     "settings." + (f" {reason}" if reason else ""))
    store.set_latest(("models", "svs", name), new)
    return new
