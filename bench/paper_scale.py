"""The paper-scale workload (45,152 records) timed stage by stage on one worker, and projected.

Why: the paper trained on all 45,152 Chapman-Shaoxing/Ningbo records; nobody had timed this
pipeline at that size. The stages run on N records replicated from the shared Chapman set (the
shared folder holds a few hundred, so records repeat and reads come from the page cache):

1. read: WFDB -> 12 standard leads, one process;
2. prepare: preprocess + the config's scalogram + rhythm features, as training prepares
   (``prepare_many``: worker processes; on CUDA the images are batched on the device);
3. train: a fixed number of epochs of the config's first scalogram member (its network, batch
   size, threads), validation pass included, on the prepared records;
4. predict: that network's forward pass over the prepared records.

Each stage's records/s is measured on N; the projection for 45,152 records divides by those
rates, with training scaled to the member's configured epochs (early stopping ignored: an upper
bound). ``--device cuda`` runs the same on a GPU; ``--records 45152`` there is the real run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ecg_records, emit  # noqa: E402
from pipeline.config import REPO_ROOT, EcgConfig, load_config  # noqa: E402
from pipeline.ecg.prepare import prepare_many  # noqa: E402
from pipeline.io.ecg import read_record, to_standard_leads  # noqa: E402

PAPER_RECORDS = 45_152


def scalogram_member(cfg: EcgConfig) -> tuple[EcgConfig, int]:
    """The config of the first member (or the model itself) that reads the scalogram, and its seed count."""
    from pipeline.ecg.ensemble import member_config
    from pipeline.ecg.train import input_kind_of

    if not cfg.model.members:
        if input_kind_of(cfg) != "scalogram":
            raise SystemExit(f"{cfg.name}: the model does not read the scalogram")
        return cfg, 1
    for view, member in enumerate(cfg.model.members):
        mcfg = member_config(cfg, view, member.seeds[0])
        if input_kind_of(mcfg) == "scalogram":
            return mcfg, len(member.seeds)
    raise SystemExit(f"{cfg.name}: no ensemble member reads the scalogram")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "ecg" / "ecg-default.yaml"))
    parser.add_argument("--records", type=int, default=64, help="records actually run (replicated shared records)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs actually run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from pipeline.device import resolve_device
    from pipeline.ecg.image_bank import fits_in_memory
    from pipeline.ecg.train import build_arrays, dataset_from_paths, fit_model, input_kind_of
    from pipeline.models import create_model
    from pipeline.training import predict_logits

    device = resolve_device(args.device)
    cfg = load_config(args.config, EcgConfig)
    mcfg, seeds = scalogram_member(cfg)
    full_epochs = mcfg.train.epochs
    mcfg = mcfg.model_copy(update={"train": mcfg.train.model_copy(update={"epochs": args.epochs, "patience": args.epochs,
                                                                         "device": str(device)})})
    paths = ecg_records(args.records)
    # warm-up, untimed: imports (scipy, timm) and the page cache, which a 45,152-record run amortises
    image_device = device if device.type == "cuda" else None
    prepare_many(paths[:2], mcfg, workers=1, progress=False, image_device=image_device)
    create_model(mcfg.model.name, n_classes=len(mcfg.classes), **mcfg.model.args)

    _, read_s = timed(lambda: [to_standard_leads(read_record(p)) for p in paths])
    dataset, prepare_s = timed(lambda: dataset_from_paths(paths, mcfg, progress=False))  # as training prepares
    records = dataset.records
    arrays, n_features = build_arrays(dataset, mcfg, input_kind_of(mcfg))
    (model, _, to_input), train_s = timed(lambda: fit_model(mcfg, arrays, n_features, None, "paper scale", progress=False))
    _, predict_s = timed(lambda: predict_logits(model, arrays, device, to_input))

    rates = {
        "read": len(paths) / read_s,
        "prepare": len(paths) / prepare_s,
        "train_record_epochs": len(records) * args.epochs / train_s,
        "predict": len(records) / predict_s,
    }
    projected = {
        "read": PAPER_RECORDS / rates["read"],
        "prepare": PAPER_RECORDS / rates["prepare"],
        "train_one_member": PAPER_RECORDS * full_epochs / rates["train_record_epochs"],
        "predict": PAPER_RECORDS / rates["predict"],
    }
    projected["end_to_end"] = sum(projected.values())
    image_gib = records[0].image.nbytes * PAPER_RECORDS / 2**30
    on_disk = not fits_in_memory(records[0].image.nbytes * PAPER_RECORDS)
    result = {
        "config": cfg.name, "member": mcfg.model.model_dump(mode="json", include={"name", "args"}),
        "image_rows_x_cols": list(records[0].image.shape), "device": str(device),
        "torch_threads": torch.get_num_threads(), "records_run": len(paths), "records_trained": len(records),
        "epochs_run": args.epochs, "epochs_projected": full_epochs, "scalogram_seeds": seeds,
        "records_per_s": rates, "projected_seconds": projected, "paper_records": PAPER_RECORDS,
        "image_bank_gib": image_gib, "image_bank_on_disk": on_disk,
    }
    hours = projected["end_to_end"] / 3600
    rows = [
        ("config / member / device", f"{cfg.name} / {mcfg.model.name} {mcfg.model.args} / {device}"),
        ("records run (trained) / epochs run", f"{len(paths)} ({len(records)}) / {args.epochs}"),
        *[(f"{stage} records/s", f"{rate:.1f}") for stage, rate in rates.items()],
        *[(f"projected {stage}, {PAPER_RECORDS} records", f"{seconds / 60:.1f} min") for stage, seconds in projected.items()],
        (f"train projection: {full_epochs} epochs, one seed", f"x{seeds} for the view's {seeds} seeds"),
        ("end to end", f"{hours:.2f} h (target 0.5 h on one GPU worker)"),
        ("training's image bank (one copy)", f"{image_gib:.1f} GiB, {'a temporary file' if on_disk else 'in memory'} here"),
    ]
    emit("paper_scale", result, rows, args.json)


if __name__ == "__main__":
    main()
