"""``pipeline flow list`` / ``pipeline flow run NAME``: run a Prefect flow locally;
``pipeline flow setup``: create the server-side automations (crash recovery, notifications).

Prefect is imported only inside ``flow run`` / ``flow setup`` (and only from ``flows/``), so every other
command starts without it. With no ``PREFECT_API_URL`` the flow runs in Prefect's ephemeral
mode (a temporary local server); with one set, the run is recorded on that server.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli import app
from pipeline.config import REPO_ROOT
from pipeline.errors import UserError

flow_app = typer.Typer(help="Run orchestration flows locally (needs the 'flows' extra).")
app.add_typer(flow_app, name="flow")


def _flows_package():
    """Import ``flows`` (the repository's folder; sets Prefect defaults, imports no Prefect)."""
    if not (REPO_ROOT / "flows" / "__init__.py").is_file():
        raise UserError(f"no flows/ folder in {REPO_ROOT}; run from a checkout of the repository")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import flows

    return flows


def _parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@flow_app.command("list")
def list_flows() -> None:
    """Flow names and their entry points."""
    for name, target in _flows_package().FLOWS.items():
        module, _, func = target.partition(":")
        typer.echo(f"{name}\t{module.replace('.', '/')}.py:{func}")


@flow_app.command("run")
def run_flow(
    name: str = typer.Argument(..., help="Flow name (see 'pipeline flow list')."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config YAML for flows that take one."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="Flow parameter NAME=VALUE (VALUE parsed as JSON if it can be); repeatable."
    ),
) -> None:
    """Run a flow in this process (ephemeral Prefect server unless PREFECT_API_URL is set); print its result as JSON."""
    import importlib

    registry = _flows_package().FLOWS
    if name not in registry:
        raise UserError(f"unknown flow {name!r}; choose from {', '.join(registry)}")
    params = _parse_params(param)
    if config is not None:
        if not config.is_file():
            raise UserError(f"config file not found: {config}")
        params["config"] = str(config.resolve())
    module_name, _, func_name = registry[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("prefect", "prefect_dask"):
            raise UserError("Prefect is not installed: pip install -e '.[flows]'") from exc
        raise
    flow_obj = getattr(module, func_name)
    accepted = inspect.signature(flow_obj.fn).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise UserError(f"flow {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(accepted)}")
    missing = [p for p, spec in accepted.items() if spec.default is inspect.Parameter.empty and p not in params]
    if missing:
        raise UserError(f"flow {name!r} needs {', '.join(f'--param {m}=...' for m in missing)}")
    _quiet_user_errors()
    result = flow_obj(**params)
    typer.echo(json.dumps(result, indent=2, default=str))


class _UserErrorWithoutTraceback(logging.Filter):
    """Prefect logs a failed flow or task with its traceback; for a ``UserError`` (a bad input, not
    a bug) the log line keeps the message and the CLI's ``error:`` line says the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info = record.exc_text = None
        return True


def _quiet_user_errors() -> None:
    """Put :class:`_UserErrorWithoutTraceback` on every handler of Prefect's loggers (set up by now)."""
    names = ["prefect", *(n for n in logging.root.manager.loggerDict if n.startswith("prefect"))]
    handlers = {id(h): h for name in names for h in logging.getLogger(name).handlers}
    for handler in handlers.values():
        if not any(isinstance(f, _UserErrorWithoutTraceback) for f in handler.filters):
            handler.addFilter(_UserErrorWithoutTraceback())


@flow_app.command("setup")
def setup_automations(
    within: int = typer.Option(180, min=45, help="Seconds without a heartbeat before a run is marked Crashed."),
    notify_block: Optional[str] = typer.Option(
        None, help="Notification block TYPE/NAME (e.g. slack-webhook/ops) for failed runs and pipeline alerts."),
) -> None:
    """Create the server-side automations (crash recovery, notifications) on the PREFECT_API_URL server."""
    _flows_package()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise UserError("PREFECT_API_URL is not set: automations live on a server "
                        "(prefect config set PREFECT_API_URL=...)")
    from flows.automations import setup

    for name in setup(within, notify_block):
        typer.echo(f"automation {name}: created")
