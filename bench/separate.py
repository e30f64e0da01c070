"""`pipeline separate` real-time factor on a 3-minute 44.1 kHz stereo file, and peak memory on 60 minutes.

The input is real music (the bundled MUSDB18 preview excerpt) tiled to length. Every
separation is a fresh `pipeline separate` process (decode, resample, STFT, network, iSTFT,
FLAC writing and the store all included). Baseline measured in the same run: decoding the
same file and writing it back as FLAC (the I/O floor any separator pays).

`lin2018` slides its dense network over every frame (~0.5 GMAC per frame and channel), so it
is timed on a short excerpt only; without a trained lin2018 in the store, a randomly
initialised one stands in (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, emit  # noqa: E402

PIPELINE = str(Path(sys.executable).with_name("pipeline"))
SAMPLE = REPO / "samples" / "audio" / "music-delta-80s-rock.ogg"


def tiled_file(folder: Path, minutes: float, rate: int = 44100) -> Path:
    """Write ``minutes`` of the sample, resampled to ``rate`` stereo, as FLAC (streamed)."""
    import soundfile as sf

    from pipeline.io.audio import resample

    audio, sr = sf.read(SAMPLE, dtype="float32", always_2d=True)
    audio = resample(audio.T, sr, rate).T
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    path = folder / f"tiled-{minutes:g}min.flac"
    total = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as out:
        written = 0
        while written < total:
            block = audio[: total - written]
            out.write(block)
            written += len(block)
    return path


def run_separate(path: Path, model: str, store: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `pipeline separate` process."""
    env = {**os.environ, "PIPELINE_STORE": str(store)}
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over the exec, so the child would
    # report at least this benchmark process's own size
    command = [sys.executable, "-c",
               "import sys; sys.argv=sys.argv[1:]; "
               "import pipeline.cli as c\ntry:\n c.main()\nfinally:\n"
               " hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
               " print('PEAK_RSS_KB', hwm, file=sys.stderr)",
               "pipeline", "separate", str(path), "--model", model, "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"separate failed for {model}: {done.stderr.strip().splitlines()[-1:]}")
    peak_kb = int(done.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return wall, peak_kb / 1024


def lin2018_model(folder: Path) -> str:
    """A trained ``lin2018`` from the store if there is one, else an untrained bundle folder."""
    from pipeline.errors import UserError
    from pipeline.svs.bundle import resolve_model

    try:
        return str(resolve_model("lin2018").folder)
    except UserError:
        pass
    import torch

    from pipeline.config import load_config
    from pipeline.svs.bundle import save_bundle
    from pipeline.svs.config import SvsConfig
    from pipeline.svs.models import create_separator

    cfg = load_config(REPO / "configs" / "svs" / "lin2018.yaml", SvsConfig)
    torch.manual_seed(0)
    model = create_separator(cfg.model.name, cfg.stft.n_bins, **cfg.model.args)
    save_bundle(folder / "lin2018-untrained", cfg, model, extra={"run_id": "untrained"})
    return str(folder / "lin2018-untrained")


def io_floor(path: Path, folder: Path) -> float:
    import soundfile as sf

    start = time.perf_counter()
    with sf.SoundFile(path) as src, sf.SoundFile(folder / "copy.flac", "w", src.samplerate, src.channels, subtype="PCM_24") as dst:
        for block in src.blocks(blocksize=1 << 18, dtype="float32"):
            dst.write(block)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--models", default="svs-default", help="comma-separated model names or folders (e.g. add a trained lin2018)")
    parser.add_argument("--long-minutes", type=float, default=60.0, help="length of the peak-memory file")
    parser.add_argument("--lin2018-seconds", type=float, default=10.0, help="excerpt length for lin2018 (0: skip)")
    args = parser.parse_args()
    result, rows = {"models": {}}, []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        three = tiled_file(tmp, 3.0)
        floor = min(io_floor(three, tmp) for _ in range(3))
        result["io_floor_realtime_factor"] = 180 / floor
        rows.append(("decode + FLAC write only (floor)", f"{180 / floor:.0f}x real time"))
        for model in args.models.split(","):
            try:
                walls = [run_separate(three, model, tmp / f"store-{model}-{i}")[0] for i in range(3)]
            except SystemExit as exc:
                rows.append((model, f"skipped: {exc}"))
                continue
            rtf = 180 / sorted(walls)[1]
            result["models"][model] = {"realtime_factor_3min": rtf, "vs_io_floor": (180 / floor) / rtf}
            rows.append((f"{model}, 3 min 44.1 kHz stereo", f"{rtf:.1f}x real time (median of 3 processes)"))
        first = args.models.split(",")[0]
        if first in result["models"]:
            long_file = tiled_file(tmp, args.long_minutes)
            wall, peak = run_separate(long_file, first, tmp / "store-long")
            result["models"][first].update(long_minutes=args.long_minutes, long_peak_rss_mib=peak,
                                           long_realtime_factor=args.long_minutes * 60 / wall)
            rows.append((f"{first}, {args.long_minutes:g} min file", f"peak RSS {peak:.0f} MiB, {args.long_minutes * 60 / wall:.1f}x real time"))
        if args.lin2018_seconds > 0:
            excerpt = tiled_file(tmp, args.lin2018_seconds / 60)
            model = lin2018_model(tmp)
            wall, peak = run_separate(excerpt, model, tmp / "store-lin2018")
            result["lin2018"] = {"seconds": args.lin2018_seconds, "realtime_factor": args.lin2018_seconds / wall,
                                 "peak_rss_mib": peak, "trained": not model.endswith("lin2018-untrained")}
            rows.append((f"lin2018, {args.lin2018_seconds:g} s excerpt", f"{args.lin2018_seconds / wall:.2f}x real time, peak RSS {peak:.0f} MiB"))
    default = result["models"].get("svs-default", {})
    result["targets"] = {"realtime_factor_min": 20, "peak_rss_mib_max": 2048}
    result["target_met"] = bool(default and default["realtime_factor_3min"] >= 20 and default.get("long_peak_rss_mib", 1e9) <= 2048)
    rows.append(("target >= 20x real time, <= 2 GiB for 60 min", "met" if result["target_met"] else "NOT met"))
    emit("separate", result, rows, args.json)


if __name__ == "__main__":
    main()
