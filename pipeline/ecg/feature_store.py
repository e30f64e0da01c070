"""The scalogram cache shared through a remote store, so that another machine (a flow worker, a
Dask cluster, the training host) reuses what one machine computed.

Prepared records are cached on local disk (:func:`pipeline.ecg.prepare.prepare_path`). With a
remote store each entry is also kept in the store's ``features/ecg/<cache key>/``: downloaded
before preparing, uploaded after. Entries are named by config and content hashes and never
change, so a download is as good as computing the record and two machines uploading the same
entry write the same thing. With a local store the cache is the store's own folder and nothing
here does anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import EcgConfig
from pipeline.ecg.prepare import cache_file, cache_key, feature_cache_dir
from pipeline.errors import one_line

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # store folders already warned about in this process


def store_folder(cfg: EcgConfig) -> tuple[str, ...]:
    """Where the store keeps the entries of ``cfg`` (the same relative path as the local cache)."""
    return ("features", "ecg", cache_key(cfg))


@contextmanager
def shared_cache(store, cfg: EcgConfig, paths: list) -> Iterator[Path]:
    """The local cache folder to prepare ``paths`` into: before, the entries the store holds are
    downloaded into it; after, those it lacks are uploaded. Either failing only warns: the
    records are then computed here, or computed again elsewhere, never lost."""
    local = feature_cache_dir(store)
    if store.is_local:
        yield local
        return
    entries = [cache_file(path, cfg, local) for path in paths]
    held: set[str] = set()
    with _best_effort("read", store, cfg, "computing them here"):
        held = _held(store, cfg, entries)
        for entry in entries:
            if entry.name in held and not entry.exists():
                store.get_file((*store_folder(cfg), entry.name), entry)  # atomic: workers may read it at once
    yield local
    with _best_effort("write", store, cfg, "other machines will compute them again"):
        for entry in entries:
            if entry.name not in held and entry.exists():
                store.put_file(entry, *store_folder(cfg), entry.name)


def _held(store, cfg: EcgConfig, entries: list[Path]) -> set[str]:
    """Names of ``entries`` the store holds: a single record (the flows' mapped step) is looked up,
    since listing a large cache once per record would cost the square of its size."""
    if len(entries) == 1:
        return {entries[0].name} if store.exists(*store_folder(cfg), entries[0].name) else set()
    return set(store.list_entries(*store_folder(cfg))[1])


@contextmanager
def _best_effort(action: str, store, cfg: EcgConfig, consequence: str) -> Iterator[None]:
    """Turn any store error into one warning per folder and process (a network, permission or
    quota error would repeat for every record)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - fsspec backends raise many types; all mean "not shared"
        where = store.uri(*store_folder(cfg))
        if where + action not in _WARNED:
            _WARNED.add(where + action)
            log.warning("could not %s the feature cache %s (%s); %s", action, where, one_line(exc), consequence)
