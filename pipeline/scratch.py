"""Scratch folders that a killed process does not leak.

``tempfile.TemporaryDirectory`` is removed on return and on exceptions, but not after kill -9 or the
OOM killer, and a separation's scratch holds whole stems (hundreds of MiB for a long track). Each
folder's name carries its owner's host and pid; opening a new one with the same prefix removes those
whose owner is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

from pipeline.store import pid_alive


def _host_tag() -> str:
    """Short, filename-safe host id (containers sharing a /tmp volume have separate pid spaces)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A ``TemporaryDirectory`` named ``<prefix><host>.<pid>-*``, after removing dead owners' folders."""
    host = _host_tag()
    for old in Path(tempfile.gettempdir()).glob(f"{prefix}{host}.*-*"):
        pid = old.name[len(prefix) + len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{host}.{os.getpid()}-")
