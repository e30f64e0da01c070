"""The artifact store: one fsspec root for models, reports, features and separated stems.

Layout (relative to the root)::

    models/<task>/<name>/<run_id>/...      + models/<task>/<name>/latest.json
    reports/<kind>/<run_id>/...
    stems/<track_id>/<run_id>/...          + stems/<track_id>/latest.json
    features/<kind>/<config key>/<record>-<content hash>.npz

The root comes from the argument, else ``PIPELINE_STORE``, else the repository's
``artifacts/`` folder; ``s3://bucket/prefix`` (or any fsspec URL) works the same way, with
filesystem options (``endpoint_url``, ``key``, ``secret``...) from ``PIPELINE_STORE_OPTIONS``
(a JSON object) or the standard ``AWS_*`` variables.

Write protocol (what makes concurrent and interrupted writers safe):

1. A writer claims its run folder: ``<run>/.writer`` is created exclusively (``O_EXCL`` on
   disk, a conditional ``If-None-Match`` PUT on S3); a second writer of the same run id fails
   instead of interleaving files. Run ids are a UTC timestamp plus 32 random bits, so two
   writers of the same track get different folders in practice.
   A stale claim (its writer's pid is gone on this host, or it is older than the lease,
   ``PIPELINE_CLAIM_LEASE_S``, one hour by default) is taken over, and of several writers
   taking over at once exactly one wins: a rename on disk, a PUT conditional on the stale
   claim's ETag (``If-Match``) on S3. On an object store without conditional writes, creating
   and taking over a claim are check-then-write, with a narrow race. Not guaranteed anywhere:
   fencing a writer that is still alive after its lease ran out (a publish that takes longer
   than the lease); the lease must outlast the slowest publish, which only copies finished files.
2. Outputs are written (local: temporary file, fsync, rename; S3: one PUT per object, which
   is atomic).
3. ``manifest.json`` is written **last** (outputs with sha256 and size, resolved config,
   metrics, inputs, versions, flow run id). Readers ignore folders without a valid manifest,
   so a write killed midway is never taken for a result.
4. ``latest.json`` is written only after the manifest exists and only points at complete runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeline import __version__
from pipeline.atomic import atomic_path
from pipeline.errors import UserError, env_seconds, one_line

MANIFEST = "manifest.json"
LATEST = "latest.json"
CLAIM = ".writer"
MANIFEST_SCHEMA_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "artifacts"
OPTIONS_ENV = "PIPELINE_STORE_OPTIONS"
CLAIM_LEASE_ENV = "PIPELINE_CLAIM_LEASE_S"
DEFAULT_CLAIM_LEASE_S = 3600.0
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REACHED: set[str] = set()  # object stores whose bucket answered once in this process


class RunExistsError(UserError):
    """Another writer already claimed (or completed) this run folder."""


def validate_id(value: str, what: str = "id") -> str:
    """Reject ids that could escape the store (``..``, ``/``, absolute paths, odd characters)."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value) or ".." in value:
        raise UserError(
            f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' "
            "(no '/', no '..', at most 128 characters)"
        )
    return value


def _check_part(part: str) -> str:
    """A path component handed to ``Store.path``: relative, no ``..``/``.``/empty segments."""
    if not isinstance(part, str) or not part or part.startswith("/") or "\\" in part or "\x00" in part:
        raise UserError(f"invalid store path component {part!r}")
    if any(seg in ("", ".", "..") for seg in part.split("/")):
        raise UserError(f"invalid store path component {part!r}")
    return part


