"""The ``pipeline`` command line (typer). No Prefect import here: commands call library code.

Command modules register themselves on the apps below; heavy libraries are imported inside
the commands so ``pipeline predict`` starts fast.
"""

from __future__ import annotations

import sys

import click
import typer

from pipeline.errors import UserError

app = typer.Typer(
    name="pipeline",
    help="Biosignal pipeline: ECG rhythm classification and singing-voice separation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train a model from a YAML config.", no_args_is_help=True)
evaluate_app = typer.Typer(help="Evaluate a model on labelled data.", no_args_is_help=True)
models_app = typer.Typer(help="Models in the artifact store.", no_args_is_help=True)
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


def fail(message: str) -> None:
    """Print one ``error:`` line and exit 2 (the contract for every user mistake)."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def main() -> None:
    """Console-script entry point: user errors become one line and exit status 2."""
    try:
        app(standalone_mode=False)
    except UserError as exc:
        fail(str(exc))
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130)
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(1)
