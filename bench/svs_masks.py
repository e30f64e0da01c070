"""Inference-time mask options of a separator, scored on its validation songs (never its test songs).

The network runs once per clip (plus once per extra input for test-time augmentation); each
option turns the same voice logits into a mask, and the estimate is scored with the same
BSS-Eval as ``pipeline evaluate separator`` (length-weighted, mixture and oracle IBM beside).
Pick an option here, then score the test songs once with ``evaluate separator --subset test``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO  # noqa: E402
from pipeline.svs import spectral  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "audio" / "mir1k"


def logits_at(mix: np.ndarray, sep, gain_db: float = 0.0, shift: int = 0) -> np.ndarray:
    """Voice logits ``(bins, frames)`` of mono ``mix`` fed at ``gain_db``, the frames shifted right by ``shift``."""
    cfg = sep.config.stft
    mag = np.abs(spectral.stft(mix.astype(np.float32) * 10 ** (gain_db / 20), cfg))
    mag = np.pad(mag, ((0, 0), (shift, 0)))
    feats = spectral.features(mag, cfg.features, cfg.log_scale)[None].astype(np.float32)
    return sep.runner.mask_logits(feats)[0][:, shift:]


def options(threshold: float) -> dict:
    """Name -> ``fn(logits, mix_mag, extra_logits) -> mask``; ``extra_logits`` holds the TTA inputs."""
    thr = spectral.threshold_mask
    sig = spectral.sigmoid
    return {
        "soft, threshold 0.35 (default)": lambda z, m, x: thr(sig(z), threshold),
        "soft, threshold 0": lambda z, m, x: sig(z),
        "soft, threshold 0.2": lambda z, m, x: thr(sig(z), 0.2),
        "soft, threshold 0.5": lambda z, m, x: thr(sig(z), 0.5),
        "binary, p >= 0.5": lambda z, m, x: (sig(z) >= 0.5).astype(np.float32),
        "sharpen x0.5 (softer), threshold 0": lambda z, m, x: sig(0.5 * z),
        "sharpen x2, threshold 0": lambda z, m, x: sig(2 * z),
        "sharpen x4, threshold 0": lambda z, m, x: sig(4 * z),
        "wiener (power 2 on the 0.35 mask)": lambda z, m, x: spectral.wiener_mask(thr(sig(z), threshold), m),
        "wiener, power 2, PSDs smoothed 3x3": lambda z, m, x: smoothed_wiener(thr(sig(z), threshold), m),
        "TTA gain -6/0/+6 dB, threshold 0.35": lambda z, m, x: thr(sig(np.mean([z, x["-6dB"], x["+6dB"]], 0)), threshold),
        "TTA shift 0/8 frames, threshold 0.35": lambda z, m, x: thr(sig(0.5 * (z + x["shift8"])), threshold),
        "loudness-normalised input, threshold 0.35": lambda z, m, x: thr(sig(x["norm"]), threshold),
        "loudness-normalised input, threshold 0.2": lambda z, m, x: thr(sig(x["norm"]), 0.2),
        "loudness-normalised input, threshold 0": lambda z, m, x: sig(x["norm"]),
    }


class ExtraLogits(dict):
    """Logits of the other network inputs (TTA, loudness), computed on first use."""

    def __init__(self, mix: np.ndarray, sep, ref_rms: float):
        super().__init__()
        self.mix, self.sep = mix, sep
        norm_db = 20 * np.log10(ref_rms / (np.sqrt(np.mean(mix**2)) + 1e-12))
        self.inputs = {"-6dB": (-6, 0), "+6dB": (6, 0), "shift8": (0, 8), "norm": (norm_db, 0)}

    def __missing__(self, key: str) -> np.ndarray:
        self[key] = logits_at(self.mix, self.sep, *self.inputs[key])
        return self[key]


def smoothed_wiener(mask: np.ndarray, mix_mag: np.ndarray, size: int = 3) -> np.ndarray:
    """Wiener gain from voice/accompaniment power spectra averaged over ``size`` x ``size`` bins."""
    from scipy.ndimage import uniform_filter

    v = uniform_filter((mask * mix_mag) ** 2, size)
    a = uniform_filter(((1 - mask) * mix_mag) ** 2, size)
    return (v / (v + a + 1e-12)).astype(np.float32)


def clip_scores(track, sep, opts: dict, ref_rms: float) -> dict:
    """BSS-Eval rows (model per option, oracle, mixture) for one validation clip."""
    from pipeline.svs.evaluate import bss, oracle_vocals

    cfg = sep.config.stft
    voice, acc = track.load(cfg.sample_rate)
    mix = voice + acc
    spec = spectral.stft(mix.astype(np.float32), cfg)
    mag = np.abs(spec)
    extra = ExtraLogits(mix, sep, ref_rms)
    z = logits_at(mix, sep)
    refs = np.stack([voice, acc]).astype(np.float64)
    floor = bss(refs, np.stack([mix, mix]))
    ora = oracle_vocals(voice, acc, cfg)
    row = {"seconds": len(mix) / cfg.sample_rate, "mixture": floor, "oracle": bss(refs, np.stack([ora, mix - ora]))}
    for name, fn in opts.items():
        est = spectral.istft(spec * fn(z, mag, extra), cfg, length=len(mix))
        row[name] = bss(refs, np.stack([est, mix - est]))
    return row


def summarise(rows: list[dict], names: list[str]) -> dict:
    """Length-weighted GNSDR/GSIR/GSAR per option (and oracle, mixture, where scored), vocals and accompaniment."""
    w = np.array([r["seconds"] for r in rows])
    out = {}
    for name in names + [k for k in ("oracle", "mixture") if k in rows[0]]:
        sdr = np.array([r[name][0] for r in rows])
        floor = np.array([r["mixture"][0] for r in rows])
        sir = np.array([r[name][1] for r in rows])
        sar = np.array([r[name][2] for r in rows])
        mean = lambda a: (w @ a / w.sum()).round(3).tolist()  # noqa: E731
        out[name] = {"gnsdr": mean(sdr - floor), "gsir": mean(sir), "gsar": mean(sar),
                     "nsdr_vocals": (sdr - floor)[:, 0].round(3).tolist()}
    return out


def training_rms(sep, tracks) -> float:
    """Median mixture RMS of the model's training clips, at the centre of its gain augmentation."""
    train = set(sep.meta["split"]["train"])
    sr = sep.config.stft.sample_rate
    values = []
    for t in tracks:
        if t.track_id in train:
            v, a = t.load(sr)
            values.append(np.sqrt(np.mean((v + a) ** 2)))
    gain = np.mean(sep.config.train.augment.gain_db)
    return float(np.median(values) * 10 ** (gain / 20))


