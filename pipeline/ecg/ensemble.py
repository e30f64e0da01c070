"""Deep ensembles of ECG networks: views (scalogram CNN, 1-D CNN, ...) x seeds, one folder.

Every member is early-stopped on the same stratified validation part of the training records,
and the combiner (per-view weights and a temperature) is fitted on that part's member
probabilities. The internal test split never reaches this module (``train_ecg`` removes it).
Members train in parallel processes on CPU (``train.parallel``): on 2 cores two single-threaded
trainings finish in about the time of one two-threaded training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipeline.config import EcgConfig
from pipeline.errors import UserError
from pipeline.evaluation import calibration_report, classification_report, plot_reliability, subgroup_recall

#: Arrays shared with forked training processes (set before the pool starts, read-only there).
_SHARED: dict = {}


def member_config(cfg: EcgConfig, view: int, seed: int) -> EcgConfig:
    """The ensemble config with one member's network, seed and train overrides."""
    member = cfg.model.members[view]
    train = cfg.member_train(view)
    model = {"name": member.name, "args": member.args, "rhythm_features": member.rhythm_features}
    return cfg.model_copy(update={"name": f"{cfg.name}-m{view}-s{seed}", "seed": seed, "model": type(cfg.model)(**model),
                                  "train": train})


def member_fingerprint(mcfg: EcgConfig) -> str:
    """Hash of what shapes a trained member: its inputs, network, training and seed (not the
    ensemble's name, data paths, parallelism or combiner settings, nor the scalogram settings
    for a member that reads the signal)."""
    from pipeline.ecg.train import input_kind_of

    inputs = {"seed", "classes", "preprocess", "train"} | ({"scalogram"} if input_kind_of(mcfg) == "scalogram" else set())
    shape = mcfg.model_dump(mode="json", include=inputs)
    shape["train"].pop("parallel")
    shape["model"] = mcfg.model.model_dump(mode="json", include={"name", "args", "rhythm_features"})
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def member_key(cfg: EcgConfig, view: int, seed: int) -> str:
    return f"m{view}-{cfg.model.members[view].name}-s{seed}"


def _train_member(job: tuple[int, int]) -> dict:
    """Fit one member on the shared arrays; returns its weights and validation probabilities."""
    from pipeline.device import resolve_device
    from pipeline.ecg.train import fit_model, softmax
    from pipeline.training import predict_logits

    view, seed = job
    cfg, split, progress = _SHARED["cfg"], _SHARED["split"], _SHARED["progress"]
    mcfg = member_config(cfg, view, seed)
    arrays, n_features = _SHARED["arrays"][view]
    key = member_key(cfg, view, seed)
    # named without the view index: another ensemble may list the same member at another position
    checkpoint = _SHARED["work"] / f"{mcfg.model.name}-s{seed}-{member_fingerprint(mcfg)}-{_SHARED['split_key']}.pt"
    model, result, to_input = fit_model(mcfg, arrays, n_features, checkpoint, key, progress, split=split)
    val_probs = softmax(predict_logits(model, arrays.subset(split[1]), resolve_device(mcfg.train.device), to_input))
    return {"view": view, "seed": seed, "key": key, "state": {k: v.cpu() for k, v in model.state_dict().items()},
            "n_features": n_features, "val_probs": val_probs, "best_epoch": result.best_epoch,
            "seconds": result.seconds}


def _run_jobs(jobs: list[tuple[int, int]], parallel: int, progress: bool) -> list[dict]:
    if parallel <= 1 or len(jobs) == 1:
        return [_train_member(job) for job in jobs]
    import multiprocessing

    # fork: children inherit the arrays without pickling them; the parent has run no torch op yet.
    # multiprocessing.Pool (not concurrent.futures) because leaving its block terminates the
    # children: Ctrl-C or SIGTERM must not leave members training in the background.
    context = multiprocessing.get_context("fork")
    results = []
    with context.Pool(min(parallel, len(jobs))) as pool:
        for result in pool.imap(_train_member, jobs):
            if progress:
                print(f"member {result['key']}: best epoch {result['best_epoch']}, trained {result['seconds']} s", flush=True)
            results.append(result)
    return results


