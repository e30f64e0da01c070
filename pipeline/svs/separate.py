"""Separation: one core on arrays, a streaming file adapter that writes stems to the store.

:func:`separate_array` splits ``(channels, samples)`` audio at the model's rate (each
channel independently). :func:`separate_file` streams any supported file in chunks with
context on both sides (memory bounded by the chunk size, not the file length), resamples
to the model's rate and back, and writes ``vocals`` and ``accompaniment`` stems with the
input's rate and channel count. Accompaniment = mixture - vocals, so the stems sum to the
input exactly (up to FLAC's 24-bit quantisation).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.scratch import scratch_dir
from pipeline.svs.bundle import LoadedSeparator, resolve_model

STEMS = ("vocals", "accompaniment")


def input_gain(audio: np.ndarray, rms_db: float | None) -> float:
    """Gain that brings ``(channels, samples)`` audio to ``rms_db`` dBFS RMS (1 when None or silent).

    The network saw training mixtures around one loudness; scaling its input there keeps the
    log-magnitude features in range for quiet or loud songs.
    """
    if rms_db is None or not audio.size:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 10 ** (rms_db / 20) / rms if rms >= 1e-6 else 1.0


def voice_mask(mix_spec: np.ndarray, sep: LoadedSeparator, threshold: float | None = None,
               wiener: bool | None = None, gain: float = 1.0, audio: np.ndarray | None = None) -> np.ndarray:
    """Voice mask in [0, 1] for a complex mixture spectrogram ``(channels, bins, frames)``.

    Probabilities below ``threshold`` (default: the model's; the paper's is 0.35) are zeroed; the rest
    are kept as soft gains (Lin et al. 2018). ``wiener`` applies the optional post-filter.
    The network sees the magnitudes times ``gain`` (see :func:`input_gain`). A multi-resolution
    model (``stft.extra_windows``) also needs the ``(channels, samples)`` ``audio`` of ``mix_spec``.
    """
    from pipeline.svs.spectral import network_input, sigmoid, threshold_mask, wiener_mask

    cfg = sep.config
    threshold = cfg.ibm.threshold if threshold is None else threshold
    wiener = cfg.separate.wiener if wiener is None else wiener
    mag = np.abs(mix_spec)
    if cfg.stft.extra_windows and audio is None:
        raise UserError(f"{sep.name} takes multi-resolution input (stft.extra_windows); its mask needs the audio, "
                        "not only the spectrogram")
    feats = network_input(audio, mag, cfg.stft, gain)
    logits = np.concatenate([sep.runner.mask_logits(feats[c:c + 1]) for c in range(feats.shape[0])], axis=0)
    mask = threshold_mask(sigmoid(logits), threshold)
    if wiener:
        mask = wiener_mask(mask, mag)
    return mask


def separate_array(audio: np.ndarray, sep: LoadedSeparator, threshold: float | None = None,
                   wiener: bool | None = None, input_rms_db: float | None = None) -> np.ndarray:
    """Vocals of ``(channels, samples)`` float audio sampled at the model's rate.

    ``threshold``, ``wiener`` and ``input_rms_db`` override the model's settings when given.
    Returns ``(channels, samples)`` vocals; accompaniment is ``audio - vocals``.
    """
    from pipeline.svs.spectral import istft, stft

    cfg = sep.config.stft
    audio = np.asarray(audio, dtype=np.float32)
    spec = stft(audio, cfg)
    level = sep.config.separate.input_rms_db if input_rms_db is None else input_rms_db
    mask = voice_mask(spec, sep, threshold, wiener, input_gain(audio, level), audio=audio)
    return istft(spec * mask, cfg, length=audio.shape[-1])


def separate_blocks(info, sep: LoadedSeparator, threshold: float | None = None, wiener: bool | None = None,
                    input_rms_db: float | None = None):
    """Separate the file ``info`` (:class:`~pipeline.io.audio.AudioInfo`) block by block, front to back.

    Each block (``separate.chunk_s`` with ``separate.context_s`` on both sides) is resampled to the
    model's rate, every channel separated by :func:`separate_array`, and the vocals resampled back
    to the file's rate, so they hold nothing above the model's Nyquist frequency (8 kHz for a
    16 kHz model). Yields ``(mixture, vocals)``, both ``(channels, n)`` at the file's rate, covering
    the file in order; the accompaniment is ``mixture - vocals`` (it keeps everything above 8 kHz).
    """
    from pipeline.io.audio import iter_blocks, resample

    cfg = sep.config
    model_sr = cfg.stft.sample_rate
    block = int(cfg.separate.chunk_s * info.sample_rate)
    context = int(cfg.separate.context_s * info.sample_rate)
    for chunk, left, valid in iter_blocks(info, block, context):
        at_model = resample(chunk, info.sample_rate, model_sr)
        vocals = separate_array(at_model, sep, threshold, wiener, input_rms_db)
        vocals = resample(vocals, model_sr, info.sample_rate)
        yield chunk[:, left:left + valid], _fit(vocals, chunk.shape[1])[:, left:left + valid]


def track_id_for(path: Path, digest: str) -> str:
    """Store id for an input file: a slug of its name plus 8 hex digits of its content hash."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._")[:100] or "track"
    return f"{slug}-{digest[:8]}"


