"""Atomic local file writes: a temporary name in the target folder, then one rename.

A reader never sees a half-written file, and a failure leaves nothing behind. Temporary
files from ``mkstemp`` are private (0600); :func:`publish_mode` gives the finished file the
permissions a plain ``open(..., "w")`` would have.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.errors import UserError, one_line


def publish_mode(path: str | os.PathLike) -> None:
    """chmod ``path`` to 0666 minus the process umask (what ``open()`` would create)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    A target that cannot be written (its folder is a file or read-only, the target is a folder)
    is a ``UserError``; errors raised by the caller's own writing pass through unchanged.
    """
    target = Path(target)
    with _target(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or target.suffix, dir=target.parent)
        os.close(fd)
    try:
        yield Path(tmp)
        publish_mode(tmp)
        with _target(target):
            os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _target(target: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or one_line(exc)}") from exc
