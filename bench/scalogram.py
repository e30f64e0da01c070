"""Scalogram throughput on real 12-lead records, every rate compared at equal process counts.

Each method runs in a pool of P single-threaded worker processes (how ``prepare_many`` runs),
for P = 1 and P = one per core, and every ratio divides two rates measured at the same P in
this run. Methods: the project's full-resolution CWT (10 windows x 12 leads x 64 scales x 500
samples, cmor1.5-1.0, 0.5-100 Hz); the stacked image of every shipped config whose model (or
an ensemble member) reads the scalogram, one row per distinct image size; baselines (a) naive
``pywt.cwt`` per 1-s window x lead and (b) ``pywt.cwt`` on whole leads, ``method='fft'``; and
the single-rate FFT bound: a record's 768 inverse FFTs (12 leads x 64 scales) at the length
the widest wavelet needs, nothing else. The image rows are compared against that same bound.
With CUDA, the torch path (``stacked_scalograms``, batches of records) is timed beside a CUDA
single-rate bound; without, its row says it was skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ecg_records, emit, median_seconds  # noqa: E402
from pipeline.config import REPO_ROOT, EcgConfig, load_config  # noqa: E402
from pipeline.io.ecg import read_record, to_standard_leads  # noqa: E402
from pipeline.transforms import ecg as ecg_tf  # noqa: E402
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
BOUND_N_FFT = _next_5_smooth(5000 + int(np.ceil(FS / 0.5 * np.sqrt(1.5 * np.log(1e4)))))


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


@lru_cache(maxsize=1)
def _bound_block() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((768, BOUND_N_FFT)) + 0j).astype(np.complex64)


def single_rate_ffts(x: np.ndarray) -> np.ndarray:
    """One record's inverse FFTs done the single-rate way (``x`` only sets the count)."""
    return np.fft.ifft(_bound_block(), axis=-1)


class Image:
    """The stacked model input of one scalogram setting (picklable for the worker pool)."""

    def __init__(self, spec: ScalogramSpec):
        self.spec = spec

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return stacked_scalogram(x, self.spec)


def shipped_images() -> dict[tuple[int, int, int], list[str]]:
    """(n_scales, rows per lead, columns per window) -> the shipped configs whose model reads that image."""
    from pipeline.ecg.ensemble import member_config
    from pipeline.ecg.train import input_kind_of

    images: dict[tuple[int, int, int], list[str]] = {}
    for path in sorted((REPO_ROOT / "configs" / "ecg").glob("*.yaml")):
        cfg = load_config(path, EcgConfig)
        members = [member_config(cfg, view, 0) for view in range(len(cfg.model.members))] or [cfg]
        if any(input_kind_of(member) == "scalogram" for member in members):
            s = cfg.scalogram
            images.setdefault((s.n_scales, s.scale_rows_per_lead, s.time_cols_per_window), []).append(cfg.name)
    return images


def _many(args) -> int:
    transform, signals = args
    for x in signals:
        transform(x)
    return len(signals)


def pool_records_per_s(workloads: dict[str, tuple], workers: int, repeats: int = 5) -> dict[str, float]:
    """Records/s of each ``name: (transform, signals)`` in one pool of ``workers`` single-threaded
    processes, each transforming its share; the methods take turns in every round, so a load
    change beside the benchmark hits all of them alike."""
    import multiprocessing
    import statistics
    import time
    from concurrent.futures import ProcessPoolExecutor

    chunks = {name: [(t, signals[i::workers]) for i in range(workers)] for name, (t, signals) in workloads.items()}
    times: dict[str, list[float]] = {name: [] for name in workloads}
    from pipeline.ecg.prepare import one_blas_thread

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=one_blas_thread) as pool:
        for parts in chunks.values():
            list(pool.map(_many, [(t, c[:1]) for t, c in parts]))  # warm-up: imports and FFT plans
        for _ in range(repeats):
            for name, parts in chunks.items():
                start = time.perf_counter()
                list(pool.map(_many, parts))
                times[name].append(time.perf_counter() - start)
    return {name: len(workloads[name][1]) / statistics.median(times[name]) for name in workloads}


