"""Deep ensembles of ECG networks: views (scalogram CNN, 1-D CNN, ...) x seeds, one folder.

Every member is early-stopped on the same stratified validation part of the training records,
and the combiner (per-view weights and a temperature) is fitted on that part's member
probabilities; or (``selection: kfold``) every member is cross-fitted over k folds and the
combiner, and optionally the set of views, is chosen on out-of-fold probabilities of all
training records; the published members are fold models or (``refit_members``) refits of the
chosen views on every training record. The internal test split never reaches this module (``train_ecg`` removes it).
Members train in parallel processes on CPU (``train.parallel``): on 2 cores two single-threaded
trainings finish in about the time of one two-threaded training.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
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


def member_key(cfg: EcgConfig, view: int, seed: int, part: str = "") -> str:
    """``m<view>-<network>-s<seed>`` plus the records it was fitted on: ``f<k>`` (all but fold k), ``all``."""
    return f"m{view}-{cfg.model.members[view].name}-s{seed}" + (f"-{part}" if part else "")


def fit_splits(cfg: EcgConfig, labels: np.ndarray, flutter: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) index pairs: the one validation split, or ``train.folds`` folds stratified by
    class and atrial flutter (by class alone when a flutter stratum is smaller than the fold count)."""
    from sklearn.model_selection import StratifiedKFold

    from pipeline.ecg.train import validation_split

    if cfg.model.selection == "validation":
        return [validation_split(labels, cfg.train.val_fraction, cfg.seed)]
    if len(labels) < 2 * cfg.train.folds:
        raise UserError(f"only {len(labels)} training records: too few for {cfg.train.folds} folds")
    strata = labels * 2 + flutter
    if np.bincount(strata)[np.bincount(strata) > 0].min() < cfg.train.folds:
        strata = labels
    with warnings.catch_warnings():  # a class smaller than the fold count is allowed (tiny test sets)
        warnings.simplefilter("ignore", UserWarning)
        folds = StratifiedKFold(cfg.train.folds, shuffle=True, random_state=cfg.seed)
        return list(folds.split(np.zeros(len(labels)), strata))


def _split_key(names: list[str], split: tuple[np.ndarray, np.ndarray], keep_last: bool) -> str:
    """Names the exact fit/held-out records (and whether the held-out part chose the epoch)."""
    text = "|".join(names[i] for i in split[0]) + "#" + "|".join(names[i] for i in split[1]) + ("#last" if keep_last else "")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _train_member(job: tuple[int, int, int]) -> dict:
    """Fit one member on the shared arrays; returns its weights and held-out probabilities (None
    for a refit on every record)."""
    from pipeline.device import resolve_device
    from pipeline.ecg.train import fit_model, softmax
    from pipeline.training import predict_logits

    view, seed, fold = job
    cfg, split, progress = _SHARED["cfg"], _SHARED["splits"][fold], _SHARED["progress"]
    kfold = cfg.model.selection == "kfold"
    mcfg = member_config(cfg, view, seed)
    arrays, n_features = _SHARED["arrays"][view]
    refit = not len(split[1])
    key = member_key(cfg, view, seed, "all" if refit else f"f{fold}" if kfold else "")
    # named without the view index: another ensemble may list the same member at another position
    checkpoint = _SHARED["work"] / f"{mcfg.model.name}-s{seed}-{member_fingerprint(mcfg)}-{_SHARED['split_keys'][fold]}.pt"
    model, result, to_input = fit_model(mcfg, arrays, n_features, checkpoint, key, progress, split=split, keep_last=kfold)
    val_probs = None if refit else softmax(predict_logits(model, arrays.subset(split[1]), resolve_device(mcfg.train.device), to_input))
    return {"view": view, "seed": seed, "fold": fold, "key": key, "state": {k: v.cpu() for k, v in model.state_dict().items()},
            "n_features": n_features, "val_probs": val_probs, "best_epoch": result.best_epoch,
            "seconds": result.seconds}


