"""One exception type for user mistakes, so the CLI can print one line and exit 2."""


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
