"""Small helpers shared by the flow modules (config paths, task runners)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import REPO_ROOT
from pipeline.errors import UserError


def resolve_config(path: str) -> str:
    """A config path as given (relative to the working directory), else relative to the repo root."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return str(candidate.resolve())
    if not candidate.is_absolute() and (REPO_ROOT / candidate).is_file():
        return str(REPO_ROOT / candidate)
    raise UserError(f"config file not found: {path}")


def config_data(data: str | None, configured: str | list[str] | None) -> str:
    """The one data folder a flow ingests: ``data``, else the config's (which may list only one)."""
    if data:
        return data
    if isinstance(configured, list):
        if len(configured) != 1:
            raise UserError(f"the config lists {len(configured)} data folders; a flow ingests one: pass data=")
        configured = configured[0]
    if not configured:
        raise UserError("no data: pass data= or set 'data' in the config")
    return configured


def make_task_runner(spec: str | None, max_workers: int = 2):
    """Task runner for mapped feature steps.

    Args:
        spec: ``"threads"`` (default: a thread pool in the flow process), ``"dask"`` (a local
            Dask cluster of ``max_workers`` single-threaded worker processes, via prefect-dask),
            or a Dask scheduler address such as ``"tcp://10.0.0.5:8786"`` (an existing cluster
            whose workers have this repository and its environment installed).
        max_workers: threads or local Dask workers.
    """
    if not spec or spec == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max_workers)
    from prefect_dask import DaskTaskRunner

    if spec == "dask":
        return DaskTaskRunner(cluster_kwargs={"n_workers": max_workers, "threads_per_worker": 1,
                                              "dashboard_address": None})
    if "://" in spec:
        return DaskTaskRunner(address=spec)
    raise UserError(f"task_runner must be 'threads', 'dask' or a Dask scheduler address, not {spec!r}")