def _run_jobs(jobs: list[tuple[int, int, int]], parallel: int, progress: bool) -> list[dict]:
    if parallel <= 1 or len(jobs) == 1:
        return [_train_member(job) for job in jobs]
    import multiprocessing

    # fork: children inherit the arrays without pickling them; the parent has run no torch op yet.
    # multiprocessing.Pool (not concurrent.futures) because leaving its block terminates the
    # children: Ctrl-C or SIGTERM must not leave members training in the background.
    context = multiprocessing.get_context("fork")
    results = []
    with _default_sigterm_while_forking():
        pool = context.Pool(min(parallel, len(jobs)), initializer=_die_on_sigterm)
    with pool:
        for result in pool.imap(_train_member, jobs):
            if progress:
                print(f"member {result['key']}: best epoch {result['best_epoch']}, trained {result['seconds']} s", flush=True)
            results.append(result)
    return results


@contextmanager
def _default_sigterm_while_forking():
    """Fork pool workers with SIGTERM's default action: a worker SIGTERMed before its initializer
    ran still had the CLI's raising handler and could die holding the task queue's lock, leaving
    the parent joining it forever (seen under load). Signal handlers belong to the main thread:
    elsewhere (a flow's task thread) nothing is changed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _die_on_sigterm() -> None:
    """Pool workers die on SIGTERM, as ``Pool.terminate()`` expects. Inheriting the CLI's handler
    (which raises SystemExit to unwind) once left an idle worker blocked on the task queue's lock
    and the parent joining it forever at the end of the block (~1 pool in 500-1500)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def combine_views(member_probs: np.ndarray, labels: np.ndarray, views: list[int], subset, fit_weights: bool):
    """Fit the combiner on the members of the views in ``subset``; returns (rows used, their weights,
    temperature, combined probabilities)."""
    from pipeline.ecg.combine import combine, fit_combiner

    rows = [i for i, v in enumerate(views) if v in subset]
    dense = np.unique([views[i] for i in rows], return_inverse=True)[1]  # views 0..k-1 for the fit
    weights, temperature = fit_combiner(member_probs[rows], labels, list(dense), fit_weights=fit_weights)
    return rows, weights, temperature, combine(member_probs[rows], weights, temperature)


def fit_cascade(member_probs: np.ndarray, rows: list[int], row_weights: np.ndarray, temperature: float,
                full_probs: np.ndarray, is_signal: list[bool], max_changed: int) -> dict:
    """The cascade's exit threshold on held-out probabilities (``rows`` of ``member_probs`` with
    their combiner weights; ``is_signal`` per row: the view reads no scalogram) and what it does
    there; ``{"skipped": why}`` when the chosen views are not a mix of signal and scalogram views."""
    from pipeline.ecg.combine import cascade_exits, cascade_threshold, combine

    signal = [i for i, flag in enumerate(is_signal) if flag]
    if not signal or len(signal) == len(rows):
        return {"skipped": "the chosen views are all " + ("scalogram" if not signal else "signal") + " views"}
    weights = np.asarray(row_weights)[signal]
    signal_probs = combine(member_probs[[rows[i] for i in signal]], weights / weights.sum(), temperature)
    threshold = cascade_threshold(signal_probs, full_probs, max_changed)
    exits = cascade_exits(signal_probs, threshold)
    probs = np.where(exits[:, None], signal_probs, full_probs)
    return {"threshold": threshold, "exit_fraction": float(exits.mean()),
            "changed": int((probs.argmax(1) != full_probs.argmax(1)).sum()), "probs": probs}


