"""Small helpers shared by the flow modules (config paths, task runners)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import REPO_ROOT, repo_path
from pipeline.errors import UserError

FROM_REPO_ROOT = f"relative paths start at the repository root {REPO_ROOT}"


def resolve_config(path: str) -> str:
    """A config path as given (relative to the working directory), else relative to the repo root."""
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return str(candidate.resolve())
    if not candidate.is_absolute() and (REPO_ROOT / candidate).is_file():
        return str(REPO_ROOT / candidate)
    raise UserError(f"config file not found: {path}")


def config_data(data: str | None, configured: str | None, config: str = "the config") -> str:
    """The one data folder a separator flow ingests: ``data``, else the config's.

    A relative path in the config is relative to the repository root, never to the worker's
    working folder; a local folder that does not exist fails here, before any retried task.
    """
    if data:
        return require_local(data, "data")
    if not configured:
        raise UserError(f"no data: pass data= or set 'data' in {config}")
    return require_local(repo_path(configured), f"'data' of {config} ({FROM_REPO_ROOT})")


def ecg_sources(data: str | list[str] | None, cfg, config: str = "the config") -> list[str]:
    """The folders/manifests an ECG flow trains on, chosen as ``pipeline train ecg`` chooses them
    (``training_sources``: ``data``, else the config's list); each checked before any retried task."""
    from pipeline.ecg.train import training_sources

    given = [data] if isinstance(data, str) else data
    what = "data" if given else f"'data' of {config} ({FROM_REPO_ROOT})"
    return [require_local(source, what) for source in training_sources(cfg, given)]


def require_local(path: str, what: str) -> str:
    """``path`` unchanged if it is a URL or an existing local file/folder, else a ``UserError``."""
    if "://" in path and not path.startswith("file://"):
        return path
    if not Path(path.removeprefix("file://")).expanduser().exists():
        raise UserError(f"{what}: {path} does not exist; pass data=PATH or fix the config")
    return path


def training_device(requested: str, require_cuda: bool) -> dict:
    """The device training will use (``resolve_device``'s choice) and the GPU name, for the report.

    ``require_cuda`` fails the run when CUDA is absent (a ``gpu``-pool run that silently trains
    on CPU for hours is worse than a failed run); ``warning`` is set when ``auto`` fell back to
    the CPU although the job was given a GPU (``CUDA_VISIBLE_DEVICES`` non-empty).
    """
    import torch

    from pipeline.device import device_info, resolve_device

    device = resolve_device(requested)
    if require_cuda and device.type != "cuda":
        raise UserError(f"require_cuda is set but training would run on {device} "
                        f"(device {requested!r}, torch.cuda.is_available()={torch.cuda.is_available()})")
    info = device_info(device)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if device.type != "cuda" and requested == "auto" and visible not in ("", "-1"):
        info["warning"] = (f"device 'auto' fell back to the CPU although CUDA_VISIBLE_DEVICES={visible!r}: "
                           "no usable CUDA (driver, torch build); training will be slow")
    return info


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
