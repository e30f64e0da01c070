"""``ecg-features``: scalograms (and rhythm features) for every record, cached by content + config.

The mapped step runs on a thread pool by default, or on Dask (``task_runner="dask"`` for a
local cluster, ``"tcp://host:8786"`` for an existing one) through prefect-dask.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flows  # noqa: E402,F401  (ephemeral-mode defaults before Prefect is imported)
from prefect import flow, unmapped  # noqa: E402
from prefect.futures import as_completed  # noqa: E402

from flows._common import ecg_sources, make_task_runner, resolve_config  # noqa: E402
from flows.alerts import HOOKS  # noqa: E402
from flows.tasks import localize, prepare_ecg_record  # noqa: E402

DEFAULT_CONFIG = "configs/ecg/ecg-default.yaml"


@flow(name="scalograms", timeout_seconds=4 * 3600)
def scalograms(config: str, records: list[str], store: str) -> dict:
    """Prepare every record (mapped) into the store's feature cache; returns counts, the cache
    folder and skipped records, never arrays."""
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.feature_store import store_folder
    from pipeline.store import Store

    futures = prepare_ecg_record.map(records, unmapped(config), unmapped(store))
    outcomes = [future.result() for future in as_completed(futures)]
    usable = [o for o in outcomes if o["status"] == "ok"]
    return {
        "cache_dir": Store.open(store).uri(*store_folder(load_config(config, EcgConfig))),
        "n_records": len(records),
        "n_usable": len(usable),
        "skipped": sorted((o for o in outcomes if o["status"] != "ok"), key=lambda o: o["record"]),
    }


def run_scalograms(config: str, sources: list[str], store: str | None, task_runner: str = "threads",
                   max_workers: int = 2) -> dict:
    """Call the ``scalograms`` subflow with the chosen task runner (from inside a flow) on the records
    training will read: those of every source less the config's holdout, as ``train_ecg`` picks them."""
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.prepare import find_all
    from pipeline.ecg.train import holdout_names
    from pipeline.store import Store

    cfg = load_config(config, EcgConfig)
    records = [str(p) for p in find_all(sources, holdout_names(cfg))[0]]
    runner = make_task_runner(task_runner, max_workers)
    root = Store.open(store).root  # resolved here: a Dask worker's environment may name another store
    return scalograms.with_options(task_runner=runner)(config, records, root)


@flow(name="ecg-features", log_prints=True, timeout_seconds=4 * 3600, **HOOKS)
def ecg_features(config: str = DEFAULT_CONFIG, data: str | list[str] | None = None, store: str | None = None,
                 task_runner: str = "threads", max_workers: int = 2) -> dict:
    """Scalograms for every record of ``data`` (one or several folders/manifests; default: the
    config's ``data``) except the config's holdout, into the feature cache."""
    from pipeline.config import EcgConfig, load_config

    config = resolve_config(config)
    cfg = load_config(config, EcgConfig)
    sources = ecg_sources(data, cfg, config)
    summary = run_scalograms(config, [localize(s) for s in sources], store, task_runner, max_workers)
    print(f"{summary['n_usable']}/{summary['n_records']} records usable; cache {summary['cache_dir']}")
    return summary


if __name__ == "__main__":
    ecg_features()
