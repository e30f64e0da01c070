"""``fullband.png`` and ``report.html`` for ``pipeline evaluate separator --full-band --out DIR``:
the model between its floor (the mixture) and its two ceilings (the perfect mask at full band and
through the 16 kHz path), per stem, so the band limit's share of the gap is visible at a glance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report_html import figure, heading, paragraph, table, write_page

SYSTEMS = ("mixture", "model", "oracle_ibm_model_rate", "oracle_ibm")
LABELS = {"mixture": "mixture (floor)", "model": "model", "oracle_ibm_model_rate": "perfect mask, 16 kHz path",
          "oracle_ibm": "perfect mask, full band"}
COLOURS = {"mixture": "0.6", "model": "tab:blue", "oracle_ibm_model_rate": "tab:olive", "oracle_ibm": "tab:green"}
STEMS = ("vocals", "accompaniment")
METRICS = ("sdr", "sir", "sar", "isr")


def _block(report: dict, system: str) -> dict:
    return report if system == "model" else report[system]


def _value(x) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def plot(report: dict, path: Path) -> None:
    """Median SDR per stem and system (bars), each track's SDR (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(report["per_track"]))
    for ax, stem in zip(axes, STEMS):
        medians = [_value(_block(report, s)["sdr"][stem]) for s in SYSTEMS]
        ax.bar(range(len(SYSTEMS)), [m if m is not None else 0.0 for m in medians], color=[COLOURS[s] for s in SYSTEMS])
        for i, system in enumerate(SYSTEMS):
            per_track = [_value(r[f"{system}_sdr_{stem}"]) for r in report["per_track"]]
            per_track = [np.nan if v is None else v for v in per_track]  # a silent window: no dot
            ax.scatter(i + jitter, per_track, s=10, color="k", alpha=0.6, zorder=3)
        ax.set_xticks(range(len(SYSTEMS)), [LABELS[s].replace(", ", ",\n") for s in SYSTEMS], fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{stem}: SDR (dB), median of {report['n_tracks']} track(s)")
    fig.suptitle(f"{report['model']} ({report['run_id']}), full band")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_fullband_page(report: dict, out: Path) -> None:
    """``out/fullband.png`` and ``out/report.html`` (summary, plot, every track's SDRs)."""
    plot(report, out / "fullband.png")
    summary = [[LABELS[s]] + [_value(_block(report, s)[m][stem]) for stem in STEMS for m in METRICS] for s in SYSTEMS]
    header = [""] + [f"{m.upper()} {stem[:3]}" for stem in STEMS for m in METRICS]
    per_track = [[r["track"], r["seconds"], r["sample_rate"], r["channels"]]
                 + [_value(r[f"{s}_sdr_{stem}"]) for stem in STEMS for s in ("model", "oracle_ibm", "mixture")]
                 for r in report["per_track"]]
    blocks = [
        paragraph(f"{report['n_tracks']} track(s), {report['seconds']:.1f} s; model {report['model']} "
                  f"({report['run_id']}) at {report['model_sample_rate'] / 1000:g} kHz, threshold {report['threshold']}. "
                  "BSS Eval v3 images (mir_eval) in 1-s windows, median over windows, then over tracks; dB."),
        table(header, summary),
        figure(out / "fullband.png", "bars: median over tracks; dots: each track"),
        heading(f"Per track ({report['n_tracks']})"),
        table(["track", "seconds", "rate", "channels"]
              + [f"SDR {stem[:3]} {LABELS[s].split(',')[0]}" for stem in STEMS for s in ("model", "oracle_ibm", "mixture")],
              per_track),
    ]
    if report.get("notes"):
        blocks += [heading("Notes"), *[paragraph(note, "note") for note in report["notes"]]]
    write_page(out / "report.html", f"Full-band separator evaluation: {report['model']}", blocks)
