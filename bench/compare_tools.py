"""The project against the tools a user would pick instead, each installed from PyPI and timed in this run.

Every contender runs in one process on one thread (``OMP/MKL/OPENBLAS_NUM_THREADS=1``,
``SSQ_PARALLEL=0``, ``torch.set_num_threads(1)``, ONNX Runtime with one intra-op thread,
fCWT with ``nthreads=1``); the methods of a part take turns in every round, so a load change
beside the benchmark hits all of them alike. A contender that is not installed is skipped
with a line that says so (``pip install -e '.[bench]'`` installs them all).

1. CWT of real 12-lead 10-s 500 Hz records (shared Chapman set, else the bundled sample),
   cmor1.5-1.0, 64 scales 0.5-100 Hz: the project's ``cwt_magnitude`` against ``pywt.cwt``
   (``method='fft'``, the baseline of every ratio), fCWT (``Morlet(0.866)`` = cmor1.5-1.0,
   log scales over the same band), ``ssqueezepy.cwt`` (Morlet ``mu = 2 pi sqrt(B/2)``,
   scales ``sqrt(B/2) fs / f``, zero padding) and ``ptwt.cwt``. Then the model image that
   ``configs/ecg/ecg-default.yaml`` reads (32 rows per lead x 64 columns per 1-s window, log,
   standardised): the project computes it directly (``stacked_scalogram``); each contender
   computes its full-rate 64 scales and then box-averages them to the same image size
   (:func:`image_from_full`; cheaper than the project's antialiased resize, so the ratio does
   not handicap the contenders). Each output's lowest per-scale correlation with pywt's (Pearson
   over leads x time for one scale row, which ignores per-scale gain: fCWT and ssqueezepy
   normalise their wavelets differently) shows that all of them compute the same thing.
2. QRS detection on MIT-BIH record 100 (30 min, 360 Hz, MLII + V5) against its ``.atr`` beat
   annotations (beat symbols only): the project's ``detect_qrs`` (after its baseline removal;
   both leads, and MLII alone) vs ``wfdb.processing.xqrs_detect`` and
   ``neurokit2.ecg_clean`` + ``ecg_peaks`` on MLII. Sensitivity and PPV with 150 ms and 75 ms
   tolerance (one-to-one matching, :func:`match_beats`), seconds per 30 min of signal.
3. Separation of a 3-min 44.1 kHz stereo file (the bundled MUSDB18 excerpt tiled, as
   ``bench/separate.py``), each separator in a fresh process: the project's ``separate_file``
   (``svs-default`` through ONNX Runtime; decode, resampling, network, FLAC stems and the store
   included) vs Open-Unmix (``OpenUnmix`` with umxhq's settings, random weights: vocals +
   residual, i.e. two stems like the project, and the four umxhq targets) and HTDemucs
   (default architecture, random weights, ``apply_model`` with its default 25% overlap, no
   shifts) on the decoded waveform. Speed and memory only: random weights separate nothing.
   Seconds per minute of audio, peak RSS of the process and RSS before the separation.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one thread for every library, set before any of them loads (not when imported by a test)
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = "1"
    os.environ["SSQ_PARALLEL"] = "0"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, ecg_records, emit, median_seconds  # noqa: E402

FS = 500
N_SCALES, F_MIN, F_MAX = 64, 0.5, 100.0
WAVELET = "cmor1.5-1.0"
BANDWIDTH, CENTRE = 1.5, 1.0
IMAGE_ROWS, IMAGE_COLS = 32, 64  # ecg-default: rows per lead, columns per 1-s window
MITDB = REPO.parent / "shared" / "data" / "ecg" / "mitdb" / "100"
#: MIT-BIH beat annotation symbols (wfdb's beat codes); rhythm changes '+', noise '~' etc. are not beats.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
PACKAGES = {"pywt": "PyWavelets", "fcwt": "fcwt", "ssqueezepy": "ssqueezepy", "ptwt": "ptwt", "wfdb": "wfdb",
            "neurokit2": "neurokit2", "openunmix": "openunmix", "demucs": "demucs", "torch": "torch",
            "onnxruntime": "onnxruntime", "numpy": "numpy", "scipy": "scipy"}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def version(module: str) -> str | None:
    try:
        return metadata.version(PACKAGES.get(module, module))
    except metadata.PackageNotFoundError:
        return None


def skip_line(module: str) -> str:
    return f"skipped: {PACKAGES.get(module, module)} not installed (pip install -e '.[bench]')"


def one_torch_thread() -> None:
    if installed("torch"):
        import torch

        torch.set_num_threads(1)


# ---------------------------------------------------------------- 1. CWT


def frequencies() -> np.ndarray:
    from pipeline.transforms.scalogram import scale_frequencies

    return scale_frequencies(F_MIN, F_MAX, N_SCALES)  # highest first, as the project's rows


def cwt_contenders() -> tuple[dict[str, object], dict[str, str]]:
    """name -> fn(x (12, 5000)) -> (12, 64, 5000) float32 magnitudes, rows highest frequency first.

    Set-up a user does once (fCWT's plan objects, the scales) happens here, outside the timing."""
    from pipeline.transforms.scalogram import cwt_magnitude

    freqs = frequencies()
    pywt_scales = CENTRE * FS / freqs
    methods: dict[str, object] = {"project": lambda x: cwt_magnitude(x, FS, freqs, WAVELET)}
    skipped: dict[str, str] = {}
    if installed("pywt"):
        import pywt

        def pywt_fft(x):
            coeffs, _ = pywt.cwt(x, pywt_scales, WAVELET, method="fft", axis=-1)
            return np.abs(coeffs).astype(np.float32).transpose(1, 0, 2)

        methods["pywt_fft"] = pywt_fft
    else:
        skipped["pywt_fft"] = skip_line("pywt")
    if installed("fcwt"):
        import fcwt

        morlet = fcwt.Morlet(float(np.sqrt(BANDWIDTH / 2)))  # fCWT's sigma: cmor1.5-1.0 is Morlet(0.866)
        scales = fcwt.Scales(morlet, fcwt.FCWT_LOGSCALES, FS, F_MIN, F_MAX, N_SCALES)
        plan = fcwt.FCWT(morlet, 1, False, True)
        got = np.zeros(N_SCALES, dtype=np.float32)
        scales.getFrequencies(got)
        flip = got[0] < got[-1]  # fCWT may list its scales lowest frequency first
        buffer = np.zeros((N_SCALES, 5000), dtype=np.complex64)

        def fcwt_cwt(x, _keep=(morlet, scales, plan)):  # SWIG objects hold raw pointers to each other: keep all alive
            out = np.empty((x.shape[0], N_SCALES, x.shape[1]), np.float32)
            for lead in range(x.shape[0]):
                plan.cwt(np.ascontiguousarray(x[lead], dtype=np.float32), scales, buffer)
                np.abs(buffer[::-1] if flip else buffer, out=out[lead])
            return out

        methods["fcwt"] = fcwt_cwt
    else:
        skipped["fcwt"] = skip_line("fcwt")
    if installed("ssqueezepy"):
        import ssqueezepy

        ssq_scales = (np.sqrt(BANDWIDTH / 2) * pywt_scales).astype(np.float32)
        ssq_wavelet = ("morlet", {"mu": 2 * np.pi * CENTRE * np.sqrt(BANDWIDTH / 2)})

        def ssq_cwt(x):
            w = ssqueezepy.cwt(x.astype(np.float32), ssq_wavelet, scales=ssq_scales, fs=FS, padtype="zero",
                               l1_norm=False, astensor=False)[0]
            return np.abs(w).astype(np.float32)

        methods["ssqueezepy"] = ssq_cwt
    else:
        skipped["ssqueezepy"] = skip_line("ssqueezepy")
    if installed("ptwt"):
        import ptwt
        import torch

        def ptwt_cwt(x):
            coeffs, _ = ptwt.cwt(torch.from_numpy(x.astype(np.float32)), pywt_scales, WAVELET, sampling_period=1 / FS)
            return coeffs.abs().numpy().transpose(1, 0, 2)

        methods["ptwt"] = ptwt_cwt
    else:
        skipped["ptwt"] = skip_line("ptwt")
    return methods, skipped


def image_from_full(magnitude: np.ndarray) -> np.ndarray:
    """(12, 64, 5000) full-rate magnitudes -> ecg-default's (384, 640) image as a user would
    reduce them: box averages of 7-8 samples per column and of scale pairs per row (area
    interpolation, ~2.4x cheaper here than the project's antialiased resize), log, standardised."""
    leads, scales, n = magnitude.shape
    n_cols = n // FS * IMAGE_COLS
    edges = np.round(np.arange(n_cols) * n / n_cols).astype(np.int64)
    cols = np.add.reduceat(magnitude, edges, axis=-1) / np.diff(np.append(edges, n)).astype(np.float32)
    rows = cols.reshape(leads, IMAGE_ROWS, scales // IMAGE_ROWS, n_cols).mean(axis=2)
    image = np.log(rows.reshape(leads * IMAGE_ROWS, -1) + 1e-3)
    return ((image - image.mean()) / (image.std() + 1e-6)).astype(np.float32)


def min_row_correlation(a: np.ndarray, b: np.ndarray, rows: int) -> float:
    """Lowest Pearson correlation over the ``rows`` scale rows (each row: every lead and column)."""
    a = a.reshape(-1, rows, a.shape[-1]).transpose(1, 0, 2).reshape(rows, -1)
    b = b.reshape(-1, rows, b.shape[-1]).transpose(1, 0, 2).reshape(rows, -1)
    return float(min(np.corrcoef(a[r], b[r])[0, 1] for r in range(rows)))


def cwt_part(n_records: int, repeats: int) -> tuple[dict, list[tuple[str, str]]]:
    from pipeline.io.ecg import read_record, to_standard_leads
    from pipeline.transforms import ecg as ecg_tf
    from pipeline.transforms.scalogram import ScalogramSpec, stacked_scalogram

    signals = []
    for path in ecg_records(n_records):
        x = to_standard_leads(read_record(path))
        signals.append(ecg_tf.normalise(ecg_tf.remove_baseline(x, FS, [0.2, 0.6]))[:, :5000].astype(np.float64))
    full, skipped = cwt_contenders()
    spec = ScalogramSpec(fs=FS, n_scales=N_SCALES, rows_per_lead=IMAGE_ROWS, cols_per_window=IMAGE_COLS)
    methods = {f"full {name}": fn for name, fn in full.items()}
    methods["image project"] = lambda x: stacked_scalogram(x, spec)
    for name, fn in full.items():
        if name != "project":
            methods[f"image {name}"] = lambda x, fn=fn: image_from_full(fn(x))
    # correctness first (and the warm-up: plans, caches, imports)
    outputs = {}
    for name, fn in list(methods.items()):
        try:
            outputs[name] = fn(signals[0])
        except Exception as exc:  # a contender that breaks is reported, not fatal
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"[:200]
            del methods[name]
    correlation = {}
    if "full pywt_fft" in outputs:
        ref_full = outputs["full pywt_fft"]
        ref_image = image_from_full(ref_full)
        for name, out in outputs.items():
            if name.startswith("full"):
                correlation[name] = min_row_correlation(out.reshape(-1, out.shape[-1]), ref_full.reshape(-1, ref_full.shape[-1]), N_SCALES)
            else:
                correlation[name] = min_row_correlation(out, ref_image, IMAGE_ROWS)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            for x in signals:
                fn(x)
            times[name].append((time.perf_counter() - start) / len(signals))
    rates = {name: 1 / statistics.median(t) for name, t in times.items()}
    result = {"records": len(signals), "rounds": repeats, "records_per_s": rates, "min_scale_correlation_vs_pywt": correlation,
              "skipped": skipped}
    rows = [("CWT (records/s, 1 thread; ratio to pywt fft; lowest per-scale r vs pywt)", "")]
    for kind in ("full", "image"):
        base = rates.get(f"{kind} pywt_fft")
        result[f"{kind}_vs_pywt_fft"] = {n: rates[n] / base for n in rates if n.startswith(kind)} if base else {}
        for name in [n for n in rates if n.startswith(kind)]:
            ratio = f"{rates[name] / base:6.2f}x pywt" if base else "  (no pywt)"
            r = f"r >= {correlation[name]:.4f}" if name in correlation else ""
            rows.append((f"  {name}", f"{rates[name]:8.2f} rec/s  {ratio}  {r}"))
    for name, why in skipped.items():
        rows.append((f"  {name}", why))
    return result, rows


# ---------------------------------------------------------------- 2. QRS


def match_beats(reference, detected, tolerance: int) -> dict:
    """One-to-one matching of detections to reference beats within ``tolerance`` samples.

    Closest pairs are matched first; each reference beat and each detection is used at most
    once (the rule of ``wfdb.processing.compare_annotations`` and of bxb). Returns the counts
    and sensitivity = tp / (tp + fn), PPV = tp / (tp + fp).
    """
    reference = np.sort(np.asarray(reference, dtype=np.int64))
    detected = np.sort(np.asarray(detected, dtype=np.int64))
    pairs = []
    if len(reference) and len(detected):
        lo = np.searchsorted(reference, detected - tolerance, side="left")
        hi = np.searchsorted(reference, detected + tolerance, side="right")
        for d, (a, b) in enumerate(zip(lo, hi)):
            for r in range(a, b):
                pairs.append((abs(int(reference[r]) - int(detected[d])), r, d))
    pairs.sort()
    used_ref, used_det = set(), set()
    for _, r, d in pairs:
        if r not in used_ref and d not in used_det:
            used_ref.add(r)
            used_det.add(d)
    tp = len(used_ref)
    fn, fp = len(reference) - tp, len(detected) - tp
    return {"tp": tp, "fn": fn, "fp": fp,
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "ppv": tp / (tp + fp) if tp + fp else float("nan")}


def qrs_detectors(fs: float) -> tuple[dict[str, object], dict[str, str]]:
    """name -> fn(signal (leads, n) in mV, MLII first) -> R-peak sample indices."""
    from pipeline.transforms import ecg as ecg_tf
    from pipeline.transforms.rhythm import detect_qrs

    methods = {
        "project (MLII + V5)": lambda x: detect_qrs(ecg_tf.remove_baseline(x, fs, [0.2, 0.6]), fs),
        "project (MLII)": lambda x: detect_qrs(ecg_tf.remove_baseline(x[:1], fs, [0.2, 0.6]), fs),
    }
    skipped = {}
    if installed("wfdb"):
        from wfdb import processing

        methods["wfdb xqrs_detect (MLII)"] = lambda x: processing.xqrs_detect(x[0].astype(np.float64), fs, verbose=False)
    else:
        skipped["wfdb xqrs_detect"] = skip_line("wfdb")
    if installed("neurokit2"):
        import neurokit2 as nk

        def neurokit(x):
            cleaned = nk.ecg_clean(x[0].astype(np.float64), sampling_rate=int(fs))
            return nk.ecg_peaks(cleaned, sampling_rate=int(fs))[1]["ECG_R_Peaks"]

        methods["neurokit2 ecg_clean + ecg_peaks (MLII)"] = neurokit
    else:
        skipped["neurokit2"] = skip_line("neurokit2")
    return methods, skipped


def qrs_part(repeats: int) -> tuple[dict, list[tuple[str, str]]]:
    if not (MITDB.with_suffix(".hea").is_file() and MITDB.with_suffix(".atr").is_file()):
        why = f"skipped: {MITDB}.hea/.atr not found (shared MIT-BIH record 100)"
        return {"skipped": why}, [("QRS on MIT-BIH 100", why)]
    if not installed("wfdb"):
        return {"skipped": skip_line("wfdb")}, [("QRS on MIT-BIH 100", skip_line("wfdb") + " (needed for the .atr)")]
    import wfdb

    from pipeline.io.ecg import read_record

    record = read_record(MITDB, max_seconds=3600)
    x, fs = record.signal.astype(np.float64), float(record.fs)
    order = [record.leads.index("MLII")] + [i for i, name in enumerate(record.leads) if name != "MLII"]
    x = x[order]
    annotation = wfdb.rdann(str(MITDB), "atr")
    beats = np.array([s for s, sym in zip(annotation.sample, annotation.symbol) if sym in BEAT_SYMBOLS])
    minutes = x.shape[1] / fs / 60
    methods, skipped = qrs_detectors(fs)
    result = {"record": "mitdb/100", "fs": fs, "minutes": minutes, "reference_beats": len(beats),
              "tolerances_ms": [150, 75], "detectors": {}, "skipped": skipped}
    rows = [(f"QRS, MIT-BIH 100 ({len(beats)} beats, {minutes:.1f} min)", "Se / PPV at 150 ms | at 75 ms | s per 30 min")]
    for name, fn in methods.items():
        try:
            peaks = np.asarray(fn(x))
            seconds = median_seconds(lambda fn=fn: fn(x), repeats=repeats, warmup=0)
        except Exception as exc:
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"[:200]
            continue
        scores = {ms: match_beats(beats, peaks, round(ms / 1000 * fs)) for ms in (150, 75)}
        per_30 = seconds * 30 / minutes
        result["detectors"][name] = {"detections": len(peaks), "seconds_per_30_min": per_30,
                                     **{f"{k}_{ms}ms": v for ms, s in scores.items() for k, v in s.items()}}
        rows.append((f"  {name}", " | ".join(f"{s['sensitivity']:.4f} / {s['ppv']:.4f}" for s in scores.values())
                     + f" | {per_30:.3f} s"))
    base = result["detectors"].get("wfdb xqrs_detect (MLII)")
    if base:
        for stats in result["detectors"].values():
            stats["speed_vs_xqrs"] = base["seconds_per_30_min"] / stats["seconds_per_30_min"]
        rows.append(("  speed vs xqrs", ", ".join(f"{n.split(' (')[0] if 'project' not in n else n}: {s['speed_vs_xqrs']:.1f}x"
                                                 for n, s in result["detectors"].items())))
    for name, why in skipped.items():
        rows.append((f"  {name}", why))
    return result, rows


# ---------------------------------------------------------------- 3. separation


SEPARATORS = {
    "project svs-default (ONNX Runtime)": "onnxruntime",
    "Open-Unmix umxhq, vocals + residual": "openunmix",
    "Open-Unmix umxhq, 4 targets": "openunmix",
    "HTDemucs (4 sources)": "demucs",
}


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``) in MiB.

    ``VmHWM`` rather than ``getrusage().ru_maxrss``: Linux carries ``ru_maxrss`` over an
    exec, so a child started from this (large) benchmark process would report the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _umx(targets: list[str]):
    import torch
    from openunmix.model import OpenUnmix, Separator

    torch.manual_seed(0)
    # umxhq: 4096-point STFT, hop 1024, 512 hidden units, bins above 16 kHz dropped (max_bin 1487)
    models = {t: OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487) for t in targets}
    return Separator(models, niter=1, residual=len(targets) == 1, n_fft=4096, n_hop=1024, nb_channels=2,
                     sample_rate=44100.0).eval()