def separate_file(path, model=None, store=None, out_dir=None, *, fmt: str = "flac",
                  threshold: float | None = None, wiener: bool | None = None, input_rms_db: float | None = None,
                  allow_clipping: bool = False, backend: str = "auto") -> dict:
    """Separate one audio file into vocals + accompaniment stems in the artifact store.

    Args:
        path: wav/flac/ogg/aiff/mp3 file, mono or stereo, 11.025-192 kHz.
        model: model folder, ``NAME`` or ``NAME@RUN`` (default ``svs-default``), or a
            :class:`LoadedSeparator`.
        store: a :class:`~pipeline.store.Store` (default: ``Store.open()``).
        out_dir: also copy the stems to ``out_dir/<track_id>/``.
        fmt: ``flac`` (24-bit, default) or ``wav`` (32-bit float).

    Returns:
        ``{"track_id", "run_id", "stems": {"vocals": uri, "accompaniment": uri},
        "seconds", "sample_rate", "model", "elapsed_s"}``. Stems live under
        ``stems/<track_id>/<run_id>/`` with ``manifest.json`` written last; on any failure
        nothing is left in the store or ``out_dir``.
    """
    from pipeline.io.audio import atomic_writer, check_levels, check_writable_dir, probe_audio, reading
    from pipeline.store import Store, sha256_file, validate_id

    started = time.perf_counter()
    path = Path(path)
    if fmt not in ("flac", "wav"):
        raise UserError(f"unknown stem format {fmt!r}; use flac or wav")
    info = probe_audio(path)
    levels = check_levels(info, allow_clipping=allow_clipping)
    if out_dir is not None:
        check_writable_dir(out_dir)
    store = store or Store.open()
    store.check_writable()
    sep = resolve_model(model, store, backend=backend)
    validate_id(sep.run_id, "model run id")
    cfg = sep.config
    with reading(path):
        digest = sha256_file(path)
    track_id = validate_id(track_id_for(path, digest), "track id")
    model_sr = cfg.stft.sample_rate
    settings = separation_settings(sep, threshold, wiener, input_rms_db)
    run_id = stems_run_id(sep, settings)
    done = store.read_manifest("stems", track_id, run_id)
    if done is not None:  # runs are immutable: the same file, model and settings were separated before
        return _already_separated(store, done, track_id, run_id, sep, info, out_dir, started)
    names = {stem: f"{stem}.{fmt}" for stem in STEMS}
    with scratch_dir("pipeline-separate-") as tmp:
        tmp = Path(tmp)
        with atomic_writer(tmp / names["vocals"], info.sample_rate, info.channels, fmt) as voc_out, \
                atomic_writer(tmp / names["accompaniment"], info.sample_rate, info.channels, fmt) as acc_out:
            for mixture, vocals in separate_blocks(info, sep, threshold, wiener, input_rms_db):
                voc_out.write(vocals.T)
                acc_out.write((mixture - vocals).T)
        elapsed = time.perf_counter() - started
        inputs = [{"path": str(path.resolve()), "sha256": digest, "sample_rate": info.sample_rate,
                   "channels": info.channels, "seconds": round(info.seconds, 3), **levels}]
        uri = store.publish_run(
            ("stems", track_id, run_id), {names[s]: tmp / names[s] for s in STEMS},
            kind="svs-stems",
            config={"model": sep.name, "model_run_id": sep.run_id, **settings, "format": fmt,
                    "model_sample_rate": model_sr},
            metrics={"elapsed_s": round(elapsed, 3), "realtime_factor": round(info.seconds / max(elapsed, 1e-9), 2)},
            inputs=inputs,
            extra={"track_id": track_id, "stems": {s: names[s] for s in STEMS}},
        )
        if out_dir is not None:
            _copy_out(tmp, Path(out_dir) / track_id, names)
    return {
        "track_id": track_id,
        "run_id": run_id,
        "stems": {s: f"{uri}/{names[s]}" for s in STEMS},
        "seconds": round(info.seconds, 3),
        "sample_rate": info.sample_rate,
        "model": sep.name,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def separation_settings(sep: LoadedSeparator, threshold: float | None = None, wiener: bool | None = None,
                        input_rms_db: float | None = None) -> dict:
    """The inference settings a separation uses: the given ones, else the model's own."""
    cfg = sep.config
    return {"threshold": cfg.ibm.threshold if threshold is None else threshold,
            "wiener": cfg.separate.wiener if wiener is None else wiener,
            "input_rms_db": cfg.separate.input_rms_db if input_rms_db is None else input_rms_db}


def stems_run_id(sep: LoadedSeparator, settings: dict) -> str:
    """Stems folder of a separation: the model's run id with the model's own settings (so a flow
    can tell whether a track was separated by the current model), else that id plus a hash of the
    settings, so stems made with another threshold, Wiener or input level are never reused."""
    if settings == separation_settings(sep):
        return sep.run_id
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{sep.run_id}-{digest}"


def _already_separated(store, manifest: dict, track_id: str, run_id: str, sep, info, out_dir, started: float) -> dict:
    """Result of an earlier identical separation, copied to ``out_dir`` when asked."""
    names = manifest.get("stems") or {s: f"{s}.flac" for s in STEMS}
    prefix = ("stems", track_id, run_id)
    if out_dir is not None:
        with scratch_dir("pipeline-separate-") as tmp:
            for stem in STEMS:
                store.get_file((*prefix, names[stem]), Path(tmp) / names[stem])
            _copy_out(Path(tmp), Path(out_dir) / track_id, names)
    return {
        "track_id": track_id,
        "run_id": run_id,
        "stems": {s: store.uri(*prefix, names[s]) for s in STEMS},
        "seconds": round(info.seconds, 3),
        "sample_rate": info.sample_rate,
        "model": sep.name,
        "elapsed_s": round(time.perf_counter() - started, 3),
        "cached": True,
    }


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    if audio.shape[1] >= length:
        return audio[:, :length]
    return np.pad(audio, ((0, 0), (0, length - audio.shape[1])))


def _copy_out(source: Path, folder: Path, names: dict[str, str]) -> None:
    """Copy stems atomically into ``folder``; on failure remove what this call wrote."""
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names.values():
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
            import os

            os.close(fd)
            try:
                shutil.copyfile(source / name, tmp)
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            written.append(folder / name)
    except OSError as exc:
        for done in written:
            done.unlink(missing_ok=True)
        raise UserError(f"cannot write stems to {folder}: {exc.strerror or exc}") from exc
