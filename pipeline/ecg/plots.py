"""Pictures a person can check: the stacked scalogram of a record."""

from __future__ import annotations

from pathlib import Path


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
