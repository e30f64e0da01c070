"""One WFDB record -> every model input (stacked scalogram, raw signal, rhythm features)."""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.config import EcgConfig, config_hash
from pipeline.ecg.quality import limb_lead_note
from pipeline.errors import UserError
from pipeline.io.ecg import EcgRecord, read_record, record_base, to_standard_leads
from pipeline.labels import RhythmLabel, rhythm_label
from pipeline.transforms import ecg as ecg_tf
from pipeline.transforms.rhythm import FEATURES_VERSION, rhythm_features
from pipeline.transforms.scalogram import ScalogramSpec, stacked_scalogram

CACHE_VERSION = 3  # bump when the cached fields or their values change (2: flutter flag; 3: CWT stride rule)
SIGNAL_RATE_HZ = 100.0  # the 1D CNN sees the filtered signal at 100 Hz (rhythm needs no more)


@dataclass(frozen=True)
class Needed:
    """Which costly inputs a model reads; preparation skips the rest for prediction: the
    scalogram is the costliest step, the rhythm features ~4 ms of a ~20-ms record."""

    image: bool = True
    features: bool = True


EVERYTHING = Needed()


@dataclass
class PreparedRecord:
    """Model inputs of one record.

    Attributes:
        name: record name.
        image: (12 * rows_per_lead, n_windows * cols_per_window) stacked scalogram.
        signal: (12, n_windows * 100) filtered, normalised signal at 100 Hz.
        features: (7,) rhythm features (see ``pipeline.transforms.rhythm``).
        label: rhythm label from ``#Dx``.
        note: message for the user (padding, extra windows) or None.
        pending: (12, n_samples) normalised full-rate signal whose image is still to be computed
            (batched on a GPU by :func:`prepare_many`), else None.
    """

    name: str
    image: np.ndarray
    signal: np.ndarray
    features: np.ndarray
    label: RhythmLabel
    note: str | None = None
    pending: np.ndarray | None = None


def preprocess_signal(record: EcgRecord, cfg: EcgConfig) -> tuple[np.ndarray, str | None]:
    """12 standard leads, resampled, baseline-free, band-limited (optional), trimmed/padded; the note
    says what the user should know (padding, extra windows, limb leads that cannot be one recording)."""
    pre = cfg.preprocess
    x = to_standard_leads(record)
    quality = limb_lead_note(x, record.name)
    x = ecg_tf.resample(x, record.fs, pre.fs)
    x = ecg_tf.remove_baseline(x, pre.fs, pre.median_windows_s, pre.median_rate_hz)
    if pre.bandpass_hz is not None:
        x = ecg_tf.bandpass(x, pre.fs, pre.bandpass_hz)
    x, note = ecg_tf.fit_length(
        x, pre.fs, cfg.scalogram.window_s, pre.duration_s, pre.short_records, pre.min_duration_s, record.name
    )
    return x, "; ".join(n for n in (note, quality) if n) or None


def prepare_record(
    record: EcgRecord, cfg: EcgConfig, needed: Needed = EVERYTHING, defer_image: bool = False
) -> PreparedRecord:
    """Every model input for ``record`` under ``cfg``; what ``needed`` leaves out comes back empty
    (the rule and signal-only networks never look at the scalogram, most networks not at the
    rhythm features). ``defer_image`` leaves the image to be computed later together with other
    records' (``image`` None, ``pending`` set)."""
    x, note = preprocess_signal(record, cfg)
    fs = cfg.preprocess.fs
    features = rhythm_features(x, fs) if needed.features else np.zeros(0, np.float32)
    x = ecg_tf.normalise(x)
    image, pending = np.zeros((0, 0), np.float32), None
    if defer_image:
        image, pending = None, x
    elif needed.image:
        image = stacked_scalogram(x, ScalogramSpec.from_config(cfg.scalogram, fs))
    slow = ecg_tf.resample(x, fs, SIGNAL_RATE_HZ)
    return PreparedRecord(record.name, image, slow, features, rhythm_label(record.dx_codes), note, pending)


def complete_image(record: PreparedRecord, spec: ScalogramSpec) -> PreparedRecord:
    """Compute a deferred image in this process (a cascade's uncertain records); returns the record."""
    if record.image is None:
        record.image, record.pending = stacked_scalogram(record.pending, spec), None
    return record


