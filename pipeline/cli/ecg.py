"""ECG commands: predict, scalogram, explain, evaluate ecg, train ecg."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pipeline.cli import app, evaluate_app, train_app
from pipeline.errors import UserError


@app.command()
def predict(
    records: list[Path] = typer.Argument(..., help="WFDB records: record.hea, record.dat, record.mat or the bare name."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name in the store (NAME or NAME@RUN), a model folder, or 'rule'. Default: ecg-default."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per record."),
    backend: str = typer.Option("auto", help="auto (ONNX Runtime when exported), onnx or torch."),
) -> None:
    """Classify the rhythm of 12-lead ECG records (SB / AFIB / GSVT / SR).

    Records that cannot be used get one ``error:`` line each; the others are still
    classified, and the exit status is 2.
    """
    from pipeline.ecg.predict import predict_paths, resolve_model

    loaded = resolve_model(model, backend=backend)
    results, notes, errors = predict_paths(loaded, records)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    for result in results:
        if as_json:
            typer.echo(json.dumps(result))
        else:
            probs = "  ".join(f"{c}={p:.3f}" for c, p in result["probabilities"].items())
            typer.echo(f"{result['record']}\t{result['label']}\t{probs}")
    if errors:  # the other records were still classified; say what was skipped and exit 2
        for failure in errors:
            typer.echo(f"error: {failure['error']}", err=True)
        raise SystemExit(2)


@app.command()
def scalogram(
    record: Path = typer.Argument(..., help="WFDB record to draw."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    config: Optional[Path] = typer.Option(None, "--config", help="ECG config YAML (default: configs/ecg/ecg-default.yaml)."),
) -> None:
    """Write a labelled picture of a record's stacked 12-lead scalograms."""
    from pipeline.config import CONFIG_DIR, EcgConfig, load_config
    from pipeline.ecg.plots import plot_scalogram
    from pipeline.ecg.prepare import prepare_record
    from pipeline.io.audio import check_writable_file
    from pipeline.io.ecg import read_record

    if out.suffix.lower() != ".png":
        raise UserError(f"output {out} must end in .png")
    check_writable_file(out)
    cfg = load_config(config or CONFIG_DIR / "ecg" / "ecg-default.yaml", EcgConfig)
    prepared = prepare_record(read_record(record), cfg)
    plot_scalogram(prepared, cfg, out)
    typer.echo(str(out))


@app.command()
def explain(
    records: list[Path] = typer.Argument(..., help="WFDB records: record.hea, record.dat, record.mat or the bare name."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name, NAME@RUN, or folder. Default: ecg-default."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for one <record>.png per record: the "
                                       "12-lead ECG with each lead-second shaded by its saliency."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per record (saliency, deletion test)."),
) -> None:
    """Which leads and seconds drove the prediction: a 12 x seconds saliency map (Grad-CAM for
    scalogram CNNs, integrated gradients for the 1-D CNN, weighted over ensemble members) and a
    deletion test (removing the top 10% of lead-seconds against random ones)."""
    from pipeline.ecg.explain import explain_paths
    from pipeline.ecg.predict import resolve_model
    from pipeline.io.audio import check_writable_dir

    loaded = resolve_model(model)
    if out is not None:
        check_writable_dir(out)
    results, notes, errors = explain_paths(loaded, records, out)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    for result in results:
        if as_json:
            typer.echo(json.dumps({k: v for k, v in result.items() if k != "truth"}))
        else:
            leads = [sum(row) for row in result["saliency"]]
            top = sorted(range(len(leads)), key=lambda i: -leads[i])[:3]
            where = ", ".join(f"{result['leads'][i]} {leads[i]:.0%}" for i in top)
            deletion = result["deletion"]
            typer.echo(f"{result['record']}\t{result['label']} {result['probabilities'][result['label']]:.3f}\t"
                       f"top leads {where}\tdeletion drop {deletion['drop_salient']:.3f} (random {deletion['drop_random']:.3f})")
    if errors:
        for failure in errors:
            typer.echo(f"error: {failure['error']}", err=True)
        raise SystemExit(2)


@evaluate_app.command("ecg")
def evaluate_ecg(
    data: list[Path] = typer.Argument(..., help="Folders of WFDB records (labels from #Dx) or manifest CSVs."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name, NAME@RUN, folder, or 'rule'."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for report.json, confusion.png, reliability.png "
                                       "and report.html (metrics, plots, every misclassified record explained)."),
    backend: str = typer.Option("auto", help="auto, onnx or torch."),
    only: Optional[Path] = typer.Option(None, "--only", help="Record list file: evaluate just these records "
                                        "(e.g. configs/ecg/splits/chapman-test.txt, the internal test split)."),
) -> None:
    """Accuracy (bootstrap CI), balanced accuracy, macro-F1, calibration (ECE), flutter recall and the
    rule baseline on the same labelled records."""
    from pipeline.ecg.evaluate import evaluate_folder

    report = evaluate_folder(list(data), model, backend=backend, out=out, only=only)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        base = report["baseline"]
        typer.echo(
            f"{report['model']}: accuracy {report['accuracy']:.3f} (95% CI {report['accuracy_ci95'][0]:.3f}-"
            f"{report['accuracy_ci95'][1]:.3f}), balanced {report['balanced_accuracy']:.3f}, macro-F1 "
            f"{report['macro_f1']:.3f}, ECE {report['calibration']['ece']:.3f}, flutter "
            f"{report['flutter']['correct']}/{report['flutter']['count']} on {report['n_records']} records "
            f"({report['n_skipped']} skipped); rule baseline accuracy {base['accuracy']:.3f}, balanced "
            f"{base['balanced_accuracy']:.3f}, flutter {base['flutter']['correct']}/{base['flutter']['count']}"
        )


@train_app.command("ecg")
def train_ecg_command(
    config: Path = typer.Option(..., "--config", "-c", help="ECG config YAML (configs/ecg/*.yaml)."),
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Folder of WFDB records or manifest CSV; "
                                              "repeat for several (default: the config's data)."),
    cv: bool = typer.Option(True, "--cv/--no-cv", help="Run k-fold cross-validation before the final fit."),
    test: bool = typer.Option(False, "--test", help="Score the finished model once on the config's holdout records "
                              "(the internal test split) and put it in the model card."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Also copy the model folder here."),
) -> None:
    """Train an ECG classifier (or ensemble), report it beside the rule baseline, publish it to the store."""
    from pipeline.config import EcgConfig, load_config
    from pipeline.ecg.train import train_ecg, training_sources

    cfg = load_config(config, EcgConfig)
    result = train_ecg(cfg, training_sources(cfg, data), cv=cv, bundle_dir=bundle, test=test)
    metrics = result["metrics"]
    held_out = metrics.get("validation", {})
    for title, report in (("cv", metrics.get("cross_validation")),
                          ("out-of-fold" if held_out.get("scheme") == "kfold" else "validation", held_out.get("ensemble")),
                          ("internal test", metrics.get("internal_test"))):
        if report:
            typer.echo(f"{title} accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}, "
                       f"macro-F1 {report['macro_f1']:.4f}, ECE {report['calibration']['ece']:.3f}")
    typer.echo(result["uri"])
