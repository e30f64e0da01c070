"""Ensembles of trained separators (mean voice probability), scored on their shared validation songs
(or, with ``--subset test``, their test songs: for models whose choices were made elsewhere, such as
the singer-held-out ablation runs, whose test split is the singer they never heard).

Every non-empty subset of ``--models`` is scored: each network sees the clip at its own input
level, the voice probabilities are averaged, the model's threshold applied, and the estimate is
scored with the same BSS-Eval as ``pipeline evaluate separator`` (length-weighted). The models
must share their song split and STFT.

Decision rule, written before the first run (2026-12-01, session 6): a subset of two or more
models goes on (a second named model, not the default: it costs one network per member) only if
its validation vocal GNSDR is at least 0.3 dB above the best single model's; its test songs are
then scored once.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO  # noqa: E402
from bench.svs_masks import summarise  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "audio" / "mir1k"


def voice_probability(mix: np.ndarray, spec: np.ndarray, sep) -> np.ndarray:
    """Voice probability ``(bins, frames)`` of mono ``mix`` as ``pipeline separate`` computes it
    (its own mask function, at the model's input level, before any threshold or post-filter)."""
    from pipeline.svs.separate import input_gain, voice_mask

    gain = input_gain(mix[None], sep.config.separate.input_rms_db)
    return voice_mask(spec[None], sep, threshold=0.0, wiener=False, gain=gain)[0]


def clip_scores(track, seps: list, subsets: dict) -> dict:
    """BSS-Eval rows (each subset, mixture) for one clip."""
    from pipeline.svs.evaluate import bss
    from pipeline.svs.spectral import istft, stft, threshold_mask

    cfg = seps[0].config
    voice, acc = track.load(cfg.stft.sample_rate)
    mix = (voice + acc).astype(np.float32)
    spec = stft(mix, cfg.stft)
    probs = [voice_probability(mix, spec, sep) for sep in seps]
    refs = np.stack([voice, acc]).astype(np.float64)
    row = {"seconds": len(mix) / cfg.stft.sample_rate, "mixture": bss(refs, np.stack([mix, mix]))}
    for name, members in subsets.items():
        mask = threshold_mask(np.mean([probs[i] for i in members], axis=0), cfg.ibm.threshold)
        est = istft(spec * mask, cfg.stft, length=len(mix))
        row[name] = bss(refs, np.stack([est, mix - est]))
    return row


def main() -> None:
    from pipeline.svs.bundle import resolve_model
    from pipeline.svs.data import discover_tracks

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", required=True, help="model names or run folders (same split)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--subset", choices=["val", "test"], default="val")
    parser.add_argument("--out", type=Path, help="write the summary JSON here")
    args = parser.parse_args()
    seps = [resolve_model(m) for m in args.models]
    first = seps[0]
    for sep in seps[1:]:
        if sep.meta["split"] != first.meta["split"] or sep.config.stft != first.config.stft:
            raise SystemExit(f"error: {sep.name}@{sep.run_id} has another split or STFT than {first.name}@{first.run_id}")
    labels = [f"{sep.name}@{sep.run_id[-8:]}" for sep in seps]
    subsets = {" + ".join(labels[i] for i in members): members
               for size in range(1, len(seps) + 1) for members in combinations(range(len(seps)), size)}
    tracks, _ = discover_tracks(args.data, first.config.split.singers)
    scored = [t for t in tracks if t.track_id in set(first.meta["split"][args.subset])]
    rows = [clip_scores(t, seps, subsets) for t in scored]
    scores = summarise(rows, list(subsets))
    result = {"models": labels, "subset": args.subset, "n_tracks": len(rows), "tracks": [t.track_id for t in scored],
              "scores": scores}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    for name, s in sorted(scores.items(), key=lambda kv: -kv[1]["gnsdr"][0]):
        print(f"{s['gnsdr'][0]:6.2f} dB vocal GNSDR (acc {s['gnsdr'][1]:5.2f})  {name}")


if __name__ == "__main__":
    main()
