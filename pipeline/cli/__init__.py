"""The ``pipeline`` command line (typer). No Prefect import here: commands call library code.

Command modules register themselves on the apps below; heavy libraries are imported inside
the commands so ``pipeline predict`` starts fast.
"""

from __future__ import annotations

import importlib
import signal
import sys

import typer

from pipeline.errors import UserError

# No ``no_args_is_help`` on any group: a bare group then fails with click's one-line
# "Missing command." usage error instead of printing the whole help.
app = typer.Typer(
    name="pipeline",
    help="Biosignal pipeline: ECG rhythm classification and singing-voice separation.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model from a YAML config.")
evaluate_app = typer.Typer(help="Evaluate a model on labelled data.")
models_app = typer.Typer(help="Models in the artifact store.")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(models_app, name="models")

from pipeline.cli import ecg as _ecg  # noqa: E402,F401  (registers commands)
from pipeline.cli import models as _models  # noqa: E402,F401

for _optional in ("svs", "stems", "flow"):  # modules added by later features
    try:
        __import__(f"pipeline.cli.{_optional}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"pipeline.cli.{_optional}":
            raise


def listed_folders(store, *prefix: str) -> list[str]:
    """Folders under ``prefix`` in the store; a stray file there is skipped with a warning line."""
    folders, files = store.list_entries(*prefix)
    for name in files:
        typer.echo(f"warning: skipping {store.uri(*prefix, name)}: not a folder", err=True)
    return folders


def fail(message: str) -> None:
    """Print one ``error:`` line and exit 2 (the contract for every user mistake)."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(2)


# The click that typer raises from: its own bundled copy since typer 0.2x, the click
# package before. Catching ``click.*`` from the other package would miss every usage error.
_click_errors = importlib.import_module(typer.BadParameter.__module__)
INTERRUPTED = 130


def _usage_error(exc) -> None:
    """Click's message as our one ``error:`` line (with where to find help); exit 2."""
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    fail(f"{exc.format_message()}{hint}")


def _terminate(signum, frame) -> None:
    """SIGTERM unwinds like an exception, so temporary files and claims are cleaned up."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point: user errors become one line and exit status 2."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        fail(str(exc))
    except _click_errors.UsageError as exc:
        _usage_error(exc)
    except _click_errors.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(1)
    if code == INTERRUPTED:  # typer turns Ctrl-C into a returned 130 when not standalone
        typer.echo("error: interrupted", err=True)
    if isinstance(code, int) and code:
        raise SystemExit(code)