def new_run_id() -> str:
    """Sortable, unique run id: UTC timestamp (microseconds) plus 32 random bits."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond:06d}Z-" + secrets.token_hex(4)


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


def current_flow_run_id() -> str | None:
    """Prefect flow run id when called inside a flow run (never imports Prefect itself)."""
    if "prefect" in sys.modules:
        try:
            from prefect.runtime import flow_run

            if flow_run.id:
                return str(flow_run.id)
        except Exception:  # noqa: BLE001 - outside a run, or an older Prefect
            pass
    return os.environ.get("PREFECT__FLOW_RUN_ID")


def _options_from_env() -> dict[str, Any]:
    text = os.environ.get(OPTIONS_ENV)
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{OPTIONS_ENV} must be a JSON object: {exc}") from exc
    if not isinstance(options, dict):
        raise UserError(f"{OPTIONS_ENV} must be a JSON object")
    return options


def claim_lease_s() -> float:
    """Age after which a run's claim is stale: ``PIPELINE_CLAIM_LEASE_S``, else one hour.

    A claim is held only while a finished run's files are copied in, so an hour-old claim
    belongs to a writer that died (on another host, where its pid cannot be checked).
    """
    return env_seconds(CLAIM_LEASE_ENV, DEFAULT_CLAIM_LEASE_S)


def _claim_is_stale(claim: dict[str, Any]) -> bool:
    """Its writer is gone: a dead pid on this host, an expired lease, or an unreadable claim."""
    pid = claim.get("pid")
    if claim.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return True
    try:
        claimed = dt.datetime.fromisoformat(claim["claimed_utc"])
    except (KeyError, TypeError, ValueError):
        return True
    return (dt.datetime.now(dt.timezone.utc) - claimed).total_seconds() > claim_lease_s()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _check_protocol(url: str) -> None:
    """The URL names a location, and its scheme an fsspec filesystem whose package is installed."""
    protocol, _, location = url.partition("://")
    if not location.strip("/"):
        raise UserError(f"the artifact store {url} names no bucket or folder (check PIPELINE_STORE)")
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError as exc:
        raise UserError(f"the artifact store {url} has an unknown scheme {protocol + '://'!r} "
                        "(use a folder, file://, s3:// or another fsspec URL; check PIPELINE_STORE)") from exc
    except ImportError as exc:
        raise UserError(f"the artifact store {url} needs a package that is not installed: {one_line(exc)}") from exc


def _write_local(target: str, write: Callable[[BinaryIO], Any]) -> None:
    """Write through ``write(handle)`` to a temporary file, fsync it, then rename it onto ``target``.

    A failure at any step (a full disk often shows only at fsync) leaves ``target`` as it was.
    """
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class Store:
    """An artifact store rooted at a local folder or any fsspec URL (``s3://bucket/prefix``)."""

    root: str
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, options: dict[str, Any] | None = None) -> "Store":
        """Root from the argument, else ``PIPELINE_STORE``, else the repo's ``artifacts/``.

        ``options`` (else ``PIPELINE_STORE_OPTIONS``, JSON) go to the fsspec filesystem, e.g.
        ``{"endpoint_url": "http://127.0.0.1:9000"}`` for MinIO.
        """
        chosen = root or os.environ.get("PIPELINE_STORE") or DEFAULT_ROOT
        text = str(chosen)
        if text.startswith("file://"):
            text = text[len("file://"):]
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
            if Path(text).exists() and not Path(text).is_dir():
                raise UserError(f"the artifact store {text} is not a folder (check PIPELINE_STORE)")
        else:
            _check_protocol(text)
        opts = dict(options) if options is not None else _options_from_env()
        return cls(text.rstrip("/") or "/", opts)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        fs, base = fsspec.core.url_to_fs(self.root, **self.options)
        if hasattr(fs, "split_path"):  # an object store (s3fs, gcsfs, adlfs): a bucket must answer
            self._check_reachable(fs, fs.split_path(base)[0])
        return fs

    def _check_reachable(self, fs: fsspec.AbstractFileSystem, bucket: str) -> None:
        """One ``UserError`` line when the bucket cannot be reached (checked once per process).

        Otherwise a wrong endpoint, missing credentials or a missing bucket read as an empty
        store: ``predict`` fell back to the bundled model and listings printed nothing.
        """
        key = json.dumps([self.root, self.options], sort_keys=True, default=str)
        if key in _REACHED:
            return
        try:
            fs.info(bucket)
        except FileNotFoundError as exc:
            raise UserError(f"the artifact store {self.root} has no bucket {bucket!r} at its endpoint "
                            f"(check PIPELINE_STORE and {OPTIONS_ENV})") from exc
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp and OSError types all mean "unreachable"
            raise UserError(f"cannot reach the artifact store {self.root}: {one_line(exc)} "
                            f"(check PIPELINE_STORE, {OPTIONS_ENV} and the credentials)") from exc
        _REACHED.add(key)

    @property
    def _base(self) -> str:
        return fsspec.core.url_to_fs(self.root, **self.options)[1].rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) of ``parts`` under the root."""
        return "/".join([self._base, *(_check_part(p) for p in parts)])

    def uri(self, *parts: str) -> str:
        """Full URI of ``parts`` under the root, as shown to users."""
        return "/".join([self.root, *(_check_part(p) for p in parts)])

    def check_writable(self) -> None:
        """Fail before any work when a local store cannot be written (read-only, full, not a folder)."""
        if self.is_local:
            from pipeline.io.audio import check_writable_dir

            check_writable_dir(self.root, what="artifact store")

    def _fresh(self, *parts: str) -> fsspec.AbstractFileSystem:
        """The filesystem with listing caches dropped (other writers may have changed them)."""
        fs = self.fs
        if not self.is_local:
            fs.invalidate_cache(self.path(*parts) if parts else None)
        return fs

    # -- writing -------------------------------------------------------------------------
    def put_bytes(self, data: bytes, *parts: str) -> str:
        """Write ``data`` at ``parts``; atomic on local disk (temp file + fsync + rename), one PUT on S3."""
        target = self.path(*parts)
        with self._writing(*parts):
            if self.is_local:
                _write_local(target, lambda handle: handle.write(data))
            else:
                self.fs.pipe_file(target, data)
        return self.uri(*parts)

    def put_file(self, source: str | Path, *parts: str) -> str:
        """Copy a local file into the store (atomically on local disk)."""
        target = self.path(*parts)

        def copy(handle) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, handle, 1 << 20)

        with self._writing(*parts):
            if self.is_local:
                _write_local(target, copy)
            else:
                self.fs.put_file(str(source), target)
        return self.uri(*parts)

    @contextmanager
    def _writing(self, *parts: str) -> Iterator[None]:
        """A failed write (full disk, read-only store, no permission) as one ``UserError`` line."""
        try:
            yield
        except OSError as exc:
            raise UserError(f"cannot write {self.uri(*parts)}: {exc.strerror or one_line(exc)}") from exc

    def claim_run(self, *prefix: str) -> None:
        """Create ``<prefix>/.writer`` exclusively; raise ``RunExistsError`` if a live writer has it.

        A stale claim (its writer's pid is gone on this host, or it is older than the lease,
        see :func:`claim_lease_s`) is taken over and the dead writer's partial files removed,
        so a crashed run never blocks its folder for good.
        """
        for part in prefix:
            validate_id(part, "store path component")
        if self.read_manifest(*prefix) is not None:
            raise RunExistsError(f"run {self.uri(*prefix)} already exists (runs are immutable)")
        claim = json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "token": secrets.token_hex(8),
            "claimed_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }).encode()
        target = self.path(*prefix, CLAIM)
        try:
            try:
                self._create_claim(target, claim)
            except FileExistsError:
                self._take_over(prefix, target, claim)
        except FileExistsError as exc:
            raise RunExistsError(f"run {self.uri(*prefix)} is being written by another writer") from exc
        except OSError as exc:
            raise UserError(f"cannot write to the store at {self.uri(*prefix)}: {exc.strerror or exc}") from exc

    def _create_claim(self, target: str, claim: bytes) -> None:
        """Write the claim with its content in one step (``FileExistsError`` when one exists)."""
        if not self.is_local:
            self._exclusive_put(target, claim)
            return
        folder = Path(target).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-claim-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(claim)
            os.link(tmp, target)  # fails if the target exists: an exclusive create, never half-written
        finally:
            os.unlink(tmp)

    def _take_over(self, prefix: tuple[str, ...], target: str, claim: bytes) -> None:
        """Replace a stale claim with ours and clear the dead writer's files; else ``FileExistsError``.

        Of several writers taking over the same stale claim at once, exactly one wins.
        """
        version = None if self.is_local else self._claim_version(target)  # before the read: see _swap_claim
        stale = self._read_claim(target)
        if stale is None or not _claim_is_stale(stale):
            raise FileExistsError(target)
        if self.is_local:
            grave = f"{target}.stale-{secrets.token_hex(4)}"
            try:
                os.rename(target, grave)  # only one of several takers wins the rename
            except FileNotFoundError as exc:
                raise FileExistsError(target) from exc
            taken = self._read_claim(grave)
            os.unlink(grave)
            if taken != stale:  # another taker's fresh claim slipped in between: not ours to remove
                raise FileExistsError(target)
            self._create_claim(target, claim)
        else:
            self._swap_claim(target, version, claim)
        fs = self._fresh(*prefix)
        for entry in fs.ls(self.path(*prefix), detail=False):
            if entry.rstrip("/").rsplit("/", 1)[-1] != CLAIM:
                fs.rm(entry, recursive=True)

    def _read_claim(self, path: str) -> dict[str, Any] | None:
        """The claim at ``path`` ({} when unreadable), or None when it is gone."""
        try:
            claim = json.loads(self._fresh().cat_file(path))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError):
            return {}
        return claim if isinstance(claim, dict) else {}

    def _abandon(self, prefix: tuple[str, ...]) -> None:
        """Remove a run folder this writer claimed and could not finish (best effort)."""
        try:
            self._fresh(*prefix).rm(self.path(*prefix), recursive=True)
        except OSError:
            pass  # the claim stays; it is taken over once stale

    def _claim_version(self, target: str) -> str | None:
        """The stored claim's ETag (None where the backend has none); a claim gone meanwhile was taken."""
        try:
            return self._fresh().info(target).get("ETag")
        except FileNotFoundError as exc:
            raise FileExistsError(target) from exc

    def _swap_claim(self, target: str, version: str | None, data: bytes) -> None:
        """Overwrite the claim only if it is still ``version``, the one judged stale (S3 ``If-Match``).

        The ETag was taken before the claim was read, so a claim replaced in between fails the
        condition too: the loser gets ``FileExistsError`` and never removes the winner's claim.
        """
        if version is None or not self._conditional_put(target, data, IfMatch=version):
            self._fresh().rm_file(target)  # no conditional writes: best effort, as _exclusive_put
            self._exclusive_put(target, data)

    def _exclusive_put(self, target: str, data: bytes) -> None:
        """Create the object only if absent (S3 ``If-None-Match: *``); ``FileExistsError`` if present."""
        if not self._conditional_put(target, data, IfNoneMatch="*"):
            # A backend without conditional writes: check, then write (narrow race only).
            if self._fresh().exists(target):
                raise FileExistsError(target)
            self._fresh().pipe_file(target, data)

    def _conditional_put(self, target: str, data: bytes, **condition: str) -> bool:
        """One PUT with an S3 precondition (atomic on AWS, MinIO, moto).

        Returns False, writing nothing, when the backend has no conditional writes.

        Raises:
            FileExistsError: the precondition failed (HTTP 412): another writer got there first.
        """
        try:
            self._fresh().pipe_file(target, data, **condition)
        except FileExistsError:
            raise
        except (OSError, TypeError, ValueError) as exc:
            message = str(exc)
            if "PreconditionFailed" in message or "412" in message or "At least one of the pre-conditions" in message:
                raise FileExistsError(target) from exc
            if isinstance(exc, TypeError) or "NotImplemented" in message:
                return False
            raise
        return True

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

        The run folder is claimed first (a second writer of the same ``prefix`` gets
        ``RunExistsError``), and completed runs are never overwritten.

        Returns:
            The URI of the run folder. The manifest lists every output with its sha256 and
            size so a reader can verify what it fetched.
        """
        prefix = tuple(prefix)
        for part in prefix:
            validate_id(part, "store path component")
        for name in files:
            validate_id(name, "file name")
            if name in (MANIFEST, LATEST, CLAIM):
                raise UserError(f"file name {name!r} is reserved by the store")
        self.claim_run(*prefix)
        try:
            with self._writing(*prefix):
                self._write_run(prefix, files, kind=kind, config=config, metrics=metrics, inputs=inputs, extra=extra)
        except BaseException:
            self._abandon(prefix)
            raise
        return self.uri(*prefix)

    def _write_run(self, prefix: tuple[str, ...], files: dict[str, str | Path], *, kind: str,
                   config, metrics, inputs, extra) -> None:
        """Outputs, then the manifest (the protocol's step 2 and 3) into a claimed folder."""
        outputs = []
        for name, source in files.items():
            digest, size = sha256_file(source), os.path.getsize(source)
            self.put_file(source, *prefix, name)
            outputs.append({"path": name, "sha256": digest, "bytes": size})
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "kind": kind,
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": prefix[-1],
            "flow_run_id": current_flow_run_id(),
            "package_version": __version__,
            "versions": software_versions(),
            "writer": {"host": socket.gethostname(), "pid": os.getpid()},
            "config": config or {},
            "inputs": inputs or [],
            "outputs": outputs,
            "metrics": metrics or {},
            **(extra or {}),
        }
        self.put_bytes(json.dumps(manifest, indent=2, default=str).encode(), *prefix, MANIFEST)

    def set_latest(self, prefix: tuple[str, ...], run_id: str) -> None:
        """Point ``<prefix>/latest.json`` at ``run_id``; the run must already have its manifest."""
        validate_id(run_id, "run id")
        if self.read_manifest(*prefix, run_id) is None:
            raise UserError(f"cannot point latest at {self.uri(*prefix, run_id)}: it has no manifest")
        pointer = {"run_id": run_id, "path": "/".join((*prefix, run_id)),  # relative: the store may move
                   "updated_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        self.put_bytes(json.dumps(pointer).encode(), *prefix, LATEST)

    def sweep_incomplete(self, *prefix: str, older_than_s: float = 24 * 3600) -> list[str]:
        """Delete run folders under ``prefix`` that never got a manifest and are older than ``older_than_s``.

        Returns the removed run ids. Folders still being written (recent claim) are kept.
        """
        fs = self._fresh(*prefix)
        removed = []
        for name in self._child_dirs(*prefix):
            if self.read_manifest(*prefix, name) is not None:
                continue
            try:
                info = fs.info(self.path(*prefix, name, CLAIM))
                mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
                age = time.time() - (mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime))
            except (FileNotFoundError, TypeError, ValueError):
                age = float("inf")
            if age >= older_than_s:
                fs.rm(self.path(*prefix, name), recursive=True)
                removed.append(name)
        return removed

    # -- reading -------------------------------------------------------------------------
    def read_json(self, *parts: str) -> Any | None:
        """Parsed JSON at ``parts``, or None when absent or unreadable."""
        try:
            with self._fresh(*parts[:-1]).open(self.path(*parts), "rb") as handle:
                return json.loads(handle.read())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def exists(self, *parts: str) -> bool:
        """Whether ``parts`` is in the store now (listing caches dropped: other writers may have added it)."""
        return self._fresh(*parts[:-1]).exists(self.path(*parts))

    def read_manifest(self, *parts: str) -> dict[str, Any] | None:
        """The manifest of a run folder, or None when the folder is incomplete, absent or corrupt."""
        manifest = self.read_json(*parts, MANIFEST)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("outputs"), list):
            return None
        if not all(isinstance(o, dict) and isinstance(o.get("path"), str) for o in manifest["outputs"]):
            return None  # the wrong shape: treated like a corrupt manifest
        return manifest

    def _child_dirs(self, *prefix: str) -> list[str]:
        return self.list_entries(*prefix)[0]

    def list_entries(self, *prefix: str) -> tuple[list[str], list[str]]:
        """``(folders, files)`` directly under ``prefix``, sorted; hidden names (``.writer``, temporaries) left out."""
        try:
            entries = self._fresh(*prefix).ls(self.path(*prefix), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        folders, files = [], []
        for entry in entries:
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith("."):
                (folders if entry["type"] == "directory" else files).append(name)
        return sorted(folders), sorted(files)

    def list_dir(self, *prefix: str) -> list[str]:
        """Names of the sub-folders under ``prefix`` (e.g. track ids under ``stems``)."""
        return self._child_dirs(*prefix)

    def list_runs(self, *prefix: str) -> list[str]:
        """Run ids under ``prefix`` that have a valid manifest, oldest first."""
        return [name for name in self._child_dirs(*prefix) if self.read_manifest(*prefix, name) is not None]

    def latest(self, *prefix: str) -> str | None:
        """Run id that ``latest.json`` points at, else the newest complete run."""
        pointer = self.read_json(*prefix, LATEST)
        run_id = pointer.get("run_id") if isinstance(pointer, dict) else None
        if isinstance(run_id, str) and _ID_PATTERN.match(run_id) and ".." not in run_id:
            if self.read_manifest(*prefix, run_id) is not None:
                return run_id
        runs = self.list_runs(*prefix)
        return runs[-1] if runs else None

    def verify_run(self, *prefix: str) -> list[str]:
        """Problems with a run folder (missing manifest, missing output, size or sha256 mismatch); empty if sound."""
        manifest = self.read_manifest(*prefix)
        if manifest is None:
            return [f"{self.uri(*prefix)}: no manifest"]
        problems = []
        fs = self._fresh(*prefix)
        for output in manifest["outputs"]:
            name = output.get("path", "")
            try:
                validate_id(name, "file name")
                digest = hashlib.sha256()
                with fs.open(self.path(*prefix, name), "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            except (FileNotFoundError, UserError) as exc:
                problems.append(f"{name}: {exc.__class__.__name__}")
                continue
            if digest.hexdigest() != output.get("sha256"):
                problems.append(f"{name}: sha256 mismatch")
        return problems

    def get_file(self, parts: tuple[str, ...], destination: str | Path, sha256: str | None = None) -> Path:
        """Download one stored file to a local path (atomically); check ``sha256`` when given."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=destination.parent)
        os.close(fd)
        try:
            self.fs.get_file(self.path(*parts), tmp)
            if sha256 is not None and sha256_file(tmp) != sha256:
                raise UserError(f"{self.uri(*parts)} does not match its manifest checksum (corrupt or replaced)")
            os.replace(tmp, destination)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return destination

    def fetch_run(self, prefix: tuple[str, ...], destination: str | Path,
                  names: list[str] | None = None) -> dict[str, Path]:
        """Download a complete run's outputs (all, or ``names``) into ``destination``, verified by checksum."""
        for part in prefix:
            validate_id(part, "store path component")
        manifest = self.read_manifest(*prefix)
        if manifest is None:
            raise UserError(f"no complete run at {self.uri(*prefix)}")
        wanted = {o["path"]: o for o in manifest["outputs"]}
        if names is not None:
            missing = [n for n in names if n not in wanted]
            if missing:
                raise UserError(f"{self.uri(*prefix)} has no {', '.join(missing)} (has {', '.join(wanted)})")
            wanted = {n: wanted[n] for n in names}
        for name in wanted:  # all of them before anything is written
            validate_id(name, "file name")
        fetched = {}
        for name, output in wanted.items():
            fetched[name] = self.get_file((*prefix, name), Path(destination) / name, output.get("sha256"))
        return fetched

    def local_copy(self, *parts: str) -> Path:
        """A local path for a stored (immutable) file: itself on local disk, else a cached download."""
        if self.is_local:
            return Path(self.path(*parts))
        cache = Path(tempfile.gettempdir()) / "pipeline-store-cache" / hashlib.sha256(
            self.uri(*parts).encode()
        ).hexdigest()[:16] / parts[-1]
        if not cache.exists():
            self.get_file(parts, cache)
        return cache
