"""Separator ablations on the strict cross-singer pair, at equal CPU budget (issue 12, item 2).

Each variant is the singer-held-out config (``configs/svs/svs-singer-{amy,abjones}.yaml``: one
singer learnt, every clip of the other held out) with a few keys changed, trained in both
directions for the same CPU-time budget, and scored on the held-out singer's clips with the
bundled default's inference settings (threshold 0.2, chunks at -26 dBFS). Runs go to their own
store (``--store``), never the repo's. Variants train ``--jobs`` at a time, one torch thread each;
``--seeds N`` trains every cell with seeds 0..N-1 (one seed moves a cell by a few tenths of a dB).

    python bench/svs_ablations.py --store /tmp/svs-ablations --jobs 2 [--seeds 3] [--variants hourglass]

The rows trained are merged into ``--out`` when it exists (same budget): a (variant, held-out
singer, seed) trained again replaces its old row, every other row is kept.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, machine  # noqa: E402

# the bundled default's inference, so variants differ only in training
COMMON = {"ibm.threshold": 0.2, "separate.input_rms_db": -26.0}
VARIANTS = {
    "base": {},
    "level": {"train.input_rms_db": -26.0},
    "deep": {"model.args.convs": 2},
    # replaces model.args whole: fcn's channels/convs do not reach the hourglass
    "hourglass": {"model.name": "hourglass", "model.args": {"stacks": 4, "channels": 32, "depth": 4, "stem_levels": 2}},
    # multi-resolution input: 512- and 2048-point STFTs as extra channels beside the 1024-point one
    "multires": {"stft.extra_windows": [512, 2048]},
}
DIRECTIONS = {"amy": "svs-singer-amy.yaml", "abjones": "svs-singer-abjones.yaml"}  # held-out singer -> config


def set_key(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config.setdefault(key, {})
    config[last] = value


def variant_config(variant: str, held_out: str, budget_min: float, seed: int = 0) -> dict:
    config = copy.deepcopy(yaml.safe_load((REPO / "configs" / "svs" / DIRECTIONS[held_out]).read_text()))
    for key, value in {**COMMON, **VARIANTS[variant], "train.time_budget_min": budget_min, "seed": seed}.items():
        set_key(config, key, value)
    config["name"] = f"svs-ablation-{variant}-no-{held_out}" + (f"-s{seed}" if seed else "")
    config["data"] = str((REPO / config["data"]).resolve())  # config data paths are relative to the repo
    return config


def train(config: dict, store: Path, logs: Path) -> dict:
    """Train one variant in a child process; return its published metrics and report."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    log = logs / f"{config['name']}.log"
    # checkpoints beside the ablation store, not in the repository's artifacts/work
    env = {**os.environ, "PIPELINE_STORE": str(store), "PIPELINE_WORK": str(store.parent / f"{store.name}-work")}
    with log.open("w") as out:
        rc = subprocess.call([sys.executable, "-m", "pipeline.cli", "train", "separator", "--config", handle.name,
                              "--data", config["data"]], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    os.unlink(handle.name)
    if rc:
        return {"error": f"exit {rc}, see {log}"}
    folder = store / "models" / "svs" / config["name"]
    run = folder / json.loads((folder / "latest.json").read_text())["run_id"]
    report = json.loads((run / "eval_report.json").read_text())
    meta = json.loads((run / "manifest.json").read_text())
    return {"run": str(run), "metrics": meta["metrics"], "gsir": report["gsir"], "gsar": report["gsar"],
            "gnsdr": report["gnsdr"], "oracle_gnsdr": report["oracle_ibm"]["gnsdr"]}


def summarise(runs: list[dict]) -> dict:
    """Mean vocal GNSDR per variant over its scored runs, for variants scored in every direction."""
    summary = {}
    for v in dict.fromkeys(r["variant"] for r in runs):
        scored = [r for r in runs if r["variant"] == v and "gnsdr" in r]
        if {r["held_out"] for r in scored} == set(DIRECTIONS):
            summary[v] = {"mean_gnsdr_vocals": round(float(np.mean([r["gnsdr"]["vocals"] for r in scored])), 3),
                          "runs": len(scored)}
    return summary


def merge_results(previous: dict | None, new: dict) -> dict:
    """``new`` rows over ``previous`` ones: same (variant, held_out, seed) replaced, others kept."""
    if not previous:
        return new
    if previous.get("budget_min") != new["budget_min"] or previous.get("common") != new["common"]:
        raise SystemExit(f"--out holds runs at another budget or inference setting "
                         f"({previous.get('budget_min')} min, {previous.get('common')}); write to another --out")
    key = lambda r: (r["variant"], r["held_out"], r.get("seed", 0))  # noqa: E731
    fresh = {key(r) for r in new["runs"]}
    runs = [r for r in previous["runs"] if key(r) not in fresh] + new["runs"]
    return {**previous, "variants": {**previous.get("variants", {}), **new["variants"]},
            "summary": summarise(runs), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="store for the ablation runs (not the repo's)")
    parser.add_argument("--budget-min", type=float, default=12.0, help="stage-2 CPU minutes per run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=1, help="seeds per (variant, direction)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "svs_ablations.json",
                        help="results JSON; the new rows are merged into it when it exists")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.is_file() else None
    if previous:  # refuse a mismatched file before hours of training, not after
        merge_results(previous, {"budget_min": args.budget_min, "common": COMMON, "variants": {}, "runs": []})
    logs = args.store / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = [(v, d, s) for v in args.variants for d in DIRECTIONS for s in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = pool.map(lambda job: train(variant_config(job[0], job[1], args.budget_min, job[2]), args.store, logs), jobs)
        runs = [{"variant": v, "held_out": d, "seed": s, **result} for (v, d, s), result in zip(jobs, done)]
    for v in args.variants:
        print(v, [round(r["gnsdr"]["vocals"], 2) for r in runs if r["variant"] == v and "gnsdr" in r])
    new = {"machine": machine(), "budget_min": args.budget_min, "common": COMMON,
           "variants": {v: VARIANTS[v] for v in args.variants}, "summary": summarise(runs), "runs": runs}
    if previous:
        for r in runs:
            r["machine"] = new["machine"]  # the file's top-level machine is its first run's
    args.out.write_text(json.dumps(merge_results(previous, new), indent=1))
    print(f"wrote {args.out}")

if __name__ == "__main__":
    main()
