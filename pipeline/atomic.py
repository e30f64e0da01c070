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


def publish_mode(path: str | os.PathLike) -> None:
    """chmod ``path`` to 0666 minus the process umask (what ``open()`` would create)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
