"""``report.html`` for ``pipeline evaluate separator --out DIR``: the GNSDR summary, every track's
numbers, the plot, and the model's stems of a few tracks to listen to (numbers alone do not say
what the artefacts sound like)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.report_html import audio, figure, heading, paragraph, row, table, write_page

LISTEN_SECONDS = 10.0  # the stems on the page are cut to this length (the page embeds them)


def write_separator_page(report: dict, rows: list[dict], out: Path, listen: dict, sr: int) -> None:
    """``out/report.html``; ``listen`` maps a track to ``{stem: samples}`` (already cut to
    :data:`LISTEN_SECONDS`), written to ``out/audio/`` and embedded."""
    summary = [[name, part["gnsdr"]["vocals"], part["gsir"]["vocals"], part["gsar"]["vocals"], part["gnsdr"]["accompaniment"]]
               for name, part in (("model", report), ("oracle IBM (ceiling)", report["oracle_ibm"]),
                                  ("mixture (floor)", report["mixture"]))]
    per_track = [[r["track"], r["singer"], round(r["seconds"], 1), r["model_nsdr_vocals"], r["model_sir_vocals"],
                  r["model_sar_vocals"], r["model_nsdr_accompaniment"], r["oracle_nsdr_vocals"]] for r in rows]
    blocks = [
        paragraph(f"{report['n_tracks']} tracks, {report['seconds']:.0f} s; model {report['model']} ({report['run_id']}), "
                  f"threshold {report['threshold']}, Wiener post-filter {'on' if report['wiener'] else 'off'}. "
                  "dB, BSS-Eval; G-values are weighted by track length; NSDR = SDR - SDR of the mixture."),
        table(["", "GNSDR vocals", "GSIR vocals", "GSAR vocals", "GNSDR accompaniment"], summary),
        figure(out / "gnsdr.png", "GNSDR per stem; dots: the model on each track"),
        heading("Listen"),
        *_players(listen, out / "audio", sr),
        heading(f"Per track ({len(rows)})"),
        table(["track", "singer", "seconds", "NSDR vocals", "SIR vocals", "SAR vocals", "NSDR accompaniment",
               "oracle NSDR vocals"], per_track),
    ]
    if report.get("notes"):
        blocks += [heading("Notes"), *[paragraph(note, "note") for note in report["notes"]]]
    write_page(out / "report.html", f"Separator evaluation: {report['model']}", blocks)


def _players(listen: dict, folder: Path, sr: int) -> list[str]:
    from pipeline.io.audio import write_audio

    if not listen:
        return [paragraph("No track to play.", "note")]
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [paragraph(f"The first {LISTEN_SECONDS:.0f} s of the mixture and of the model's two stems.", "note")]
    for track, stems in listen.items():
        players = []
        for stem, samples in stems.items():
            path = folder / f"{track}-{stem}.flac"
            write_audio(path, np.asarray(samples, dtype=np.float32)[None], sr)
            players.append(audio(path, f"{track}: {stem}"))
        blocks.append(row(*players))
    return blocks