def cuda_rows(signals: list[np.ndarray], images: dict, batch: int) -> dict:
    """The torch path on CUDA beside a CUDA single-rate bound, or why it was skipped."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device (torch.cuda.is_available() is False)"}
    from pipeline.transforms.scalogram_torch import stacked_scalograms

    many = (signals * (batch // len(signals) + 1))[:batch]
    block = torch.from_numpy(_bound_block()).cuda()

    def bound() -> None:
        for _ in range(batch):
            torch.fft.ifft(block, dim=-1)
        torch.cuda.synchronize()

    rows = {"device": torch.cuda.get_device_name(), "records_per_batch": batch,
            "fft_bound_records_per_s": batch / median_seconds(bound, repeats=5)}
    for key in images:
        spec = ScalogramSpec(fs=FS, n_scales=key[0], rows_per_lead=key[1], cols_per_window=key[2])
        rate = batch / median_seconds(lambda: stacked_scalograms(many, spec, "cuda"), repeats=5)
        rows["x".join(map(str, key))] = {"records_per_s": rate, "vs_fft_bound": rate / rows["fft_bound_records_per_s"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--records", type=int, default=40, help="records per timing of the project transforms")
    parser.add_argument("--naive-records", type=int, default=1, help="records per process for the slow naive baseline")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each rate is their median")
    parser.add_argument("--cuda-batch", type=int, default=512, help="records per timing of the CUDA path")
    args = parser.parse_args()

    signals = []
    for path in ecg_records(args.records):
        x = to_standard_leads(read_record(path))
        signals.append(ecg_tf.normalise(ecg_tf.remove_baseline(x, FS, [0.2, 0.6]))[:, :5000])
    images = shipped_images()
    cores = os.cpu_count() or 1
    counts = sorted({1, cores})
    rates: dict[int, dict[str, float]] = {}
    for p in counts:
        workloads = {
            "fft_bound": (single_rate_ffts, signals[: 8 * p]),
            "project": (project, signals),
            "pywt_fft": (pywt_fft, signals[: 4 * p]),
            "naive": (naive, signals[: args.naive_records * p]),
        }
        for key in images:
            spec = ScalogramSpec(fs=FS, n_scales=key[0], rows_per_lead=key[1], cols_per_window=key[2])
            workloads["image " + "x".join(map(str, key))] = (Image(spec), signals)
        rates[p] = pool_records_per_s(workloads, p, args.repeats)

    ours, reference = project(signals[0]), pywt_fft(signals[0])
    per_scale = [np.corrcoef(ours[:, :, s].ravel(), reference[:, :, s].ravel())[0, 1] for s in range(64)]
    top = rates[cores]
    image_vs_bound = {name: {p: rates[p][name] / rates[p]["fft_bound"] for p in counts} for name in top if name.startswith("image")}
    result = {
        "process_counts": counts,
        "records_per_s": {str(p): r for p, r in rates.items()},
        "vs_naive": {str(p): rates[p]["project"] / rates[p]["naive"] for p in counts},
        "vs_pywt_fft": {str(p): rates[p]["project"] / rates[p]["pywt_fft"] for p in counts},
        "fraction_of_fft_bound": {str(p): rates[p]["project"] / rates[p]["fft_bound"] for p in counts},
        "images": {"x".join(map(str, k)): {"configs": v, **{f"vs_fft_bound_{p}p": image_vs_bound["image " + "x".join(map(str, k))][p]
                                                           for p in counts}} for k, v in images.items()},
        "min_correlation": float(min(per_scale)),
        "cuda": cuda_rows(signals, images, args.cuda_batch),
        "target_met": bool(top["project"] >= 40 and top["project"] / top["naive"] >= 150 and min(per_scale) > 0.99),
        "image_target_met": all(v[cores] >= 3 for v in image_vs_bound.values()),
    }
    rows = [(f"{'method':<44}", "  ".join(f"{str(p) + ' proc':>18}" for p in counts))]
    for name in top:
        cells = [f"{rates[p][name]:8.2f} rec/s" for p in counts]
        if name.startswith("image"):
            cells = [f"{rates[p][name]:7.1f} ({rates[p][name] / rates[p]['fft_bound']:.2f}xB)" for p in counts]
            name += " (" + ", ".join(images[tuple(int(v) for v in name.split()[1].split("x"))]) + ")"
        rows.append((name, "  ".join(f"{c:>18}" for c in cells)))
    for ratio in ("vs_naive", "vs_pywt_fft", "fraction_of_fft_bound"):
        rows.append((f"project full resolution {ratio}", "  ".join(f"{result[ratio][str(p)]:17.2f}x" for p in counts)))
    rows.append(("min per-scale correlation vs pywt", f"{result['min_correlation']:.4f}"))
    cuda = result["cuda"]
    rows.append(("CUDA (torch, batched records)", cuda.get("skipped") or ", ".join(
        f"{k} {v['records_per_s']:.0f} rec/s ({v['vs_fft_bound']:.2f}x CUDA bound)" for k, v in cuda.items() if isinstance(v, dict))))
    rows.append((f"full res >= 40 rec/s, >= 150x naive at {cores} proc, r > 0.99", "met" if result["target_met"] else "NOT met"))
    rows.append((f"every shipped image >= 3x the FFT bound at {cores} proc", "met" if result["image_target_met"] else "NOT met"))
    emit("scalogram", result, rows, args.json)


if __name__ == "__main__":
    main()