def feature_cache_dir(store) -> Path:
    """Base folder of the scalogram cache: the store's ``features/ecg`` when the store is a folder,
    else this machine's copy of it (under the temp dir), which ``pipeline.ecg.feature_store``
    fills from and uploads to the store."""
    if store.is_local:
        return Path(store.path("features", "ecg"))
    return Path(tempfile.gettempdir()) / "pipeline-features" / "ecg"


def cache_key(cfg: EcgConfig) -> str:
    """The feature-cache folder of a config: its preprocess + scalogram hash and the formats' versions."""
    return f"{config_hash(cfg.preprocess)}{config_hash(cfg.scalogram)}-f{FEATURES_VERSION}-c{CACHE_VERSION}"


def prepare_path(
    path: str | Path, cfg: EcgConfig, cache_dir: Path | None = None, needed: Needed = EVERYTHING,
    defer_image: bool = False,
) -> PreparedRecord:
    """``prepare_record(read_record(path))`` with an optional on-disk cache.

    Cache entries live under ``cache_dir/<preprocess+scalogram config hash>/`` and are named
    by the record's content hash, so a changed file or config never reads a stale entry. A
    record whose image is deferred is cached by whoever completes it (:func:`write_cache`).
    """
    if cache_dir is None:
        return prepare_record(read_record(path), cfg, needed, defer_image)
    cached = cache_file(path, cfg, cache_dir)
    if cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            label = RhythmLabel(str(data["status"]), str(data["label"]) or None, tuple(data["classes"].tolist()),
                                bool(data["flutter"]))
            return PreparedRecord(record_base(path).name, data["image"], data["signal"], data["features"], label)
    prepared = prepare_record(read_record(path), cfg, defer_image=defer_image)
    if prepared.pending is None:
        write_cache(cached, prepared)
    return prepared


def cache_file(path: str | Path, cfg: EcgConfig, cache_dir: Path) -> Path:
    """Where :func:`prepare_path` caches ``path`` under ``cfg``: named by config and content hashes."""
    base = record_base(path)
    digest = hashlib.sha256()
    for suffix in (".hea", ".mat", ".dat"):
        candidate = base.with_suffix(suffix)
        if candidate.exists():
            digest.update(candidate.read_bytes())
    return cache_dir / cache_key(cfg) / f"{base.name}-{digest.hexdigest()[:16]}.npz"


def write_cache(cached: Path, prepared: PreparedRecord) -> None:
    """Store a complete prepared record at ``cached`` (atomically: worker processes may race)."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        image=prepared.image,
        signal=prepared.signal,
        features=prepared.features,
        status=prepared.label.status,
        label=prepared.label.label or "",
        classes=np.array(prepared.label.classes, dtype=str),
        flutter=prepared.label.flutter,
    )
    with atomic_path(cached) as tmp:  # unique temporary name: worker processes may race
        tmp.write_bytes(buffer.getvalue())


def find_records(data: str | Path) -> list[Path]:
    """Record paths (without extension) in a folder, or listed in a manifest CSV.

    A manifest CSV needs a ``record`` column (path relative to the CSV, or a name found
    beside it, optionally under a ``source`` subfolder).
    """
    data = Path(data)
    if data.is_dir():
        records = sorted(p.with_suffix("") for p in data.glob("*.hea"))
        if not records:
            raise UserError(f"no WFDB records (*.hea) in {data}")
        return records
    if data.is_file() and data.suffix.lower() == ".csv":
        import csv

        with data.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "record" not in rows[0]:
            raise UserError(f"manifest {data} needs a 'record' column")
        paths = []
        for row in rows:
            base = data.parent / row.get("source", "") / row["record"]
            paths.append(record_base(base))
        return paths
    if not data.exists():
        raise UserError(f"no such data folder or manifest: {data}")
    raise UserError(f"{data} is neither a folder of WFDB records nor a manifest .csv")


def find_all(sources: str | Path | list, exclude: set[str] = frozenset()) -> tuple[list[Path], list[str]]:
    """Records of several folders/manifests (in order), minus those named in ``exclude``.

    Returns:
        The record paths, and the names that were excluded (the held-out test split).
    Raises:
        UserError: when two sources hold a record of the same name (it would count twice).
    """
    sources = sources if isinstance(sources, (list, tuple)) else [sources]
    paths, excluded, seen = [], [], {}
    for source in sources:
        for path in find_records(source):
            if path.name in seen:
                raise UserError(f"record {path.name} is in both {seen[path.name]} and {source}")
            seen[path.name] = source
            (excluded if path.name in exclude else paths).append(path)
    return paths, [p.name for p in excluded]


def _prepare_or_error(args: tuple) -> PreparedRecord | UserError:
    path, cfg, cache_dir, needed, defer_image = args
    try:
        return prepare_path(path, cfg, cache_dir, needed, defer_image)
    except UserError as exc:
        return exc


def one_blas_thread() -> None:
    """Worker initializer: one BLAS thread per process. The scalogram's resizes are small matrix
    products that OpenBLAS would split over every core; with one worker process per core that
    oversubscribed the CPU and two workers made the 32x64 image 3.5x slower than one
    (bench/scalogram.py: 28.6 vs 101.1 records/s)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