def run_one_separator(name: str, path: Path, threads: int) -> dict:
    """Body of the child process: load, then time one separation of ``path``."""
    import soundfile as sf

    if name.startswith("project"):  # its separation path imports no torch: neither does this process
        from pipeline.store import Store
        from pipeline.svs.bundle import ONNX, OnnxRunner, resolve_model
        from pipeline.svs.separate import separate_file

        sep = resolve_model("svs-default")
        sep.runner = OnnxRunner(sep.folder / ONNX, sep.meta["model_name"], None, threads=threads)
        store = Store.open()
        before = rss_mib()
        start = time.perf_counter()
        separate_file(path, sep, store)
        seconds = time.perf_counter() - start
    else:
        import torch

        torch.set_num_threads(threads)
        if name.startswith("Open-Unmix"):
            model = _umx(["vocals"] if "residual" in name else ["vocals", "drums", "bass", "other"])

            def separate(mix):
                return model(mix[None])
        else:
            from demucs.apply import apply_model
            from demucs.htdemucs import HTDemucs

            torch.manual_seed(0)
            model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()

            def separate(mix):
                return apply_model(model, mix[None], shifts=0, split=True, overlap=0.25, progress=False, device="cpu")
        before = rss_mib()
        start = time.perf_counter()
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
        with torch.inference_mode():
            stems = separate(torch.from_numpy(audio.T.copy()))
        seconds = time.perf_counter() - start
        del stems
    peak = rss_mib("VmHWM")
    return {"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": before}


