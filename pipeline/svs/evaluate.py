"""BSS-Eval of a separator: NSDR/GNSDR/GSIR/GSAR beside the oracle IBM and the mixture.

For every track (mono, at the model's rate) three estimates are scored with
``mir_eval.separation.bss_eval_sources`` (no permutation search):

* the model (threshold and mask exactly as :func:`~pipeline.svs.separate.separate_array`);
* the **oracle IBM**: the mixture masked by the hard ``|V| > |A|`` mask (ceiling);
* the **mixture** itself as both estimates (floor; its NSDR is 0 by definition).

NSDR = SDR(estimate) - SDR(mixture); G-values are means weighted by track length.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

from pipeline.errors import UserError
from pipeline.svs.report_page import LISTEN_SECONDS, write_separator_page

SOURCES = ("vocals", "accompaniment")
LISTEN_TRACKS = 3  # tracks whose stems report.html lets you play


def mir_eval_separation():
    """``mir_eval.separation``, made safe for numpy 2: on a singular projection (e.g. a window
    where the estimate is an exact mix of the references) mir_eval 0.8 falls back to least
    squares by catching ``np.linalg.linalg.LinAlgError``, a name numpy 2 removed, so the fallback
    itself raised AttributeError. The alias restores the name mir_eval looks up."""
    if not hasattr(np.linalg, "linalg"):
        np.linalg.linalg = np.linalg
    from mir_eval import separation

    return separation


def bss(refs: np.ndarray, ests: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sdr, sir, sar)`` per source for ``(2, samples)`` references and estimates."""
    bss_eval_sources = mir_eval_separation().bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdr, sir, sar, _ = bss_eval_sources(refs, ests, compute_permutation=False)
    return sdr, sir, sar


def oracle_vocals(voice: np.ndarray, acc: np.ndarray, stft_cfg) -> np.ndarray:
    """Vocals from the hard ideal binary mask applied to the mixture ``voice + acc`` (mixture phase)."""
    from pipeline.svs.fullband import ibm_vocals

    return ibm_vocals(voice + acc, voice, acc, stft_cfg)


def evaluate_tracks(tracks, sep, out: str | Path | None = None, progress: bool = False,
                    threshold: float | None = None, wiener: bool | None = None,
                    input_rms_db: float | None = None) -> dict:
    """Score ``tracks`` (:class:`~pipeline.svs.data.Track`) with separator ``sep``.

    ``threshold``, ``wiener`` and ``input_rms_db`` override the model's inference settings, as in
    :func:`~pipeline.svs.separate.separate_array`.

    Returns the report dict (see :func:`evaluate_separator`); with ``out`` also writes
    ``report.json``, ``tracks.csv``, ``gnsdr.png`` and ``report.html`` there.
    """
    from pipeline.svs.separate import separate_array

    cfg = sep.config
    sr = cfg.stft.sample_rate
    rows, notes, listen = [], [], {}
    iterator = tracks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(tracks, desc="evaluate", unit="track", leave=False)
    for track in iterator:
        voice, acc = track.load(sr)
        mix = voice + acc
        if np.max(np.abs(voice)) < 1e-6 or np.max(np.abs(acc)) < 1e-6:
            notes.append(f"{track.track_id}: a reference stem is silent; skipped")
            continue
        refs = np.stack([voice, acc]).astype(np.float64)
        est_v = separate_array(mix[None], sep, threshold, wiener, input_rms_db)[0]
        if np.max(np.abs(est_v)) < 1e-9 or np.max(np.abs(mix - est_v)) < 1e-9:  # bss_eval rejects silence
            notes.append(f"{track.track_id}: the model's vocal or accompaniment estimate is silent; skipped")
            continue
        ora_v = oracle_vocals(voice, acc, cfg.stft)
        model = bss(refs, np.stack([est_v, mix - est_v]))
        oracle = bss(refs, np.stack([ora_v, mix - ora_v]))
        floor = bss(refs, np.stack([mix, mix]))
        row = {"track": track.track_id, "singer": track.singer, "song": track.song, "seconds": len(mix) / sr}
        for name, (sdr, sir, sar) in (("model", model), ("oracle", oracle), ("mixture", floor)):
            for k, src in enumerate(SOURCES):
                row[f"{name}_sdr_{src}"] = float(sdr[k])
                row[f"{name}_sir_{src}"] = float(sir[k])
                row[f"{name}_sar_{src}"] = float(sar[k])
                row[f"{name}_nsdr_{src}"] = float(sdr[k] - floor[0][k])
        rows.append(row)
        if len(listen) < LISTEN_TRACKS:
            cut = slice(0, int(LISTEN_SECONDS * sr))
            listen[track.track_id] = {"mixture": mix[cut], "vocals": est_v[cut], "accompaniment": (mix - est_v)[cut]}
    if not rows:
        raise UserError("no track could be evaluated (every reference stem or estimate was silent: "
                        + "; ".join(notes[:3]) + ")")
    report = summarise(rows, sep)
    report["threshold"] = sep.config.ibm.threshold if threshold is None else threshold
    report["wiener"] = sep.config.separate.wiener if wiener is None else wiener
    report["input_rms_db"] = sep.config.separate.input_rms_db if input_rms_db is None else input_rms_db
    report["notes"] = notes
    if out is not None:
        write_report(report, rows, Path(out), listen, sr)
    return report


