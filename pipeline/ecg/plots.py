"""Pictures a person can check: the stacked scalogram of a record, and its explanation on ECG paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.config import EcgConfig
from pipeline.ecg.prepare import PreparedRecord
from pipeline.evaluation import save_figure
from pipeline.io.ecg import STANDARD_LEADS
from pipeline.transforms.scalogram import scale_frequencies


def plot_scalogram(record: PreparedRecord, cfg: EcgConfig, out: Path) -> None:
    """Stacked 12-lead scalogram with lead labels, window boundaries and the frequency range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cfg.scalogram.scale_rows_per_lead
    cols = cfg.scalogram.time_cols_per_window
    n_windows = record.image.shape[1] // cols
    fig, ax = plt.subplots(figsize=(min(4 + 1.2 * n_windows, 20), 8), dpi=110)
    ax.imshow(record.image, aspect="auto", cmap="magma", interpolation="nearest",
              extent=(0, n_windows * cfg.scalogram.window_s, record.image.shape[0], 0))
    ax.set_yticks([rows * (i + 0.5) for i in range(12)], STANDARD_LEADS)
    for i in range(1, 12):
        ax.axhline(rows * i, color="white", lw=0.4, alpha=0.6)
    for w in range(1, n_windows):
        ax.axvline(w * cfg.scalogram.window_s, color="cyan", lw=0.6, alpha=0.7)
    freqs = scale_frequencies(cfg.scalogram.f_min_hz, cfg.scalogram.f_max_hz, cfg.scalogram.n_scales)
    ax.set_xlabel(f"time (s); {n_windows} windows of {cfg.scalogram.window_s:g} s, one image each")
    ax.set_ylabel(f"lead (each band: {freqs[0]:.0f} Hz at top to {freqs[-1]:.1f} Hz at bottom)")
    label = record.label.describe()
    hr = record.features[0]
    ax.set_title(f"{record.name}: label {label}, heart rate {hr:.0f} bpm - log |CWT| ({cfg.scalogram.wavelet})")
    save_figure(fig, out)


def plot_explanation(signal_mv: np.ndarray, fs: float, saliency: np.ndarray | None, title: str, out: Path,
                     window_s: float = 1.0) -> None:
    """The 12-lead ECG on paper-style grid (0.2 s x 0.5 mV big squares, 25 mm/s and 10 mm/mV
    proportions), one full-length row per lead, each lead-second shaded by its share of the
    saliency (darkest = the largest cell) and each lead's total share printed at the right.

    Args:
        signal_mv: (12, samples) filtered signal in mV.
        saliency: (12, n_windows) map summing to 1, or None for an unshaded trace.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    spacing = 2.5  # mV between lead baselines
    n_leads, n_samples = signal_mv.shape
    seconds = n_samples / fs
    fig, ax = plt.subplots(figsize=(1.0 + 0.95 * seconds, 1.4 + 0.95 * n_leads), dpi=100)
    top = max(saliency.max(), 1e-12) if saliency is not None else 1.0
    t = np.arange(n_samples) / fs
    for i, lead in enumerate(STANDARD_LEADS[:n_leads]):
        base = -i * spacing
        if saliency is not None:
            for w, share in enumerate(saliency[i]):
                ax.add_patch(Rectangle((w * window_s, base - spacing / 2), window_s, spacing, color="tab:blue",
                                       alpha=0.55 * share / top, linewidth=0, zorder=1))
            ax.text(seconds + 0.05, base, f"{100 * saliency[i].sum():.0f}%", va="center", fontsize=9)
        ax.plot(t, base + signal_mv[i], color="black", linewidth=0.6, zorder=3)
        ax.text(0.03, base + 0.6, lead, fontsize=10, fontweight="bold", zorder=4)
    ax.set_xlim(0, seconds)
    ax.set_ylim(-(n_leads - 0.5) * spacing, spacing / 2)
    ax.set_aspect(0.4)  # 1 s across = 2.5 mV up: the paper's 25 mm/s, 10 mm/mV
    ax.set_xticks(np.arange(0, seconds + 1e-9, 0.2), minor=False)
    ax.set_xticklabels([f"{x:g}" if abs(x - round(x)) < 1e-6 else "" for x in np.arange(0, seconds + 1e-9, 0.2)])
    ax.set_xticks(np.arange(0, seconds + 1e-9, 0.04), minor=True)
    ax.set_yticks(np.arange(ax.get_ylim()[0], ax.get_ylim()[1], 0.5))
    ax.set_yticks(np.arange(ax.get_ylim()[0], ax.get_ylim()[1], 0.1), minor=True)
    ax.tick_params(which="both", length=0, labelleft=False)
    ax.grid(which="major", color="#e8a0a0", linewidth=0.6, zorder=0)
    ax.grid(which="minor", color="#f8dada", linewidth=0.3, zorder=0)
    ax.set_axisbelow(True)
    ax.set_xlabel("time (s); grid 0.04 s x 0.1 mV, big squares 0.2 s x 0.5 mV")
    ax.set_title(title, fontsize=10, loc="left")
    save_palette_png(fig, out)


def save_palette_png(fig, path: Path, colors: int = 64) -> None:
    """PNG with a small palette: the fine paper grid compresses about 4x better (about 100 KB
    instead of 400 KB), which keeps report.html with its inline pictures small."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.tight_layout()
    try:
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    with atomic_path(path) as tmp:
        Image.open(buffer).convert("RGB").quantize(colors).save(tmp, format="PNG", optimize=True)
