"""Write one config per (view, seed) of a cross-fitted ECG ensemble, to train them as parallel processes.

Why: on CUDA one ``pipeline train ecg`` trains its members one after another, and a GPU has room
for many small trainings at once. Each part config holds one member; its fold models land in the
shared member cache under names that do not depend on the view's position, so the full config,
run afterwards, finds every member trained and only combines, selects and publishes.
``--epochs/--folds/--seeds`` shrink the run for a smoke test on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.config import EcgConfig, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="ensemble config with model.selection: kfold")
    parser.add_argument("out", help="folder for the part configs (and the shrunk full config)")
    parser.add_argument("--epochs", type=int, help="override every member's epochs (smoke test)")
    parser.add_argument("--folds", type=int, help="override train.folds (smoke test)")
    parser.add_argument("--seeds", type=int, help="keep the first N seeds of every view (smoke test)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, EcgConfig)
    if cfg.model.name != "ensemble" or cfg.model.selection != "kfold":
        parser.error(f"{args.config}: needs an ensemble with model.selection: kfold")
    full = cfg.model_dump(mode="json")  # explicit nulls kept: several mean something (e.g. median_rate_hz)
    if args.folds:
        full["train"]["folds"] = args.folds
    for member in full["model"]["members"]:
        if args.epochs:
            member.setdefault("train", {})["epochs"] = args.epochs
        if args.seeds:
            member["seeds"] = member["seeds"][: args.seeds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "full.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    for view, member in enumerate(full["model"]["members"]):
        for seed in member["seeds"]:
            part = {**full, "name": f"{cfg.name}-part-v{view}-s{seed}",
                    "model": {**full["model"], "select_views": False, "members": [{**member, "seeds": [seed]}]}}
            (out / f"part-v{view}-s{seed}.yaml").write_text(yaml.safe_dump(part, sort_keys=False))
    print(" ".join(sorted(p.name for p in out.glob("part-*.yaml"))))


if __name__ == "__main__":
    main()