def train_ensemble(cfg: EcgConfig, dataset, folder: Path, run_id: str, progress: bool = True) -> dict:
    """Train every member, fit the combiner, write the ensemble folder; return its metrics.

    Member checkpoints are kept in ``<PIPELINE_WORK>/ecg/members/``, named by the member's
    config and the exact fit/validation records, so another ensemble that shares a member
    (same network, seed, data and split) reuses it instead of training it again.
    """
    from pipeline.device import resolve_device
    from pipeline.ecg.bundle import member_meta, save_ensemble
    from pipeline.ecg.combine import combine, fit_combiner
    from pipeline.ecg.train import build_arrays, input_kind_of, validation_split, work_root
    from pipeline.models import create_model
    from pipeline.models.rule import rule_predict

    labels = dataset.labels(cfg.classes)
    split = validation_split(labels, cfg.train.val_fraction, cfg.seed)
    names = [r.name for r in dataset.records]
    split_key = hashlib.sha256(("|".join(names[i] for i in split[0]) + "#" + "|".join(names[i] for i in split[1])).encode()
                               ).hexdigest()[:12]
    work = work_root() / "ecg" / "members"
    work.mkdir(parents=True, exist_ok=True)
    arrays, cache = {}, {}
    for view in range(len(cfg.model.members)):
        mcfg = member_config(cfg, view, 0)
        kind = input_kind_of(mcfg)
        token = (kind, mcfg.model.rhythm_features)
        if token not in cache:
            cache[token] = build_arrays(dataset, mcfg, kind)
        arrays[view] = cache[token]
    jobs = [(view, seed) for view, member in enumerate(cfg.model.members) for seed in member.seeds]
    parallel = 1 if resolve_device(cfg.train.device).type == "cuda" else cfg.train.parallel
    _SHARED.update(cfg=cfg, work=work, split=split, split_key=split_key, progress=progress and parallel <= 1, arrays=arrays)
    try:
        results = _run_jobs(jobs, parallel, progress)
    finally:
        _SHARED.clear()

    val_labels = labels[split[1]]
    member_probs = np.stack([r["val_probs"] for r in results])
    weights, temperature = fit_combiner(member_probs, val_labels, [r["view"] for r in results],
                                        fit_weights=cfg.model.view_weights == "fitted")
    ensemble_probs = combine(member_probs, weights, temperature)
    if not np.isfinite(ensemble_probs).all():
        raise UserError("ensemble produced non-finite probabilities on the validation part")
    flutter = dataset.flutter()[split[1]]
    rule_probs = rule_predict(dataset.features()[split[1]], tuple(cfg.classes))

    def scored(probs: np.ndarray) -> dict:
        pred = probs.argmax(1)
        report = classification_report(val_labels, pred, cfg.classes)
        report.update(calibration=calibration_report(val_labels, probs), flutter=subgroup_recall(val_labels, pred, flutter))
        return report

    members = []
    for r in results:
        mcfg = member_config(cfg, r["view"], r["seed"])
        model = create_model(mcfg.model.name, n_classes=len(cfg.classes), n_features=r["n_features"],
                             **{k: v for k, v in mcfg.model.args.items() if k != "pretrained"})
        model.load_state_dict(r["state"])
        members.append((member_meta(mcfg, input_kind_of(mcfg), r["n_features"], r["key"]), model))
    member_reports = {r["key"]: {**_short(scored(r["val_probs"])), "best_epoch": r["best_epoch"], "seconds": r["seconds"],
                                 "weight": float(w)} for r, w in zip(results, weights)}
    validation = {"n_records": int(len(split[1])), "records": [dataset.records[i].name for i in split[1]],
                  "ensemble": scored(ensemble_probs), "rule": scored(rule_probs), "members": member_reports,
                  "weights": [float(w) for w in weights], "temperature": temperature}
    save_ensemble(folder, cfg, members, weights, temperature, {"run_id": run_id})
    plot_reliability(validation["ensemble"]["calibration"], folder / "reliability.png", f"{cfg.name}: validation part")
    return {"validation": validation, "device": str(resolve_device(cfg.train.device)), "parallel": parallel}


def _short(report: dict) -> dict:
    return {k: report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")} | {
        "ece": report["calibration"]["ece"], "flutter": report["flutter"]}
