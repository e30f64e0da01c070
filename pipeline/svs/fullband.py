"""Full-band evaluation: stems at each track's own rate and channel count, SiSEC-style metrics.

``pipeline evaluate separator DIR --full-band``. For every track the *mixture file* is
separated exactly as ``pipeline separate`` does it (:func:`~pipeline.svs.separate.separate_blocks`:
chunks resampled to the model's rate, each channel separated, vocals resampled back,
accompaniment = mixture - vocals), and the stems are scored against the reference stems at the
file's rate (e.g. 44.1 kHz stereo for MUSDB18) with BSS Eval **images** metrics (SDR, ISR, SIR,
SAR) in 1-s windows with a 1-s hop; a track's figure is the median over its windows (silent
windows skipped), the summary the median over tracks, as SiSEC 2018 reports them.

The metrics are ``mir_eval.separation.bss_eval_images_framewise``: BSS Eval **v3** images
(distortion filters of 512 taps re-estimated in every window). museval's v4 estimates the
filters once over the whole track; its numbers are close to, but not identical with, these.
(museval itself needs the ffmpeg binary just to be imported, through musdb and stempeg.)

Reference points, on the same mixture file:

* ``oracle_ibm``: the hard ideal binary mask ``|V| > |A|`` computed per channel from the
  reference stems' STFT at the track's rate, with the model's window and hop durations
  (:func:`oracle_stft`: 2822/706 samples = 64/16 ms at 44.1 kHz for the 16 kHz, 1024/256-point
  model), applied to the mixture's STFT (mixture phase);
* ``oracle_ibm_model_rate``: the same mask computed at the model's rate and STFT and passed
  through the model's path (mixture resampled down, masked, vocals resampled back,
  accompaniment = mixture - vocals), i.e. a perfect mask of the model: the ceiling of a
  model that only sees the band below the model's Nyquist frequency (the resampler passes up
  to about 7.5 kHz for a 16 kHz model; above, everything ends up in the accompaniment);
* ``mixture``: the mixture as both estimates (the floor).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import UserError

SOURCES = ("vocals", "accompaniment")
METRICS = ("sdr", "sir", "sar", "isr")
SYSTEMS = ("model", "oracle_ibm", "oracle_ibm_model_rate", "mixture")
WINDOW_S = 1.0
LENGTH_TOLERANCE = 32  # samples a stem may differ in length from the mixture (trimmed to the shortest)
METHOD = ("BSS Eval v3 images (mir_eval.separation.bss_eval_images_framewise, 512-tap filters), "
          "1-s windows, 1-s hop; track = median over windows, summary = median over tracks")


@dataclass
class FullbandTrack:
    """A track's files, checked for matching rate, channels and length (headers only)."""

    track_id: str
    mixture: object  # AudioInfo of the mixture file
    vocals: Path
    accompaniment: list[Path]
    frames: int  # common length (the shortest file)

    def load_references(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vocals, accompaniment)``, each ``(channels, frames)`` float64 at the mixture's rate."""
        from pipeline.io.audio import read_audio

        voice = read_audio(self.vocals)[0][:, :self.frames].astype(np.float64)
        acc = sum(read_audio(p)[0][:, :self.frames].astype(np.float64) for p in self.accompaniment)
        return voice, acc


def check_track(track) -> FullbandTrack:
    """Check that ``track`` (:class:`~pipeline.svs.data.Track`) has a mixture file and stems of the
    mixture's rate and channel count whose lengths agree within :data:`LENGTH_TOLERANCE`."""
    from pipeline.io.audio import probe_audio

    if track.mixture is None:
        where = track.raw_mir1k or (track.vocals.parent if track.vocals else track.track_id)
        raise UserError(f"{where}: --full-band separates each track's mixture file, and track "
                        f"{track.track_id} has none (expected mixture.flac beside the stems)")
    mix = probe_audio(track.mixture)
    frames = [mix.frames]
    for path in [track.vocals, *track.accompaniment]:
        info = probe_audio(path)
        if info.sample_rate != mix.sample_rate:
            raise UserError(f"{path} is sampled at {info.sample_rate} Hz but the mixture {mix.path.name} at "
                            f"{mix.sample_rate} Hz; full-band scoring needs stems at the mixture's rate")
        if info.channels != mix.channels:
            raise UserError(f"{path} has {info.channels} channel(s) but the mixture {mix.path.name} has "
                            f"{mix.channels}; full-band scoring needs stems with the mixture's channels")
        if abs(info.frames - mix.frames) > LENGTH_TOLERANCE:
            raise UserError(f"{path} is {info.frames} samples long but the mixture {mix.path.name} is "
                            f"{mix.frames} (more than {LENGTH_TOLERANCE} samples apart); the stems do not "
                            "belong to this mixture or were cut differently")
        frames.append(info.frames)
    return FullbandTrack(track.track_id, mix, track.vocals, list(track.accompaniment), min(frames))


