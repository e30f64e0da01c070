"""MODEL_CARD.md for a trained separator: data, config, held-out numbers, cost, reproduction."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import display_path, dump_config


def _row(label: str, block: dict) -> str:
    g = block
    return (f"| {label} | {g['gnsdr']['vocals']:.2f} | {g['gsir']['vocals']:.2f} | {g['gsar']['vocals']:.2f} "
            f"| {g['gnsdr']['accompaniment']:.2f} | {g['gsir']['accompaniment']:.2f} | {g['gsar']['accompaniment']:.2f} |")


def results_table(report: dict) -> str:
    """Markdown table: model, oracle IBM and mixture rows (dB)."""
    lines = [
        "| estimate | GNSDR voc | GSIR voc | GSAR voc | GNSDR acc | GSIR acc | GSAR acc |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row("**model**", report),
        _row("oracle IBM (ceiling)", report["oracle_ibm"]),
        _row("mixture (floor)", report["mixture"]),
    ]
    return "\n".join(lines)


def _config_file(cfg) -> str:
    """The shipped config that trains ``cfg``: continued runs have their own file."""
    return f"configs/svs/{cfg.name}{'-continued' if cfg.train.init_from else ''}.yaml"


def write_model_card(path: Path, cfg, meta: dict, report: dict | None, data: str, extra_sections: str = "") -> None:
    """Write ``MODEL_CARD.md`` from the resolved config, the run metadata and the held-out report."""
    split = meta["split"]
    data = display_path(data)
    songs = lambda ids: sorted({i.rsplit("_", 1)[0] for i in ids})  # noqa: E731
    parts = [
        f"# Model card: `{cfg.name}` (run `{meta['run_id']}`)",
        "",
        f"Singing-voice separator: a `{cfg.model.name}` network ({meta['n_parameters']:,} parameters) classifies "
        "every time-frequency bin of the mixture's magnitude spectrogram as voice or accompaniment "
        + (f"(it also reads the log-magnitude STFTs of {', '.join(map(str, cfg.stft.extra_windows))}-sample windows, "
           "interpolated onto the main bins, as extra input channels) " if cfg.stft.extra_windows else "")
        + "(Ideal Binary Mask target, sigmoid cross-entropy; Lin et al. 2018"
        + (f"; each bin's loss weighted by |mixture|^{cfg.train.loss_weight_power:g}" if cfg.train.loss_weight_power else "")
        + "), after autoencoder "
        "pre-training on voice spectrograms. At inference voice probabilities below "
        f"{cfg.ibm.threshold} are zeroed and the rest scale the mixture magnitude; the mixture phase is "
        "reused; accompaniment = mixture - vocals"
        + (f"; each chunk is scaled to {cfg.separate.input_rms_db:g} dBFS RMS before the network"
           if cfg.separate.input_rms_db is not None else "")
        + ". No Wiener filter.",
        "",
        "## Data",
        f"* Source: `{data}` (MIR-1K clips of singers {', '.join(cfg.split.singers)} only; 16 kHz mono; research use only).",
        f"* Split by **{cfg.split.by}** (never by frame): {len(split['train'])} train clips, "
        f"{len(split['val'])} validation clips, {len(split['test'])} held-out test clips.",
        f"* Held-out songs: {', '.join(songs(split['test'])) or '-'}",
        f"* Validation songs: {', '.join(songs(split['val'])) or '-'}",
        "* Augmentation: with probability "
        f"{cfg.train.augment.remix_p} a voice is remixed with another training clip's accompaniment at a "
        f"voice/music ratio in {list(cfg.train.augment.ratio_db)} dB; random gain {list(cfg.train.augment.gain_db)} dB"
        + (f"; with probability {cfg.train.augment.shift_p} the voice spectrum is shifted by "
           f"{list(cfg.train.augment.shift_semitones)} semitones (pitch and formants)" if cfg.train.augment.shift_p else "")
        + (f"; every patch then scaled to {cfg.train.input_rms_db:g} dBFS RMS, the level inference feeds the network."
           if cfg.train.input_rms_db is not None else "."),
        "",
        "## Results on held-out songs",
    ]
    if report:
        parts += [
            f"{report['n_tracks']} clips, {report['seconds']:.1f} s, singers {', '.join(report['singers'])}; "
            "mono, model rate; `mir_eval.separation.bss_eval_sources`; G = length-weighted mean; "
            "NSDR = SDR - SDR(mixture). All in dB.",
            "",
            results_table(report),
            "",
            f"Mixture SDR (the NSDR reference): vocals {report['mixture']['gsdr']['vocals']:.2f}, "
            f"accompaniment {report['mixture']['gsdr']['accompaniment']:.2f}.",
        ]
    else:
        parts.append("No held-out tracks were evaluated.")
    parts += [
        "",
        extra_sections,
        "## Training cost",
        f"* {meta['train_seconds'] / 60:.1f} min wall time in total ({meta['pretrain_seconds'] / 60:.1f} min "
        f"autoencoder pre-training), {meta['train_steps']} cross-entropy steps of "
        f"{cfg.train.batch_size} patches on `{meta.get('device', 'cpu')}`, torch with {meta['threads']} CPU thread(s).",
        *([f"* Process CPU time: {meta['train_cpu_seconds'] / 60:.1f} min in total "
           f"({meta['pretrain_cpu_seconds'] / 60:.1f} min pre-training); stage 2 stops after "
           f"{cfg.train.time_budget_min} CPU-min (`train.time_budget_min`)."]
          if "train_cpu_seconds" in meta else []),
        *([f"* Continued from `{cfg.train.init_from}` (stage 1 skipped): the numbers above are this run's "
           "only; that run's own cost is in its card."] if cfg.train.init_from else []),
        "",
        "## Reproduce",
        "```",
        f"pipeline train separator --config {_config_file(cfg)} --data {data}",
        f"pipeline evaluate separator {data} --model {cfg.name}@{meta['run_id']} --subset test",
        "```",
        "",
        "## Config (resolved)",
        "```yaml",
        dump_config(cfg).rstrip(),
        "```",
        "",
        "## Limits",
        "* Trained on two amateur singers of Chinese karaoke pop at 16 kHz; other styles, "
        "professional mixes and wide-band audio are out of distribution (content above 8 kHz "
        "goes to the accompaniment).",
        f"* The 0.02/0.98-smoothed IBM target follows the paper, the threshold is {cfg.ibm.threshold:g} (the paper's: 0.35); "
        "other thresholds trade SIR for SAR.",
        "",
    ]
    path.write_text("\n".join(parts))


def heldout_section(title: str, rows: list[tuple[str, dict, dict]]) -> str:
    """A model-card section from ``(label, model_meta, report)`` rows of other runs."""
    lines = [f"## {title}", "",
             "| run | train on | test on | clips | GNSDR voc | GSIR voc | GSAR voc | oracle GNSDR voc | GNSDR acc | stage-2 CPU min |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, meta, rep in rows:
        train_singers = sorted({t.split("_")[0] for t in meta["split"]["train"]})
        lines.append(
            f"| {label} | {', '.join(train_singers)} | {', '.join(rep['singers'])} | {rep['n_tracks']} "
            f"| {rep['gnsdr']['vocals']:.2f} | {rep['gsir']['vocals']:.2f} | {rep['gsar']['vocals']:.2f} "
            f"| {rep['oracle_ibm']['gnsdr']['vocals']:.2f} | {rep['gnsdr']['accompaniment']:.2f} "
            f"| {(meta.get('train_cpu_seconds', 0) - meta.get('pretrain_cpu_seconds', 0)) / 60:.1f} |")
    return "\n".join(lines) + "\n"


def refresh_model_card(store, prefix: tuple[str, ...], extra_sections: str = "") -> str:
    """Re-write a published run's ``MODEL_CARD.md`` from its ``model.json`` (and re-sign the manifest).

    Returns the new card text. Use it after improving the card writer, or to add sections.
    """
    import json
    import tempfile

    from pipeline.svs.config import SvsConfig

    with store.fs.open(store.path(*prefix, "model.json"), "rb") as handle:
        meta = json.loads(handle.read())
    cfg = SvsConfig.model_validate(meta["config"])
    with tempfile.TemporaryDirectory() as tmp:
        card = Path(tmp) / "MODEL_CARD.md"
        write_model_card(card, cfg, meta, meta.get("evaluation"), cfg.data or "DATA", extra_sections)
        text = card.read_text()
    _replace_card(store, prefix, text)
    return text


def _replace_card(store, prefix: tuple[str, ...], card: str) -> None:
    import hashlib
    import json

    manifest = store.read_manifest(*prefix)
    if manifest is None:
        raise FileNotFoundError(f"no manifest under {'/'.join(prefix)}")
    data = card.encode()
    store.put_bytes(data, *prefix, "MODEL_CARD.md")
    for output in manifest["outputs"]:
        if output["path"] == "MODEL_CARD.md":
            output.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    store.put_bytes(json.dumps(manifest, indent=2, default=str).encode(), *prefix, "manifest.json")


def amend_model_card(store, prefix: tuple[str, ...], marker: str, section: str) -> None:
    """Insert or replace a marked section of a published ``MODEL_CARD.md`` and re-sign the manifest.

    The manifest's checksum for the card is updated and the manifest rewritten last, so
    readers never see a card that disagrees with it.
    """
    with store.fs.open(store.path(*prefix, "MODEL_CARD.md"), "rb") as handle:
        card = handle.read().decode()
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    block = f"{begin}\n{section.rstrip()}\n{end}\n"
    if begin in card:
        head, rest = card.split(begin, 1)
        card = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        anchor = "## Training cost"
        card = card.replace(anchor, block + "\n" + anchor, 1) if anchor in card else card + "\n" + block
    _replace_card(store, prefix, card)
