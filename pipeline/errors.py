"""One exception type for user mistakes, so the CLI can print one line and exit 2."""

from contextlib import contextmanager
from typing import Iterator


class UserError(Exception):
    """A problem with the user's input (file, option, config) rather than a bug.

    The CLI prints ``error: <message>`` and exits with status 2; the message should say
    what is wrong and what to do about it.
    """


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters) for an ``error:`` line."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name`` (``default`` when unset)."""
    import os

    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UserError(f"{name} must be a positive number of seconds, not {text!r}")
    return value


def read_user_text(path, what: str = "file") -> str:
    """The UTF-8 text of a file the user named; unreadable or binary content is a ``UserError``."""
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (binary or damaged file?)") from exc
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or one_line(exc)}") from exc


def read_user_json(path, what: str = "file") -> dict:
    """A JSON object from a file the user named (e.g. a model folder's ``model.json``)."""
    import json

    try:
        value = json.loads(read_user_text(path, what))
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} {path} is not valid JSON ({exc.msg}, line {exc.lineno}); damaged file?") from exc
    if not isinstance(value, dict):
        raise UserError(f"{what} {path} must hold a JSON object")
    return value


@contextmanager
def loading_model(folder, file_name: str = "") -> Iterator[None]:
    """Any failure to open a model folder's files (a truncated ONNX or torch file, a key missing
    from its ``model.json``) as one ``UserError`` line naming the folder.

    ONNX Runtime and torch raise many exception types for a damaged file, so every exception
    but a ``UserError`` is converted.
    """
    try:
        yield
    except UserError:
        raise
    except KeyError as exc:
        raise UserError(f"cannot load the model in {folder}: its model.json lacks {exc} "
                        "(damaged or incomplete model folder?)") from exc
    except Exception as exc:  # noqa: BLE001 - onnxruntime/torch raise assorted types for damaged files
        where = f"{file_name}: " if file_name else ""
        raise UserError(f"cannot load the model in {folder}: {where}{one_line(exc)} "
                        "(damaged or incomplete model folder?)") from exc