def oracle_stft(sample_rate: int, model_stft):
    """STFT for the full-band oracle: the model's window and hop *durations* at ``sample_rate``
    (1024/256 at 16 kHz -> 2822/706 samples at 44.1 kHz, 64/16 ms), so that it differs from the
    model-rate oracle only in the band it sees, not in time-frequency resolution."""
    from pipeline.svs.config import SvsStft

    scale = sample_rate / model_stft.sample_rate
    n_fft = int(round(model_stft.n_fft * scale))
    win = min(n_fft, int(round(model_stft.win_length * scale)))
    hop = max(1, min(win, int(round(model_stft.hop * scale))))
    return SvsStft(sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop=hop)


def ibm_vocals(mixture: np.ndarray, voice: np.ndarray, acc: np.ndarray, stft_cfg) -> np.ndarray:
    """Vocals of the hard ideal binary mask ``|V| > |A|`` (per channel, per bin) applied to the
    mixture's STFT; all arrays ``(channels, samples)``."""
    from pipeline.svs.spectral import istft, stft

    mask = np.abs(stft(voice, stft_cfg)) > np.abs(stft(acc, stft_cfg))
    return istft(stft(mixture, stft_cfg) * mask, stft_cfg, length=mixture.shape[-1]).astype(np.float64)


def ibm_vocals_model_rate(mixture: np.ndarray, voice: np.ndarray, acc: np.ndarray, sample_rate: int,
                          model_stft) -> np.ndarray:
    """The ideal binary mask passed through the model's path: everything resampled to the model's
    rate, masked with the model's STFT, vocals resampled back to ``sample_rate``."""
    from pipeline.io.audio import resample

    down = [resample(x.astype(np.float32), sample_rate, model_stft.sample_rate) for x in (mixture, voice, acc)]
    vocals = resample(ibm_vocals(*down, model_stft).astype(np.float32), model_stft.sample_rate, sample_rate)
    n = mixture.shape[-1]
    vocals = vocals[:, :n] if vocals.shape[1] >= n else np.pad(vocals, ((0, 0), (0, n - vocals.shape[1])))
    return vocals.astype(np.float64)