def choose_views(member_probs: np.ndarray, labels: np.ndarray, views: list[int], cfg: EcgConfig) -> list[dict]:
    """Every non-empty subset of views (or only all of them) scored on held-out probabilities,
    best first: highest accuracy, then lowest log-loss."""
    from itertools import combinations

    present = sorted(set(views))
    subsets = ([c for size in range(1, len(present) + 1) for c in combinations(present, size)]
               if cfg.model.select_views else [tuple(present)])
    table = []
    for subset in subsets:
        _, _, _, probs = combine_views(member_probs, labels, views, subset, cfg.model.view_weights == "fitted")
        picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
        table.append({"views": list(subset), "accuracy": float((probs.argmax(1) == labels).mean()),
                      "log_loss": float(-np.log(picked).mean())})
    return sorted(table, key=lambda row: (-row["accuracy"], row["log_loss"]))


def train_ensemble(cfg: EcgConfig, dataset, folder: Path, run_id: str, progress: bool = True) -> dict:
    """Train every member, fit the combiner (and, with ``select_views``, choose the views), write
    the ensemble folder; return its metrics.

    ``selection: validation`` scores members on one validation part; ``kfold`` on the out-of-fold
    probabilities of every training record, each view and seed contributing one model per fold.
    Member checkpoints are kept in ``<PIPELINE_WORK>/ecg/members/``, named by the member's
    config and the exact fit/held-out records, so another ensemble that shares a member
    (same network, seed, data and split) reuses it instead of training it again.
    """
    from pipeline.device import resolve_device
    from pipeline.ecg.bundle import member_meta, save_ensemble
    from pipeline.ecg.train import build_arrays, input_kind_of, work_root
    from pipeline.models import create_model
    from pipeline.models.rule import rule_predict

    kfold = cfg.model.selection == "kfold"
    labels, flutter = dataset.labels(cfg.classes), dataset.flutter()
    splits = fit_splits(cfg, labels, flutter)
    names = [r.name for r in dataset.records]
    work = work_root() / "ecg" / "members"
    work.mkdir(parents=True, exist_ok=True)
    arrays, cache, kinds = {}, {}, {}
    for view in range(len(cfg.model.members)):
        mcfg = member_config(cfg, view, 0)
        kinds[view] = input_kind_of(mcfg)
        token = (kinds[view], mcfg.model.rhythm_features)
        if token not in cache:
            cache[token] = build_arrays(dataset, mcfg, kinds[view])
        arrays[view] = cache[token]
    parallel = 1 if resolve_device(cfg.train.device).type == "cuda" else cfg.train.parallel

    def train(jobs: list[tuple[int, int, int]], parts: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
        jobs = sorted(jobs, key=lambda job: kinds[job[0]] != "scalogram")  # slow scalogram networks first: no straggler
        _SHARED.update(cfg=cfg, work=work, splits=parts, split_keys=[_split_key(names, s, kfold) for s in parts],
                       progress=progress and parallel <= 1, arrays=arrays)
        try:
            return sorted(_run_jobs(jobs, parallel, progress), key=lambda r: (r["view"], r["seed"], r["fold"]))
        finally:
            _SHARED.clear()

    results = train([(view, seed, fold) for view, member in enumerate(cfg.model.members) for seed in member.seeds
                     for fold in range(len(splits))], splits)

    # held-out probabilities of each view and seed: its fold models' out-of-fold predictions pieced together
    index = np.arange(len(labels)) if kfold else splits[0][1]
    held_out: dict[tuple[int, int], np.ndarray] = {}
    for r in results:
        probs = held_out.setdefault((r["view"], r["seed"]), np.zeros((len(labels), len(cfg.classes)), np.float32))
        probs[splits[r["fold"]][1]] = r["val_probs"]
    scored_keys = list(held_out)
    member_probs = np.stack([held_out[k][index] for k in scored_keys])
    eval_labels, views = labels[index], [v for v, _ in scored_keys]
    selection = choose_views(member_probs, eval_labels, views, cfg)
    chosen = selection[0]["views"]
    rows, row_weights, temperature, ensemble_probs = combine_views(member_probs, eval_labels, views, chosen,
                                                                   cfg.model.view_weights == "fitted")
    if not np.isfinite(ensemble_probs).all():
        raise UserError("ensemble produced non-finite probabilities on the held-out records")
    cascade = None
    if cfg.model.cascade is not None:
        cascade = fit_cascade(member_probs, rows, row_weights, temperature, ensemble_probs,
                              [kinds[views[r]] != "scalogram" for r in rows], cfg.model.cascade.max_changed)
        if "probs" in cascade:  # scored as it will predict
            cascade["full_accuracy"] = float((ensemble_probs.argmax(1) == eval_labels).mean())
            ensemble_probs = cascade.pop("probs")
    view_weight = {v: 0.0 for v in range(len(cfg.model.members))}
    for row, weight in zip(rows, row_weights):
        view_weight[views[row]] += float(weight)
    if cfg.model.refit_members:  # every training record, no held-out part
        first_seed = {v: cfg.model.members[v].seeds[0] for v in chosen}
        published = train([(v, first_seed[v] + i, 0) for v in chosen for i in range(cfg.model.refit_members)],
                          [(np.arange(len(labels)), np.arange(0))])
    else:
        published = [r for r in results if r["view"] in chosen and r["fold"] < (cfg.model.fold_members or len(splits))]
    per_view = {v: sum(r["view"] == v for r in published) for v in chosen}
    weights = [view_weight[r["view"]] / per_view[r["view"]] for r in published]
    rule_probs = rule_predict(dataset.features()[index], tuple(cfg.classes))

    def scored(probs: np.ndarray) -> dict:
        pred = probs.argmax(1)
        report = classification_report(eval_labels, pred, cfg.classes)
        report.update(calibration=calibration_report(eval_labels, probs), flutter=subgroup_recall(eval_labels, pred, flutter[index]))
        return report

    members = []
    for r in published:
        mcfg = member_config(cfg, r["view"], r["seed"])
        model = create_model(mcfg.model.name, n_classes=len(cfg.classes), n_features=r["n_features"],
                             **{k: v for k, v in mcfg.model.args.items() if k != "pretrained"})
        model.load_state_dict(r["state"])
        members.append((member_meta(mcfg, kinds[r["view"]], r["n_features"], r["key"]), model))
    member_reports = {}
    for (view, seed), probs in zip(scored_keys, member_probs):
        fits = [r for r in results if (r["view"], r["seed"]) == (view, seed)]
        seconds = [r["seconds"] for r in fits]
        member_reports[member_key(cfg, view, seed)] = {
            **_short(scored(probs)), "best_epoch": "last" if kfold else fits[0]["best_epoch"],
            "seconds": None if None in seconds else round(sum(seconds), 1), "fits": len(fits),
            "weight": view_weight[view] / sum(v == view for v in views)}
    validation = {"scheme": cfg.model.selection, "folds": len(splits) if kfold else None,
                  "n_records": int(len(index)), "records": [names[i] for i in index],
                  "ensemble": scored(ensemble_probs), "rule": scored(rule_probs), "members": member_reports,
                  "views": chosen, "selection": selection if cfg.model.select_views else None,
                  "weights": [float(w) for w in weights], "temperature": temperature,
                  "refit": {r["key"]: r["seconds"] for r in published} if cfg.model.refit_members else None,
                  "cascade": cascade}
    extra = {"run_id": run_id}
    if cascade and "threshold" in cascade:
        extra["cascade"] = {"members": [i for i, r in enumerate(published) if kinds[r["view"]] != "scalogram"],
                            "threshold": cascade["threshold"]}
    save_ensemble(folder, cfg, members, weights, temperature, extra)
    where = f"{len(splits)}-fold out-of-fold" if kfold else "validation part"
    plot_reliability(validation["ensemble"]["calibration"], folder / "reliability.png", f"{cfg.name}: {where}")
    return {"validation": validation, "device": str(resolve_device(cfg.train.device)), "parallel": parallel}


def _short(report: dict) -> dict:
    return {k: report[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")} | {
        "ece": report["calibration"]["ece"], "flutter": report["flutter"]}
