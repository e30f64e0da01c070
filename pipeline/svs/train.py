"""Two-stage training of a mask network, resumable, published as a self-describing run.

Stage 1 pre-trains the network as an autoencoder on voice spectrograms (output regresses
the voice features; Lin et al. 2018's parameter initialisation). Stage 2 trains it with
sigmoid cross-entropy against the smoothed IBM of remixed mixtures. A checkpoint (model,
optimiser, RNG, step, stage) is saved every ``val_every`` steps in a work folder keyed by
the config hash, so re-running the same command after an interruption resumes.
At the end the best-validation weights are scored on the held-out split (with oracle and
mixture) and published to ``models/svs/<name>/<run_id>/`` with a model card.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from pipeline.config import REPO_ROOT, config_hash, dump_config
from pipeline.errors import UserError
from pipeline.scratch import scratch_dir
from pipeline.svs.config import SvsConfig

log = logging.getLogger(__name__)


def work_dir_for(cfg: SvsConfig, data_key: str) -> Path:
    """Checkpoint folder: keyed by the config minus its stopping rule (so a run can be extended)."""
    root = Path(os.environ.get("PIPELINE_WORK", REPO_ROOT / "artifacts" / "work"))
    same_run = cfg.model_copy(deep=True)
    same_run.train.steps, same_run.train.time_budget_min = 1, None
    return root / "svs" / f"{cfg.name}-{config_hash(same_run)}-{data_key}"


class _Clock:
    """Wall and process-CPU seconds, continuing from a resumed checkpoint."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0):
        self._w0 = time.perf_counter() - wall
        self._c0 = time.process_time() - cpu

    def wall(self) -> float:
        return time.perf_counter() - self._w0

    def cpu(self) -> float:
        return time.process_time() - self._c0


def _batch_tensors(sampler, cfg: SvsConfig, size: int, device=None):
    """Mixture features, voice features, IBM labels and bin weights for one batch on ``device``,
    ``(B, bins, frames)`` (features ``(B, channels, bins, frames)`` with ``stft.extra_windows``);
    the STFTs run on the device too."""
    import torch

    from pipeline.svs.transforms import ideal_binary_mask, network_input, resolutions, stft

    voice, acc = sampler.batch(size)
    if cfg.train.input_rms_db is not None:
        gain = patch_gains(voice + acc, cfg.train.input_rms_db)
        voice, acc = voice * gain, acc * gain
    res = resolutions(cfg.stft)  # the main STFT, then any extra windows (multi-resolution input)
    vs = [stft(torch.from_numpy(voice).to(device), r) for r in res]
    aug = cfg.train.augment
    if aug.shift_p > 0:
        for i in range(size):
            if sampler.rng.random() < aug.shift_p:
                factor = 2 ** (sampler.rng.uniform(*aug.shift_semitones) / 12)
                for v in vs:  # the same shift at every resolution
                    v[i] = shift_spectrum(v[i], factor)
    acc_t = torch.from_numpy(acc).to(device)
    accs = [stft(acc_t, r) for r in res]
    mix_mags = [(v + a).abs() for v, a in zip(vs, accs)]
    mix_feat = network_input(mix_mags, cfg.stft)
    voice_feat = network_input([v.abs() for v in vs], cfg.stft)
    label = ideal_binary_mask(vs[0], accs[0], cfg.ibm.smooth)
    return mix_feat, voice_feat, label, bin_weights(mix_mags[0], cfg.train.loss_weight_power)


def patch_gains(mixture: np.ndarray, rms_db: float) -> np.ndarray:
    """Per-patch gains ``(B, 1)`` that bring each row of ``mixture`` to ``rms_db`` dBFS RMS (1 for
    silent rows): training sees every patch at the level inference scales its chunks to."""
    from pipeline.svs.separate import input_gain

    return np.array([[input_gain(row[None], rms_db)] for row in mixture], dtype=np.float32)


def bin_weights(mix_mag, power: float):
    """Per-bin cross-entropy weights ``|M|^power``, mean 1 per patch (power 0: plain BCE).

    Most time-frequency bins are near-silent and their IBM label is arbitrary, while the
    separated signal's quality (SDR) is decided by the loud bins; ``power > 0`` spends the
    loss where the energy is.
    """
    if power == 0:
        return None
    w = mix_mag.pow(power)
    return w / w.mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)