def bss_images(refs: np.ndarray, ests: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Framewise BSS Eval images metrics of ``(sources, channels, samples)`` references and estimates.

    Returns ``{"sdr", "sir", "sar", "isr"}`` -> ``(sources, windows)`` in dB; a window where a
    reference or an estimate is silent is NaN. A track shorter than two windows is scored whole.
    """
    from pipeline.svs.evaluate import mir_eval_separation

    bss_eval_images_framewise = mir_eval_separation().bss_eval_images_framewise

    refs = np.ascontiguousarray(np.transpose(refs, (0, 2, 1)), dtype=np.float64)
    ests = np.ascontiguousarray(np.transpose(ests, (0, 2, 1)), dtype=np.float64)
    window = int(round(WINDOW_S * sample_rate))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        sdr, isr, sir, sar, _ = bss_eval_images_framewise(refs, ests, window=window, hop=window)
    sdr, isr, sir, sar = (np.asarray(x, dtype=np.float64) for x in (sdr, isr, sir, sar))
    isr = np.where(np.isnan(sdr), np.nan, isr)  # mir_eval leaves ISR uninitialised in silent windows
    return {"sdr": sdr, "sir": sir, "sar": sar, "isr": isr}


def track_figures(frames: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Median over windows (NaN windows skipped) per metric and source: ``{metric: {source: dB}}``."""
    out = {}
    for metric, values in frames.items():
        out[metric] = {}
        for k, src in enumerate(SOURCES):
            row = values[k][~np.isnan(values[k])]
            out[metric][src] = float(np.median(row)) if row.size else float("nan")
    return out


def score(refs: np.ndarray, vocals: np.ndarray, accompaniment: np.ndarray, sample_rate: int) -> dict:
    """Track figures (:func:`track_figures`) of one pair of ``(channels, samples)`` estimates."""
    return track_figures(bss_images(refs, np.stack([vocals, accompaniment]), sample_rate))


def _silent(x: np.ndarray) -> bool:
    return float(np.max(np.abs(x))) < 1e-9


def energy_above(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> float:
    """Share of ``x``'s energy above ``cutoff_hz`` (all channels)."""
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    total = float(power.sum())
    return float(power[..., freqs > cutoff_hz].sum()) / total if total > 0 else 0.0


def separate_track(info, sep, threshold=None, wiener=None, input_rms_db=None) -> tuple[np.ndarray, np.ndarray]:
    """``(mixture, vocals)`` of the mixture file ``info`` through the separation path of
    ``pipeline separate`` (the file is read once: the mixture comes from the same blocks)."""
    from pipeline.svs.separate import separate_blocks

    mixture, vocals = zip(*separate_blocks(info, sep, threshold, wiener, input_rms_db))
    return np.concatenate(mixture, axis=1).astype(np.float64), np.concatenate(vocals, axis=1).astype(np.float64)


def evaluate_tracks_fullband(tracks, sep, out: str | Path | None = None, progress: bool = False,
                             threshold: float | None = None, wiener: bool | None = None,
                             input_rms_db: float | None = None) -> dict:
    """Score ``tracks`` (:class:`~pipeline.svs.data.Track`) with separator ``sep`` at full band.

    Every track is checked (headers only) before anything is separated. Returns the report (see
    :func:`~pipeline.svs.evaluate.evaluate_separator`); with ``out`` also writes ``report.json``,
    ``tracks.csv``, ``fullband.png`` and ``report.html`` there.
    """
    from pipeline.svs.separate import separation_settings

    checked = [check_track(t) for t in tracks]
    if out is not None:
        from pipeline.io.audio import check_writable_dir

        check_writable_dir(out)
    model_stft = sep.config.stft
    nyquist = model_stft.sample_rate / 2
    rows, notes = [], []
    iterator = checked
    if progress:
        from tqdm import tqdm

        iterator = tqdm(checked, desc="evaluate", unit="track", leave=False)
    for track in iterator:
        sr, n = track.mixture.sample_rate, track.frames
        voice, acc = track.load_references()
        if _silent(voice) or _silent(acc):
            notes.append(f"{track.track_id}: a reference stem is silent; skipped")
            continue
        mix, est_v = (x[:, :n] for x in separate_track(track.mixture, sep, threshold, wiener, input_rms_db))
        if _silent(est_v) or _silent(mix - est_v):
            notes.append(f"{track.track_id}: the model's vocal or accompaniment estimate is silent; skipped")
            continue
        refs = np.stack([voice, acc])
        ora_stft = oracle_stft(sr, model_stft)
        ora_v = ibm_vocals(mix, voice, acc, ora_stft)
        low_v = ibm_vocals_model_rate(mix, voice, acc, sr, model_stft)
        figures = {
            "model": score(refs, est_v, mix - est_v, sr),
            "oracle_ibm": score(refs, ora_v, mix - ora_v, sr),
            "oracle_ibm_model_rate": score(refs, low_v, mix - low_v, sr),
            "mixture": score(refs, mix, mix, sr),
        }
        row = {"track": track.track_id, "seconds": round(n / sr, 3), "sample_rate": sr,
               "channels": track.mixture.channels, "windows": max(1, int(n // round(WINDOW_S * sr))),
               "oracle_n_fft": ora_stft.n_fft, "oracle_hop": ora_stft.hop,
               "vocals_energy_above_model_nyquist": round(energy_above(voice, sr, nyquist), 6),
               "model_vocals_energy_above_model_nyquist": round(energy_above(est_v, sr, nyquist), 9),
               "mixture_residual_db": round(_residual_db(mix, voice + acc), 2)}
        for system in SYSTEMS:
            for metric in METRICS:
                for src in SOURCES:
                    row[f"{system}_{metric}_{src}"] = figures[system][metric][src]
        rows.append(row)
    if not rows:
        raise UserError("no track could be evaluated (every reference stem or estimate was silent: "
                        + "; ".join(notes[:3]) + ")")
    report = summarise(rows, sep)
    report.update(separation_settings(sep, threshold, wiener, input_rms_db))
    report["notes"] = notes
    if out is not None:
        write_report(report, rows, Path(out))
    return report


def _residual_db(mixture: np.ndarray, stem_sum: np.ndarray) -> float:
    """Mixture-to-residual ratio ``|mixture|^2 / |mixture - (vocals + accompaniment)|^2`` in dB."""
    residual = float(np.sum((mixture - stem_sum) ** 2))
    return 10 * math.log10(float(np.sum(mixture**2)) / residual) if residual > 0 else float("inf")


def _median(rows: list[dict], key: str) -> float:
    values = np.array([r[key] for r in rows], dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def summarise(rows: list[dict], sep) -> dict:
    """Report dict: model figures at the top level, reference systems as blocks (median over tracks)."""
    def block(system: str) -> dict:
        return {metric: {src: _median(rows, f"{system}_{metric}_{src}") for src in SOURCES} for metric in METRICS}

    model_stft = sep.config.stft
    return {
        "mode": "full-band",
        "method": METHOD,
        "model": sep.name,
        "run_id": sep.run_id,
        "model_sample_rate": model_stft.sample_rate,
        "n_tracks": len(rows),
        "seconds": round(float(sum(r["seconds"] for r in rows)), 3),
        "sample_rates": sorted({r["sample_rate"] for r in rows}),
        "channels": sorted({r["channels"] for r in rows}),
        **block("model"),
        "oracle_ibm": {**block("oracle_ibm"), "stft": sorted({f"{r['oracle_n_fft']}/{r['oracle_hop']}" for r in rows})},
        "oracle_ibm_model_rate": block("oracle_ibm_model_rate"),
        "mixture": block("mixture"),
        "tracks": [r["track"] for r in rows],
        "per_track": rows,
    }


def json_safe(value):
    """The report with NaN/inf (a silent window, a perfect estimate) as JSON null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write_report(report: dict, rows: list[dict], out: Path) -> None:
    """``report.json``, per-track ``tracks.csv``, ``fullband.png`` and ``report.html``."""
    from pipeline.svs.fullband_page import write_fullband_page

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(json_safe(report), indent=2))
        with open(out / "tracks.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        write_fullband_page(json_safe(report), out)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc


LABELS = {"model": "model", "oracle_ibm": "oracle IBM", "oracle_ibm_model_rate": "IBM @model rate",
          "mixture": "mixture"}


def format_table(report: dict) -> str:
    """The printed summary: one line per system, SDR/SIR/SAR/ISR for both stems."""
    rates = "/".join(f"{r / 1000:g} kHz" for r in report["sample_rates"])
    chans = "/".join({1: "mono", 2: "stereo"}.get(c, f"{c} ch") for c in report["channels"])
    lines = [
        f"{report['model']} ({report['run_id']}): {report['n_tracks']} track{'s' if report['n_tracks'] != 1 else ''}, {report['seconds']:.1f} s, "
        f"{rates} {chans}, full band",
        "  BSS Eval v3 images (mir_eval), 1-s windows; median over windows, then over tracks (dB)",
        f"  {'':<16}{'vocals':^32}  {'accompaniment':^32}",
        f"  {'':<16}" + ("".join(f"{m.upper():>8}" for m in METRICS) + "  ") * 2,
    ]
    for system in SYSTEMS:
        block = report if system == "model" else report[system]
        cells = ["".join(_cell(block[m][s]) for m in METRICS) for s in SOURCES]
        lines.append(f"  {LABELS[system]:<16}{cells[0]}  {cells[1]}")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{'–':>8}" if value is None or not math.isfinite(value) else f"{value:8.2f}"
