"""``report.html`` for ``pipeline evaluate ecg --out DIR``: the metrics beside the rule baseline,
the plots, and every misclassified record with the lead-seconds that drove the wrong answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.ecg.bundle import LoadedModel
from pipeline.report_html import figure, heading, paragraph, row, table, write_page

MAX_PICTURES = 30  # explanation pictures on one page (each is ~150 KB inline)


def write_ecg_page(report: dict, model: LoadedModel, paths: list[Path], out: Path) -> None:
    """``out/report.html`` from the report dict and the plots ``evaluate_folder`` wrote to ``out``."""
    base = report["baseline"]
    blocks = [
        paragraph(f"{report['n_records']} labelled records ({report['n_skipped']} skipped); model {report['model']}; "
                  "the rule baseline (heart rate + RR irregularity, no learning) is scored on the same records."),
        heading("Metrics"),
        table(["metric", report["model"], "rule baseline"], _metric_rows(report, base)),
        row(figure(out / "confusion.png", "confusion matrix (rows: true class)"),
            figure(out / "reliability.png", "calibration: accuracy against confidence")),
        heading("Per class"),
        table(["class", "records", "sensitivity", "rule", "specificity", "rule", "F1", "rule"],
              [[name, stats["support"], stats["sensitivity"], base["per_class"][name]["sensitivity"],
                stats["specificity"], base["per_class"][name]["specificity"], stats["f1"], base["per_class"][name]["f1"]]
               for name, stats in report["per_class"].items()]),
        heading(f"Misclassified records ({len(report['errors'])})"),
        *_error_blocks(report["errors"], model, paths, out),
    ]
    if report["skipped"]:
        blocks += [heading(f"Skipped records ({report['n_skipped']})"),
                   table(["record", "reason"], [[s["record"], s["reason"]] for s in report["skipped"]])]
    write_page(out / "report.html", f"ECG evaluation: {report['model']}", blocks)


def _metric_rows(report: dict, base: dict) -> list[list]:
    def flutter(part: dict) -> str:
        return f"{part['correct']}/{part['count']}" if part["count"] else "none"

    ci = report["accuracy_ci95"]
    return [
        ["accuracy", report["accuracy"], base["accuracy"]],
        ["accuracy 95% CI (bootstrap)", f"{ci[0]:.3f}-{ci[1]:.3f}", f"{base['accuracy_ci95'][0]:.3f}-{base['accuracy_ci95'][1]:.3f}"],
        ["balanced accuracy", report["balanced_accuracy"], base["balanced_accuracy"]],
        ["macro-F1", report["macro_f1"], base["macro_f1"]],
        ["expected calibration error", report["calibration"]["ece"], None],
        ["negative log-likelihood", report["calibration"]["nll"], None],
        ["atrial flutter recognised (as AFIB)", flutter(report["flutter"]), flutter(base["flutter"])],
    ]


def _error_blocks(errors: list[dict], model: LoadedModel, paths: list[Path], out: Path) -> list[str]:
    """The table of every error, then explanation pictures for the first :data:`MAX_PICTURES`."""
    from pipeline.ecg.explain import explain_paths

    if not errors:
        return [paragraph("None.")]
    blocks = [table(["record", "true", "predicted", "probability"],
                    [[e["record"], e["true"], e["predicted"], e["probability"]] for e in errors])]
    if model.runner is None and not model.members:
        return blocks + [paragraph("The rule baseline has no saliency maps; no pictures.", "note")]
    by_name = {p.name: p for p in paths}
    shown = errors[:MAX_PICTURES]
    if len(errors) > len(shown):
        blocks.append(paragraph(f"Pictures for the first {len(shown)} of {len(errors)} errors only.", "note"))
    folder = out / "explanations"
    folder.mkdir(exist_ok=True)
    results, _, _ = explain_paths(model, [by_name[e["record"]] for e in shown], folder)
    if results:
        salient = np.mean([r["deletion"]["drop_salient"] for r in results])
        random = np.mean([r["deletion"]["drop_random"] for r in results])
        blocks.append(paragraph(
            "Each picture shades the lead-seconds that drove the (wrong) prediction. Deletion test, mean over these "
            f"records: removing the most salient 10% of lead-seconds lowers the predicted class's probability by "
            f"{salient:.3f}, removing random 10% by {random:.3f}.", "note"))
    for error in shown:
        blocks.append(figure(folder / f"{error['record']}.png", f"{error['record']}: {error['true']} read as {error['predicted']}"))
    return blocks
