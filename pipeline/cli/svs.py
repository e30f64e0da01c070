"""Separation commands: separate, train separator, evaluate separator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli import app, evaluate_app, train_app
from pipeline.errors import UserError


@app.command()
def separate(
    audio: Path = typer.Argument(..., help="Audio file (wav, flac, ogg, aiff, mp3), mono or stereo."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model NAME or NAME@RUN in the store, or a model folder. Default: svs-default."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also copy the stems to OUT/<track_id>/."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    fmt: str = typer.Option("flac", "--format", help="Stem format: flac (24-bit) or wav (float)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Voice-probability threshold (default: the model's; 0.2 for the bundled svs-default)."),
    wiener: bool = typer.Option(False, "--wiener", help="Apply the soft Wiener-like post-filter (off in the paper)."),
    input_rms_db: Optional[float] = typer.Option(None, "--input-rms-db", min=-100.0, max=0.0, help="Scale each chunk to this RMS level (dBFS) before the network (default: the model's; -26 is the training level)."),
    allow_clipping: bool = typer.Option(False, "--allow-clipping", help="Separate heavily clipped input anyway."),
) -> None:
    """Split a song into vocals and accompaniment; stems go to the store under stems/<track>/<run>/."""
    from pipeline.svs.separate import separate_file

    result = separate_file(audio, model=model, out_dir=out, fmt=fmt, threshold=threshold,
                           wiener=wiener or None, input_rms_db=input_rms_db, allow_clipping=allow_clipping)
    if as_json:
        keys = ("track_id", "run_id", "stems", "seconds", "sample_rate")
        typer.echo(json.dumps({k: result[k] for k in keys}))
    else:
        speed = result["seconds"] / max(result["elapsed_s"], 1e-9)
        typer.echo(f"{result['track_id']}\t{result['run_id']}\t{result['seconds']:.1f} s in {result['elapsed_s']:.1f} s ({speed:.0f}x real time)")
        for stem, uri in result["stems"].items():
            typer.echo(f"  {stem}: {uri}")


@train_app.command("separator")
def train_separator_command(
    config: Path = typer.Option(..., "--config", "-c", help="Separator config YAML (configs/svs/*.yaml)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of tracks (default: the config's data, relative to the repo)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Train a singing-voice separator (AE pre-training, then IBM cross-entropy) and publish it."""
    from pipeline.config import REPO_ROOT, load_config
    from pipeline.svs.config import SvsConfig
    from pipeline.svs.train import train_separator

    cfg = load_config(config, SvsConfig)
    source = data or (Path(cfg.data) if cfg.data else None)
    if source is None:
        raise UserError("no training data: pass --data DIR or set 'data' in the config")
    if not source.is_absolute() and data is None:
        source = REPO_ROOT / source
    result = train_separator(cfg, source, progress=not quiet)
    m = result["metrics"]
    if "gnsdr_vocals" in m:
        typer.echo(f"held-out GNSDR vocals {m['gnsdr_vocals']:.2f} dB (oracle IBM {m['oracle_gnsdr_vocals']:.2f} dB, mixture 0)")
    typer.echo(result["uri"])


@evaluate_app.command("separator")
def evaluate_separator_command(
    data: Path = typer.Argument(..., help="Folder of tracks: <track>/{mixture,vocals,accompaniment}.flac (or MUSDB stems)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model NAME, NAME@RUN or folder (default svs-default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.json, tracks.csv, gnsdr.png and report.html (with stems to play)."),
    subset: str = typer.Option("all", "--subset", help="all; test = only the tracks the model held out in training; val = its validation tracks (choose options here)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Voice-probability threshold (default: the model's; 0.2 for the bundled svs-default)."),
    wiener: bool = typer.Option(False, "--wiener", help="Apply the soft Wiener-like post-filter (off in the paper)."),
    input_rms_db: Optional[float] = typer.Option(None, "--input-rms-db", min=-100.0, max=0.0, help="Scale each chunk to this RMS level (dBFS) before the network (default: the model's; -26 is the training level)."),
    full_band: bool = typer.Option(False, "--full-band", help="Separate each mixture file at its own rate and channels (as 'pipeline separate') and score SDR/SIR/SAR/ISR there, museval-style: BSS Eval images in 1-s windows, median. Needs <track>/mixture.*."),
) -> None:
    """NSDR/GNSDR/GSIR/GSAR of a separator beside the oracle IBM and the unprocessed mixture (at the model rate; --full-band: SDR/SIR/SAR/ISR at the tracks' own rate)."""
    from pipeline.svs.evaluate import evaluate_separator

    report = evaluate_separator(data, model, out, subset=subset, threshold=threshold, wiener=wiener or None,
                                input_rms_db=input_rms_db, full_band=full_band)
    if full_band:
        from pipeline.svs.fullband import json_safe, format_table

        typer.echo(json.dumps(json_safe(report), indent=2) if as_json else format_table(report))
        return
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"{report['model']} ({report['run_id']}): {report['n_tracks']} tracks, {report['seconds']:.0f} s")
    for label, block in (("model", report), ("oracle IBM", report["oracle_ibm"]), ("mixture", report["mixture"])):
        typer.echo(
            f"  {label:<10} GNSDR voc {block['gnsdr']['vocals']:6.2f}  acc {block['gnsdr']['accompaniment']:6.2f}"
            f"   GSIR voc {block['gsir']['vocals']:6.2f}   GSAR voc {block['gsar']['vocals']:6.2f}"
        )