def separation_part(minutes: float, threads: int) -> tuple[dict, list[tuple[str, str]]]:
    from bench.separate import tiled_file

    result = {"audio_minutes": minutes, "threads": threads, "separators": {}, "skipped": {}}
    rows = [(f"Separation, {minutes:g} min 44.1 kHz stereo, {threads} thread(s)", "s per min of audio | peak RSS | RSS before")]
    with tempfile.TemporaryDirectory() as tmp:
        path = tiled_file(Path(tmp), minutes)
        for name, module in SEPARATORS.items():
            if not installed(module) or (module != "onnxruntime" and not installed("torch")):
                result["skipped"][name] = skip_line(module)
                rows.append((f"  {name}", skip_line(module)))
                continue
            env = {**os.environ, "PIPELINE_STORE": str(Path(tmp) / "store")}
            done = subprocess.run([sys.executable, __file__, "--one-separator", name, "--audio", str(path),
                                   "--threads", str(threads)], env=env, capture_output=True, text=True, cwd=REPO)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode != 0 or not lines:
                why = f"failed: {(done.stderr.strip().splitlines() or ['no output'])[-1][:200]}"
                result["skipped"][name] = why
                rows.append((f"  {name}", why))
                continue
            stats = json.loads(lines[-1])
            stats["seconds_per_minute"] = stats["seconds"] / minutes
            result["separators"][name] = stats
            rows.append((f"  {name}", f"{stats['seconds_per_minute']:7.2f} s | {stats['peak_rss_mib']:6.0f} MiB | "
                                      f"{stats['rss_before_mib']:6.0f} MiB"))
    base = result["separators"].get("project svs-default (ONNX Runtime)")
    if base:
        for stats in result["separators"].values():
            stats["time_vs_project"] = stats["seconds"] / base["seconds"]
    return result, rows


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--parts", default="cwt,qrs,separation", help="comma-separated subset of cwt,qrs,separation")
    parser.add_argument("--records", type=int, default=8, help="ECG records per CWT timing")
    parser.add_argument("--repeats", type=int, default=5, help="CWT rounds and QRS repeats (medians)")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the separation input")
    parser.add_argument("--threads", type=int, default=1, help="threads of every separator")
    parser.add_argument("--one-separator", help=argparse.SUPPRESS)
    parser.add_argument("--audio", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_separator:
        print(json.dumps(run_one_separator(args.one_separator, Path(args.audio), args.threads)))
        return
    one_torch_thread()
    parts = {p.strip() for p in args.parts.split(",")}
    result: dict = {"threads": 1, "versions": {m: version(m) for m in PACKAGES}}
    rows: list[tuple[str, str]] = []
    for part, run in (("cwt", lambda: cwt_part(args.records, args.repeats)), ("qrs", lambda: qrs_part(args.repeats)),
                      ("separation", lambda: separation_part(args.minutes, args.threads))):
        if part in parts:
            result[part], part_rows = run()
            rows += part_rows
    rows.append(("versions", ", ".join(f"{m} {v}" for m, v in result["versions"].items() if v)))
    emit("compare_tools", result, rows, args.json)


if __name__ == "__main__":
    main()