#: Records whose deferred images go to the device together (enough to fill a GPU's FFTs).
DEVICE_BATCH = 256


def prepare_many(
    paths: list[Path], cfg: EcgConfig, cache_dir: Path | None = None, workers: int | None = None, progress: bool = True,
    needed: Needed = EVERYTHING, image_device=None, sink: Callable[[int, PreparedRecord], None] | None = None,
) -> list[PreparedRecord | UserError]:
    """Every record of :func:`iter_prepared` in a list (input order).

    ``image_device`` (a torch device; training passes its CUDA device) computes the scalograms
    there, :data:`DEVICE_BATCH` records per batch, while the worker processes read, filter and
    extract features; None computes each image in its worker process. ``sink(position, record)``
    sees each record once it is complete (training moves its image into an ``ImageBank``), so
    images need not pile up before the list is returned.
    """
    def done(position: int, record):
        if sink is not None and isinstance(record, PreparedRecord):
            sink(position, record)
        return record

    if image_device is None or not needed.image:
        prepared = iter_prepared(paths, cfg, cache_dir, workers, progress, needed)
        return [done(position, record) for position, record in enumerate(prepared)]
    from pipeline.transforms.scalogram_torch import stacked_scalograms

    spec = ScalogramSpec.from_config(cfg.scalogram, cfg.preprocess.fs)
    records: list[PreparedRecord | UserError] = []
    waiting: list[tuple[int, Path, PreparedRecord]] = []

    def complete() -> None:
        images = stacked_scalograms([record.pending for _, _, record in waiting], spec, image_device)
        for (position, path, record), image in zip(waiting, images):
            record.image, record.pending = image, None
            if cache_dir is not None:
                write_cache(cache_file(path, cfg, cache_dir), record)
            done(position, record)
        waiting.clear()

    prepared = iter_prepared(paths, cfg, cache_dir, workers, progress, needed, defer_image=True)
    for position, (path, record) in enumerate(zip(paths, prepared)):
        records.append(record)
        if isinstance(record, PreparedRecord) and record.pending is not None:
            waiting.append((position, path, record))
            if len(waiting) == DEVICE_BATCH:
                complete()
        else:
            done(position, record)
    if waiting:
        complete()
    return records


def pool_size(n_jobs: int, workers: int | None = None) -> int:
    """Worker processes for ``n_jobs`` records: one per core (at most 8), or 1 (this process) for
    fewer than 16 records, where starting workers costs more than it saves."""
    import os

    workers = workers or min(os.cpu_count() or 1, 8)
    return 1 if n_jobs < 16 else workers


def iter_prepared(
    paths: list[Path], cfg: EcgConfig, cache_dir: Path | None = None, workers: int | None = None, progress: bool = True,
    needed: Needed = EVERYTHING, defer_image: bool = False,
) -> Iterator[PreparedRecord | UserError]:
    """Prepare records in worker processes (one per core), yielded in input order as they are
    ready; a bad record yields its UserError. ``defer_image``: see :func:`prepare_record`.

    Processes, not threads: the CWT is FFT-bound and single-threaded FFTs in separate
    processes scale best on small machines (PERF.md §1). ``fork`` where available, so
    callers need no ``if __name__ == "__main__"`` guard; workers only run numpy/scipy.
    Consumers can work on early records while later ones are prepared.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    workers = pool_size(len(paths), workers)
    jobs = [(path, cfg, cache_dir, needed, defer_image) for path in paths]
    if workers <= 1:
        yield from map(_prepare_or_error, tqdm(jobs, desc="prepare records", disable=not progress or None, leave=False))
        return
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=get_context(method), initializer=one_blas_thread) as pool:
        results = pool.map(_prepare_or_error, jobs, chunksize=8)
        yield from tqdm(results, total=len(jobs), desc="prepare records", disable=not progress or None, leave=False)
