"""The artifact store: one fsspec root for models, reports, features and separated stems.

Layout (relative to the root)::

    models/<task>/<name>/<run_id>/...      + models/<task>/<name>/latest.json
    reports/<kind>/<run_id>/...
    stems/<track_id>/<run_id>/...
    features/<kind>/<config_hash>/<input_sha256>.npy

Every run folder gets a ``manifest.json`` written **last**; readers ignore folders without
one, so an interrupted write is never mistaken for a result. Local files are written to a
temporary name and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeline import __version__
from pipeline.errors import UserError

MANIFEST = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "artifacts"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_id(value: str, what: str = "id") -> str:
    """Reject ids that could escape the store (``..``, ``/``, absolute paths, odd characters)."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value) or ".." in value:
        raise UserError(
            f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' "
            "(no '/', no '..', at most 128 characters)"
        )
    return value


def new_run_id() -> str:
    """Sortable, unique run id: UTC timestamp plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of the libraries that shape results (only those already imported or cheap)."""
    import importlib.metadata as md

    versions = {"pipeline": __version__}
    for name in ("numpy", "scipy", "torch", "timm", "onnxruntime", "librosa", "prefect", "wfdb"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Store:
    """An artifact store rooted at a local folder or any fsspec URL (``s3://bucket/prefix``)."""

    root: str

    @classmethod
    def open(cls, root: str | os.PathLike | None = None) -> "Store":
        """Root from the argument, else ``PIPELINE_STORE``, else the repo's ``artifacts/``."""
        chosen = root or os.environ.get("PIPELINE_STORE") or DEFAULT_ROOT
        text = str(chosen)
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
        return cls(text.rstrip("/"))

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs, _ = fsspec.core.url_to_fs(self.root)
        return fs

    @property
    def _base(self) -> str:
        return fsspec.core.url_to_fs(self.root)[1]

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) of ``parts`` under the root."""
        return "/".join([self._base, *parts])

    def uri(self, *parts: str) -> str:
        """Full URI of ``parts`` under the root, as shown to users."""
        return "/".join([self.root, *parts])

    # -- writing -------------------------------------------------------------------------
    def put_bytes(self, data: bytes, *parts: str) -> str:
        """Write ``data`` at ``parts``; atomic on local disk (temp file + rename)."""
        target = self.path(*parts)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=Path(target).parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            with self.fs.open(target, "wb") as handle:
                handle.write(data)
        return self.uri(*parts)

    def put_file(self, source: str | Path, *parts: str) -> str:
        """Copy a local file into the store (atomically on local disk)."""
        target = self.path(*parts)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=Path(target).parent)
            os.close(fd)
            try:
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self.fs.put_file(str(source), target)
        return self.uri(*parts)

    def publish_run(
        self,
        prefix: tuple[str, ...],
        files: dict[str, str | Path],
        *,
        kind: str,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Copy ``files`` (name -> local path) under ``prefix`` and write the manifest last.

        Returns the URI of the run folder. The manifest lists every output with its
        checksum so a reader can verify what it fetched.
        """
        for part in prefix:
            validate_id(part, "store path component")
        outputs = []
        for name, source in files.items():
            validate_id(name, "file name")
            self.put_file(source, *prefix, name)
            outputs.append({"path": name, "sha256": sha256_file(source), "bytes": os.path.getsize(source)})
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "kind": kind,
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": prefix[-1],
            "flow_run_id": os.environ.get("PREFECT__FLOW_RUN_ID"),
            "package_version": __version__,
            "versions": software_versions(),
            "config": config or {},
            "inputs": inputs or [],
            "outputs": outputs,
            "metrics": metrics or {},
            **(extra or {}),
        }
        self.put_bytes(json.dumps(manifest, indent=2, default=str).encode(), *prefix, MANIFEST)
        return self.uri(*prefix)

    def set_latest(self, prefix: tuple[str, ...], run_id: str) -> None:
        """Point ``<prefix>/latest.json`` at ``run_id`` (written after the run's manifest)."""
        validate_id(run_id, "run id")
        pointer = {"run_id": run_id, "uri": self.uri(*prefix, run_id)}
        self.put_bytes(json.dumps(pointer).encode(), *prefix, "latest.json")

    # -- reading -------------------------------------------------------------------------
    def read_manifest(self, *parts: str) -> dict[str, Any] | None:
        """The manifest of a run folder, or None when the folder is incomplete or absent."""
        try:
            with self.fs.open(self.path(*parts, MANIFEST), "rb") as handle:
                return json.loads(handle.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def list_runs(self, *prefix: str) -> list[str]:
        """Run ids under ``prefix`` that have a manifest, oldest first."""
        try:
            entries = self.fs.ls(self.path(*prefix), detail=True)
        except FileNotFoundError:
            return []
        runs = []
        for entry in entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry["type"] == "directory" and self.fs.exists(self.path(*prefix, name, MANIFEST)):
                runs.append(name)
        return sorted(runs)

    def latest(self, *prefix: str) -> str | None:
        """Run id that ``latest.json`` points at, else the newest complete run."""
        try:
            with self.fs.open(self.path(*prefix, "latest.json"), "rb") as handle:
                run_id = json.loads(handle.read())["run_id"]
            if self.read_manifest(*prefix, run_id) is not None:
                return run_id
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            pass
        runs = self.list_runs(*prefix)
        return runs[-1] if runs else None

    def get_file(self, parts: tuple[str, ...], destination: str | Path) -> Path:
        """Download one stored file to a local path (atomically)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=destination.parent)
        os.close(fd)
        try:
            self.fs.get_file(self.path(*parts), tmp)
            os.replace(tmp, destination)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return destination

    def local_copy(self, *parts: str) -> Path:
        """A local path for a stored file: itself on local disk, else a cached download."""
        if self.is_local:
            return Path(self.path(*parts))
        cache = Path(tempfile.gettempdir()) / "pipeline-store-cache" / hashlib.sha256(
            self.uri(*parts).encode()
        ).hexdigest()[:16] / parts[-1]
        if not cache.exists():
            self.get_file(parts, cache)
        return cache
