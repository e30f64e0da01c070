"""Self-contained HTML report pages: one file with inline CSS, images and audio (base64 data
URIs), no scripts and no network, so it opens anywhere, mails as one attachment and prints."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pipeline.atomic import atomic_path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f2f2f2; }
img { max-width: 100%; } figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 1em; } .note { color: #555; font-size: 0.9em; }
"""

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".flac": "audio/flac", ".wav": "audio/wav",
        ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}


def data_uri(path: Path) -> str:
    """The file as a ``data:`` URI (the page must not depend on files beside it)."""
    return f"data:{MIME[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def esc(value) -> str:
    return html.escape(str(value))


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>"


def cell(value) -> str:
    """Numbers right-aligned (floats to 3 decimals), None as an en dash, anything else escaped."""
    if value is None:
        return "<td>&ndash;</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{esc(value)}</td>"


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(path: Path, caption: str = "", width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    text = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(path)}" alt="{esc(caption or path.stem)}"{size}>{text}</figure>'


def audio(path: Path, caption: str) -> str:
    return f'<figure><figcaption>{esc(caption)}</figcaption><audio controls src="{data_uri(path)}"></audio></figure>'


def row(*parts: str) -> str:
    """Blocks side by side (wrapping on narrow screens)."""
    return '<div class="row">' + "".join(parts) + "</div>"


def write_page(path: Path, title: str, blocks: list[str]) -> None:
    """Write the page atomically (a reader never sees half of it)."""
    text = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{heading(title, 1)}" + "\n".join(blocks) + "</body></html>\n")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
