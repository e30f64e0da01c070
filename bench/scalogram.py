"""Scalogram throughput on real 12-lead records against pywt baselines measured in the same run.

Transform size: 10 windows x 12 leads x 64 scales x 500 samples (cmor1.5-1.0, 0.5-100 Hz).
Baselines: (a) naive pywt.cwt per 1-s window x lead (conv); (b) pywt.cwt on whole leads,
method='fft'. The FFT bound is the batched complex-FFT rate of this machine turned into
records/s for the same transform size done the single-rate way (768 inverse FFTs of the
length the widest wavelet needs); the project groups scales by the FFT length each needs,
so it can pass that bound. Also timed: the stacked image the models use (default config,
8 rows x 32 columns per lead and second), where low-frequency scales run at a lower rate.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ecg_records, emit, median_seconds  # noqa: E402
from pipeline.io.ecg import read_record, to_standard_leads  # noqa: E402
from pipeline.transforms import ecg as ecg_tf  # noqa: E402
from pipeline.config import EcgConfig  # noqa: E402
from pipeline.transforms.scalogram import (  # noqa: E402
    ScalogramSpec,
    _next_5_smooth,
    cwt_magnitude,
    scale_frequencies,
    stacked_scalogram,
)

FS = 500
FREQS = scale_frequencies(0.5, 100, 64)
WAVELET = "cmor1.5-1.0"


def project(x: np.ndarray) -> np.ndarray:
    """(10, 12, 64, 500) from the project's batched FFT CWT."""
    magnitude = cwt_magnitude(x, FS, FREQS, WAVELET)
    return magnitude.reshape(12, 64, 10, 500).transpose(2, 0, 1, 3)


def naive(x: np.ndarray) -> np.ndarray:
    import pywt

    out = np.empty((10, 12, 64, 500), np.float32)
    for w in range(10):
        for lead in range(12):
            coeffs, _ = pywt.cwt(x[lead, w * 500 : (w + 1) * 500], FS / FREQS, WAVELET)
            out[w, lead] = np.abs(coeffs)
    return out


def pywt_fft(x: np.ndarray) -> np.ndarray:
    import pywt

    coeffs, _ = pywt.cwt(x, FS / FREQS, WAVELET, method="fft", axis=-1, precision=16)
    return np.abs(coeffs).astype(np.float32).reshape(64, 12, 10, 500).transpose(2, 1, 0, 3)


IMAGE_SPEC = ScalogramSpec.from_config(EcgConfig().scalogram, FS)


def image(x: np.ndarray) -> np.ndarray:
    """The stacked model input of the default config (multi-rate CWT straight to 32 columns/s)."""
    return stacked_scalogram(x, IMAGE_SPEC)


def _many(args) -> int:
    transform, signals = args
    for x in signals:
        transform(x)
    return len(signals)


def parallel_records_per_s(signals: list[np.ndarray], workers: int, transform=project) -> float:
    """Throughput with one single-threaded worker process per core (how prepare_many runs)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(transform, signals[i::workers]) for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_many, [(t, c[:1]) for t, c in chunks]))  # warm-up: imports and FFT plans
        seconds = median_seconds(lambda: list(pool.map(_many, chunks)), repeats=5, warmup=0)
    return len(signals) / seconds


def fft_bound_records_per_s(workers: int) -> float:
    """Records/s if a record cost only its 12 x 64 inverse FFTs: one single-threaded batched
    ifft timed here, scaled by the number of worker processes (the ideal for that layout)."""
    n_fft = _next_5_smooth(5000 + int(np.ceil(FS / 0.5 * np.sqrt(1.5 * np.log(1e4)))))
    block = (np.random.default_rng(0).standard_normal((768, n_fft)) + 0j).astype(np.complex64)
    seconds = median_seconds(lambda: np.fft.ifft(block, axis=-1), repeats=7)
    return workers / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--records", type=int, default=40, help="records per timing of the project transform")
    parser.add_argument("--naive-records", type=int, default=1, help="records for the slow naive baseline")
    args = parser.parse_args()

    signals = []
    for path in ecg_records(args.records):
        x = to_standard_leads(read_record(path))
        signals.append(ecg_tf.normalise(ecg_tf.remove_baseline(x, FS, [0.2, 0.6]))[:, :5000])

    ours_s = median_seconds(lambda: [project(x) for x in signals], repeats=5) / len(signals)
    workers = os.cpu_count() or 1
    batch_rate = parallel_records_per_s(signals, workers)
    image_rate = parallel_records_per_s(signals, workers, image)
    naive_s = median_seconds(lambda: [naive(x) for x in signals[: args.naive_records]], repeats=5, warmup=0) / args.naive_records
    pywt_s = median_seconds(lambda: [pywt_fft(x) for x in signals[:4]], repeats=5) / 4
    bound = fft_bound_records_per_s(workers)

    ours, reference = project(signals[0]), pywt_fft(signals[0])
    per_scale = [np.corrcoef(ours[:, :, s].ravel(), reference[:, :, s].ravel())[0, 1] for s in range(64)]
    result = {
        "records_per_s": batch_rate,
        "single_process_records_per_s": 1 / ours_s,
        "workers": workers,
        "naive_records_per_s": 1 / naive_s,
        "pywt_fft_records_per_s": 1 / pywt_s,
        "speedup_vs_naive": batch_rate * naive_s,
        "speedup_vs_pywt_fft": batch_rate * pywt_s,
        "fft_bound_records_per_s": bound,
        "fraction_of_fft_bound": batch_rate / bound,
        "image_records_per_s": image_rate,
        "image_speedup_vs_naive": image_rate * naive_s,
        "min_correlation": float(min(per_scale)),
        "target_records_per_s": 40,
        "target_met": bool(batch_rate >= 40 and batch_rate * naive_s >= 150 and min(per_scale) > 0.99),
    }
    rows = [
        (f"project batched FFT CWT, {workers} processes", f"{batch_rate:.1f} records/s"),
        ("project batched FFT CWT, 1 process", f"{1 / ours_s:.1f} records/s"),
        ("(a) naive pywt per window x lead", f"{result['naive_records_per_s']:.2f} records/s"),
        ("(b) pywt whole lead, fft", f"{result['pywt_fft_records_per_s']:.2f} records/s"),
        ("speed-up vs (a) / vs (b)", f"{result['speedup_vs_naive']:.0f}x / {result['speedup_vs_pywt_fft']:.1f}x"),
        (f"single-rate FFT bound (inverse FFTs only, {workers} x 1 thread)", f"{bound:.1f} records/s (project at {100 * result['fraction_of_fft_bound']:.0f}%)"),
        (f"model image 8x32 per lead-second, multi-rate, {workers} processes", f"{image_rate:.1f} records/s ({result['image_speedup_vs_naive']:.0f}x naive)"),
        ("min per-scale correlation vs pywt", f"{result['min_correlation']:.4f}"),
        ("target >= 40 records/s, >= 150x, r > 0.99", "met" if result["target_met"] else "NOT met"),
    ]
    emit("scalogram", result, rows, args.json)


if __name__ == "__main__":
    main()