def _weighted(rows: list[dict], key: str) -> float:
    w = np.array([r["seconds"] for r in rows])
    return float(np.sum(w * np.array([r[key] for r in rows])) / np.sum(w))


def summarise(rows: list[dict], sep) -> dict:
    def block(prefix: str) -> dict:
        return {
            "gnsdr": {s: _weighted(rows, f"{prefix}_nsdr_{s}") for s in SOURCES},
            "gsdr": {s: _weighted(rows, f"{prefix}_sdr_{s}") for s in SOURCES},
            "gsir": {s: _weighted(rows, f"{prefix}_sir_{s}") for s in SOURCES},
            "gsar": {s: _weighted(rows, f"{prefix}_sar_{s}") for s in SOURCES},
        }

    model = block("model")
    return {
        "model": sep.name,
        "run_id": sep.run_id,
        "n_tracks": len(rows),
        "seconds": round(float(sum(r["seconds"] for r in rows)), 3),
        **model,
        "oracle_ibm": block("oracle"),
        "mixture": block("mixture"),
        "singers": sorted({r["singer"] for r in rows}),
        "tracks": [r["track"] for r in rows],
    }


def write_report(report: dict, rows: list[dict], out: Path, listen: dict, sr: int) -> None:
    """``report.json``, per-track ``tracks.csv``, a ``gnsdr.png`` bar/scatter plot, and ``report.html``
    with the model's stems of the ``listen`` tracks (``{track: {stem: samples}}``) to play."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    (out / "report.json").write_text(json.dumps(report, indent=2))
    with open(out / "tracks.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["mixture", "model", "oracle IBM"]
    for ax, src in zip(axes, SOURCES):
        vals = [report["mixture"]["gnsdr"][src], report["gnsdr"][src], report["oracle_ibm"]["gnsdr"][src]]
        ax.bar(labels, vals, color=["0.6", "tab:blue", "tab:green"])
        per = [r[f"model_nsdr_{src}"] for r in rows]
        ax.scatter(np.full(len(per), 1) + np.random.default_rng(0).uniform(-0.25, 0.25, len(per)), per,
                   s=8, color="k", alpha=0.5, zorder=3, label="model, per track")
        ax.set_title(f"{src}: GNSDR (dB), {report['n_tracks']} tracks")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{report['model']} ({report['run_id']})")
    fig.tight_layout()
    fig.savefig(out / "gnsdr.png", dpi=100)
    plt.close(fig)
    write_separator_page(report, rows, out, listen, sr)


def evaluate_separator(data, model=None, out=None, *, subset: str = "all", progress: bool = False,
                       threshold: float | None = None, wiener: bool | None = None,
                       input_rms_db: float | None = None, full_band: bool = False) -> dict:
    """Evaluate a separator on every track under ``data`` (shared layout, raw MIR-1K, MUSDB).

    Args:
        data: folder of tracks.
        model: model folder, ``NAME`` or ``NAME@RUN`` (default ``svs-default``).
        out: folder for ``report.json``, ``tracks.csv``, ``gnsdr.png``, ``report.html``.
        subset: ``all`` tracks, ``test`` = only the tracks the model held out when it
            was trained, or ``val`` = its validation tracks, for choosing options (both
            recorded in its ``model.json``).
        threshold, wiener, input_rms_db: override the model's inference settings.
        full_band: separate each track's mixture file at its own rate and channel count, as
            ``pipeline separate`` does, and score the stems there with SiSEC-style framewise
            BSS Eval images metrics (:mod:`pipeline.svs.fullband`; report ``mode: full-band``,
            keys ``sdr/sir/sar/isr`` instead of the G-values, ``report.json`` + ``tracks.csv``).

    Returns:
        ``{"model", "run_id", "n_tracks", "seconds", "gnsdr", "gsdr", "gsir", "gsar",
        "oracle_ibm", "mixture", ...}``; each metric is ``{"vocals", "accompaniment"}`` in dB.
    """
    from pipeline.svs.bundle import resolve_model
    from pipeline.svs.data import discover_tracks

    sep = resolve_model(model)
    tracks, _ = discover_tracks(data, singers=None)
    if subset in ("test", "val"):
        held = set(sep.meta.get("split", {}).get(subset, []))
        if not held:
            raise UserError(f"model {sep.name} records no {subset} tracks; use --subset all")
        tracks = [t for t in tracks if t.track_id in held]
        if not tracks:
            raise UserError(f"none of the model's {len(held)} {subset} tracks are under {data}")
    elif subset != "all":
        raise UserError(f"unknown subset {subset!r}; use all, val or test")
    if out is not None:  # before the tracks are separated, not after
        from pipeline.io.audio import check_writable_dir

        check_writable_dir(out, what="report folder")
    if full_band:
        from pipeline.svs.fullband import evaluate_tracks_fullband

        return evaluate_tracks_fullband(tracks, sep, out, progress=progress, threshold=threshold, wiener=wiener,
                                        input_rms_db=input_rms_db)
    return evaluate_tracks(tracks, sep, out, progress=progress, threshold=threshold, wiener=wiener,
                           input_rms_db=input_rms_db)