def main() -> None:
    from pipeline.svs.bundle import resolve_model
    from pipeline.svs.data import discover_tracks

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="svs-default")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", type=Path, help="write the summary JSON here")
    parser.add_argument("--only", nargs="*", help="score only the options whose names contain one of these")
    args = parser.parse_args()
    sep = resolve_model(args.model)
    tracks, _ = discover_tracks(args.data, sep.config.split.singers)
    val = [t for t in tracks if t.track_id in set(sep.meta["split"]["val"])]
    opts = options(sep.config.ibm.threshold)
    if args.only:
        opts = {k: v for k, v in opts.items() if any(word in k for word in args.only)}
    ref = training_rms(sep, tracks)
    rows = [clip_scores(t, sep, opts, ref) for t in val]
    result = {"model": sep.name, "run_id": sep.run_id, "n_tracks": len(rows), "options_tried": len(opts),
              "reference_rms": ref, "tracks": [t.track_id for t in val], "scores": summarise(rows, list(opts))}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    for name, s in result["scores"].items():
        print(f"{name:<45} GNSDR voc {s['gnsdr'][0]:6.2f} acc {s['gnsdr'][1]:6.2f}  "
              f"GSIR voc {s['gsir'][0]:6.2f}  GSAR voc {s['gsar'][0]:6.2f}")


if __name__ == "__main__":
    main()