def shift_spectrum(spec, factor: float):
    """Scale the frequency axis of a complex ``(bins, frames)`` spectrogram by ``factor``.

    A cheap pitch-and-formant shift for augmentation: magnitudes are linearly interpolated
    at ``bin / factor``, phases taken from the nearest source bin. Only magnitudes (inputs
    and IBM labels) are used in training, so the approximate phase does not matter much.
    """
    import torch

    n_bins = spec.shape[0]
    src = torch.arange(n_bins, dtype=torch.float32, device=spec.device) / factor
    lo = src.floor().long().clamp(0, n_bins - 1)
    hi = (lo + 1).clamp(0, n_bins - 1)
    w = (src - lo.float()).clamp(0, 1).unsqueeze(1)
    mag = spec.abs()
    new_mag = mag[lo] * (1 - w) + mag[hi] * w
    phase = torch.angle(spec[src.round().long().clamp(0, n_bins - 1)])
    new_mag[src > n_bins - 1] = 0
    return torch.polar(new_mag, phase)


def train_separator(cfg: SvsConfig, data, store=None, progress: bool = True, *, work_dir: Path | None = None,
                    resume: bool = True) -> dict:
    """Train ``cfg`` on the tracks under ``data`` and publish the model.

    Args:
        cfg: resolved :class:`SvsConfig`.
        data: folder in the shared layout (or raw MIR-1K / MUSDB stems).
        store: :class:`~pipeline.store.Store` (default ``Store.open()``).
        progress: print a progress line per validation.

    Returns:
        ``{"uri", "run_id", "metrics"}``; metrics hold the held-out GNSDR/GSIR/GSAR, the
        oracle and mixture numbers, and the training time.
    """
    import torch

    from pipeline.device import device_info, resolve_device, seed_everything
    from pipeline.store import Store, new_run_id, validate_id
    from pipeline.svs.bundle import LoadedSeparator, TorchRunner, save_bundle
    from pipeline.svs.data import PatchSampler, discover_tracks, split_tracks
    from pipeline.svs.evaluate import evaluate_tracks
    from pipeline.svs.model_card import write_model_card
    from pipeline.svs.models import count_parameters, create_separator

    validate_id(cfg.name, "model name")
    store = store or Store.open()
    torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.seed)
    tracks, notes = discover_tracks(data, cfg.split.singers)
    split = split_tracks(tracks, cfg.split, cfg.seed)
    if not split["train"]:
        raise UserError("the split left no training tracks")
    say = print if progress else log.info  # a flow shows the log lines (PREFECT_LOGGING_EXTRA_LOGGERS=pipeline)
    for note in notes:
        say(f"note: {note}")
    say(f"tracks: {len(split['train'])} train, {len(split['val'])} val, {len(split['test'])} test "
        f"(split by {cfg.split.by})")
    sr = cfg.stft.sample_rate
    waves = {k: [t.load(sr) for t in v] for k, v in split.items() if k != "test"}
    model = create_separator(cfg.model.name, cfg.stft.n_bins, in_channels=cfg.stft.in_channels, **cfg.model.args)
    if cfg.train.init_from:
        init_weights(model, cfg, split, store)
        say(f"initialised from {cfg.train.init_from}; stage 1 skipped")
    model = model.to(device, memory_format=torch.channels_last)  # ~1.2x per CPU step in an A/B (BENCHMARKS.md)
    patch = getattr(model, "patch_frames", None) or cfg.train.patch_frames
    sampler = PatchSampler(waves["train"], cfg.stft.hop, patch, cfg.train.augment, cfg.seed)
    val_batches = []
    if waves["val"]:
        from pipeline.svs.config import SvsAugment

        val_sampler = PatchSampler(waves["val"], cfg.stft.hop, patch, SvsAugment(remix_p=0.0, gain_db=(0.0, 0.0)), cfg.seed + 1)
        val_batches = [_batch_tensors(val_sampler, cfg, cfg.train.batch_size, device) for _ in range(8)]

    data_key = f"{len(tracks)}t"
    work = work_dir or work_dir_for(cfg, data_key)
    ckpt_path = work / "checkpoint.pt"
    state = {"stage": "pretrain", "step": 0, "elapsed": 0.0, "cpu": 0.0, "history": [], "best": None, "best_val": math.inf}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.pretrain_lr, weight_decay=cfg.train.weight_decay)
    if resume and ckpt_path.is_file():
        saved = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        state = saved["state"]
        if state["stage"] == "train":
            opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        opt.load_state_dict(saved["optim"])
        sampler.rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        say(f"resumed from {ckpt_path} at {state['stage']} step {state['step']}")

    def checkpoint() -> None:
        state["elapsed"], state["cpu"] = clock.wall(), clock.cpu()
        work.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "state": state,
                    "rng": sampler.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt_path)

    say(f"model {cfg.model.name}: {count_parameters(model):,} parameters; patches of {patch} frames; device {device}")
    clock = _Clock(state["elapsed"], state.get("cpu", 0.0))
    budget = cfg.train.time_budget_min * 60 if cfg.train.time_budget_min else None

    # -- stage 1: autoencoder on voice spectrograms ------------------------------------
    model.train()
    while state["stage"] == "pretrain" and state["step"] < cfg.train.pretrain_steps and not cfg.train.init_from:
        _, voice_feat, _, _ = _batch_tensors(sampler, cfg, cfg.train.batch_size, device)
        target = voice_feat[:, 0] if voice_feat.dim() == 4 else voice_feat  # multi-resolution: the main one
        loss = torch.nn.functional.mse_loss(model(voice_feat), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["step"] += 1
        if state["step"] % cfg.train.val_every == 0 or state["step"] == cfg.train.pretrain_steps:
            state["history"].append({"stage": "pretrain", "step": state["step"], "loss": float(loss.detach()),
                                     "t": round(clock.wall(), 1), "cpu": round(clock.cpu(), 1)})
            say(f"pretrain step {state['step']}/{cfg.train.pretrain_steps} mse {float(loss.detach()):.4f} "
                f"({clock.wall():.0f} s wall, {clock.cpu():.0f} s CPU)")
            checkpoint()
    if state["stage"] == "pretrain":
        state.update(stage="train", step=0)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    pretrain_s = state.setdefault("pretrain_s", clock.wall())
    pretrain_cpu = state.setdefault("pretrain_cpu", clock.cpu())

    # -- stage 2: cross-entropy against the IBM -----------------------------------------
    running = []
    while state["step"] < cfg.train.steps:
        spent = clock.cpu() - pretrain_cpu  # the budget is CPU time of stage 2 (fair on a shared box)
        if budget and spent >= budget:
            say(f"CPU-time budget of {cfg.train.time_budget_min} min reached at step {state['step']}")
            break
        progress_frac = max(state["step"] / cfg.train.steps, spent / budget if budget else 0.0)
        for group in opt.param_groups:
            group["lr"] = cfg.train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress_frac, 1.0))))
        model.train()
        mix_feat, _, label, weight = _batch_tensors(sampler, cfg, cfg.train.batch_size, device)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(mix_feat), label, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        state["step"] += 1
        if state["step"] % cfg.train.val_every == 0:
            _validate(model, val_batches, state, running, clock, say, cfg)
            running = []
            checkpoint()
    if running or not state["history"] or state["history"][-1].get("stage") != "train":
        _validate(model, val_batches, state, running, clock, say, cfg)
    train_seconds, train_cpu = clock.wall(), clock.cpu()
    if state["best"] is not None:
        model.load_state_dict(state["best"])
    model = model.cpu().eval()  # evaluation and export run on the CPU, as separation does

    # -- evaluate on held-out songs, publish --------------------------------------------
    run_id = new_run_id()
    meta_extra = {
        "run_id": run_id,
        "split": {k: [t.track_id for t in v] for k, v in split.items()},
        "split_by": cfg.split.by,
        "train_seconds": round(train_seconds, 1),
        "pretrain_seconds": round(pretrain_s, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "pretrain_cpu_seconds": round(pretrain_cpu, 1),
        "train_steps": state["step"],
        "threads": cfg.train.threads,
        **device_info(device),
        "n_parameters": count_parameters(model),
        "history": state["history"],
    }
    meta = {"task": "svs", "name": cfg.name, "model_name": cfg.model.name, "model_args": cfg.model.args,
            "n_bins": cfg.stft.n_bins, "config": cfg.model_dump(mode="json"), **meta_extra}
    report = None
    with scratch_dir("pipeline-svs-train-") as tmp:
        tmp = Path(tmp)
        if split["test"]:
            sep = LoadedSeparator(tmp, meta, TorchRunner(model), run_id)
            scored = split["test"]
            if cfg.train.eval_max_tracks and len(scored) > cfg.train.eval_max_tracks:
                picks = np.linspace(0, len(scored) - 1, cfg.train.eval_max_tracks).round().astype(int)
                scored = [scored[i] for i in sorted(set(picks))]
            say(f"evaluating on {len(scored)} of {len(split['test'])} held-out tracks ...")
            report = evaluate_tracks(scored, sep, tmp / "eval", progress=progress)
        metrics = _headline(report, train_seconds)
        metrics["train_cpu_seconds"] = round(train_cpu, 1)
        save_bundle(tmp / "model", cfg, model, extra={**meta_extra, "metrics": metrics, "evaluation": report})
        (tmp / "model" / "config.yaml").write_text(dump_config(cfg))
        files = {p.name: p for p in sorted((tmp / "model").iterdir())}
        if report is not None:
            files.update({"eval_report.json": tmp / "eval" / "report.json", "eval_tracks.csv": tmp / "eval" / "tracks.csv",
                          "eval_gnsdr.png": tmp / "eval" / "gnsdr.png",
                          "eval_report.html": tmp / "eval" / "report.html"})
        write_model_card(tmp / "MODEL_CARD.md", cfg, meta_extra, report, data=str(data))
        files["MODEL_CARD.md"] = tmp / "MODEL_CARD.md"
        prefix = ("models", "svs", cfg.name)
        uri = store.publish_run(
            (*prefix, run_id), files, kind="svs-model", config=cfg.model_dump(mode="json"), metrics=metrics,
            inputs=[{"track": t.track_id} for t in split["train"]],
            extra={"split": meta_extra["split"], "config_hash": config_hash(cfg), "device": device_info(device)},
        )
        store.set_latest(prefix, run_id)
    if ckpt_path.is_file():
        ckpt_path.unlink()
    say(uri)
    return {"uri": uri, "run_id": run_id, "metrics": metrics}


def init_weights(model, cfg: SvsConfig, split: dict, store) -> None:
    """Load ``cfg.train.init_from``'s weights into ``model`` (continued training).

    Refused when the network differs, or when a song this run validates or tests on was a
    training song of the earlier run: its scores would then be on trained-on audio.
    """
    from pipeline.svs.bundle import resolve_model

    earlier = resolve_model(cfg.train.init_from, store, backend="torch")
    meta = earlier.meta
    windows = meta["config"]["stft"].get("extra_windows", [])
    if (meta["model_name"], meta["model_args"], meta["n_bins"], windows) != (
            cfg.model.name, cfg.model.args, cfg.stft.n_bins, cfg.stft.extra_windows):
        raise UserError(f"init_from {cfg.train.init_from}: its network ({meta['model_name']} {meta['model_args']}, "
                        f"{meta['n_bins']} bins, extra windows {windows}) differs from this config's")
    trained = set(meta.get("split", {}).get("train", []))
    leaked = sorted(t.track_id for part in ("val", "test") for t in split[part] if t.track_id in trained)
    if leaked:
        raise UserError(f"init_from {cfg.train.init_from} was trained on {len(leaked)} tracks this run holds out "
                        f"(e.g. {leaked[0]}); use the same split and seed")
    model.load_state_dict(earlier.runner.model.state_dict())


def _validate(model, val_batches, state, running, clock, say, cfg) -> None:
    import torch

    elapsed = clock.wall()
    entry = {"stage": "train", "step": state["step"], "t": round(elapsed, 1), "cpu": round(clock.cpu(), 1),
             "train_bce": float(np.mean(running)) if running else None}
    if val_batches:
        model.eval()
        with torch.no_grad():
            val = float(np.mean([
                torch.nn.functional.binary_cross_entropy_with_logits(model(m), y, weight=w).item()
                for m, _, y, w in val_batches
            ]))
        entry["val_bce"] = val
        if val < state["best_val"]:
            state["best_val"] = val
            state["best"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            entry["best"] = True
    state["history"].append(entry)
    tb = f"{entry['train_bce']:.4f}" if entry["train_bce"] is not None else "-"
    vb = f"{entry['val_bce']:.4f}" if "val_bce" in entry else "-"
    say(f"step {state['step']}/{cfg.train.steps} train bce {tb} val bce {vb} ({elapsed:.0f} s wall, {clock.cpu():.0f} s CPU)")


def _headline(report: dict | None, train_seconds: float) -> dict:
    metrics: dict = {"train_seconds": round(train_seconds, 1)}
    if report:
        metrics.update({
            "gnsdr_vocals": report["gnsdr"]["vocals"], "gnsdr_accompaniment": report["gnsdr"]["accompaniment"],
            "gsir_vocals": report["gsir"]["vocals"], "gsar_vocals": report["gsar"]["vocals"],
            "oracle_gnsdr_vocals": report["oracle_ibm"]["gnsdr"]["vocals"],
            "mixture_gsdr_vocals": report["mixture"]["gsdr"]["vocals"],
            "test_tracks": report["n_tracks"], "test_seconds": report["seconds"],
        })
    return metrics
