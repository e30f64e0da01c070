"""YAML configs validated by pydantic; every output stores the resolved config beside it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import UserError, read_user_text

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


def repo_path(path: str | Path) -> str:
    """A path written in a config, relative to the repository root (not to the working folder, which
    differs between a shell and a Prefect worker); absolute paths and URLs are kept."""
    path = str(path)
    return path if "://" in path else str(REPO_ROOT / Path(path).expanduser())


def display_path(path: str | Path) -> str:
    """A data path as users should type it: relative to the repository when it lies beside it
    (``../shared/...``), so model cards and reports do not carry one machine's absolute paths."""
    path = str(path)
    if "://" in path:
        return path
    resolved = Path(path).resolve()
    return os.path.relpath(resolved, REPO_ROOT) if resolved.is_relative_to(REPO_ROOT.parent) else path


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class EcgPreprocess(StrictModel):
    fs: float = Field(500.0, gt=0, description="Sampling rate every record is resampled to (Hz).")
    median_windows_s: list[float] = Field(
        default_factory=lambda: [0.2, 0.6],
        description="Two-stage median filter windows (s) whose output is the baseline removed.",
    )
    median_rate_hz: float | None = Field(
        100.0, gt=0, description="Rate the median filters run at (baseline interpolated back); null = full rate."
    )
    bandpass_hz: tuple[float, float] | None = Field(
        None, description="Optional Butterworth band-limit (low, high) in Hz after baseline removal."
    )
    duration_s: float = Field(10.0, gt=0, description="Expected record length (s).")
    short_records: Literal["pad", "reject"] = "pad"
    min_duration_s: float = Field(8.0, gt=0, description="Shorter records are rejected even with pad.")

    @model_validator(mode="after")
    def _check_ranges(self) -> "EcgPreprocess":
        if any(not seconds > 0 for seconds in self.median_windows_s):
            raise ValueError("median_windows_s must be positive lengths in seconds")
        if self.bandpass_hz is not None and not 0 < self.bandpass_hz[0] < self.bandpass_hz[1]:
            raise ValueError("bandpass_hz must be (low, high) with 0 < low < high")
        if self.min_duration_s > self.duration_s:
            raise ValueError("min_duration_s cannot exceed duration_s")
        return self


class EcgScalogram(StrictModel):
    wavelet: str = Field("cmor1.5-1.0", description="pywt complex-Morlet name cmorB-C.")
    n_scales: int = Field(64, ge=4, le=256)
    f_min_hz: float = Field(0.5, gt=0)
    f_max_hz: float = Field(100.0, gt=0)
    window_s: float = Field(1.0, gt=0)
    scale_rows_per_lead: int = Field(
        16, ge=1, description="Rows per lead after antialiased resize of the scale axis."
    )
    time_cols_per_window: int = Field(
        64, ge=8, description="Columns per window after antialiased resize of the time axis."
    )

    @model_validator(mode="after")
    def _check_band(self) -> "EcgScalogram":
        if self.f_min_hz >= self.f_max_hz:
            raise ValueError("f_min_hz must be below f_max_hz")
        if self.scale_rows_per_lead > self.n_scales:
            raise ValueError("scale_rows_per_lead cannot exceed n_scales")
        return self


class EcgMember(StrictModel):
    """One view of a deep ensemble: a network trained once per seed."""

    name: Literal["timm_cnn", "cnn1d", "resnet1d", "cnn_lstm"]
    args: dict[str, Any] = Field(default_factory=dict)
    rhythm_features: bool = False
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides of the ensemble's train section.")


class EcgCascade(StrictModel):
    """Early exit for ensembles that mix signal and scalogram views: the scalogram (the costly CWT and
    CNNs) is computed only for records the signal views leave uncertain."""

    max_changed: int = Field(
        0, ge=0, description="The exit threshold is the lowest at which the cascade's held-out (out-of-fold or "
        "validation) predictions differ from the full ensemble's on at most this many records."
    )


class EcgModel(StrictModel):
    name: Literal["timm_cnn", "cnn1d", "resnet1d", "cnn_lstm", "rule", "ensemble"] = "cnn_lstm"
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the model.")
    rhythm_features: bool = Field(
        True, description="Feed heart-rate and RR-irregularity features into the network head."
    )
    members: list[EcgMember] = Field(
        default_factory=list, description="Ensemble views (name: ensemble): probabilities averaged with "
        "per-view weights and a temperature fitted on the validation part."
    )
    view_weights: Literal["fitted", "equal"] = Field(
        "fitted", description="Ensemble view weights fitted on the validation part, or equal (then only the "
        "temperature is fitted): with ~150 validation records a lucky seed can pull the fit to one view."
    )
    selection: Literal["validation", "kfold"] = Field(
        "validation", description="How ensemble members are fitted and judged: early-stopped on one validation "
        "part (its ~20% of the records fit the combiner), or cross-fitted: every view and seed trained once per "
        "fold of `train.folds` on the other folds for the full epochs (last epoch kept, so the left-out fold "
        "chooses nothing), the combiner fitted on out-of-fold probabilities of every training record."
    )
    cascade: EcgCascade | None = Field(
        None, description="Ensembles only: exit on the signal views' combined probability when it reaches a "
        "threshold chosen on the held-out predictions, else run every member (see EcgCascade)."
    )
    select_views: bool = Field(
        False, description="kfold only: publish the subset of views with the highest out-of-fold accuracy "
        "(ties: lower log-loss) instead of every view."
    )
    fold_members: int | None = Field(
        None, ge=1, description="kfold only: fold models kept per view and seed in the published ensemble "
        "(the first n folds; null = all). Fewer members predict faster; the out-of-fold score is of one model."
    )
    refit_members: int | None = Field(
        None, ge=1, description="kfold only: publish, instead of fold models, n refits of each chosen view on all "
        "training records (seeds s, s+1, ... from the view's first seed; same epochs, last kept). The folds choose the "
        "views and fit the combiner; the published members see every training record instead of (k-1)/k of them."
    )

    @model_validator(mode="after")
    def _check_members(self) -> "EcgModel":
        if (self.name == "ensemble") != bool(self.members):
            raise ValueError("members are required for (and only for) model name 'ensemble'")
        if self.selection != "kfold" and (self.select_views or self.fold_members or self.refit_members):
            raise ValueError("select_views, fold_members and refit_members need selection: kfold")
        if self.cascade is not None and self.name != "ensemble":
            raise ValueError("cascade needs model name 'ensemble' (it exits on some of the members)")
        if self.fold_members and self.refit_members:
            raise ValueError("fold_members and refit_members exclude each other (fold models or refits are published)")
        return self


class EcgAugment(StrictModel):
    time_shift: bool = True
    lead_dropout_p: float = Field(0.1, ge=0, le=1)
    gain_db: float = Field(2.0, ge=0, description="Random gain range (+/- dB) on the log scalogram.")


class EcgTrain(StrictModel):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(8, ge=1, description="Early-stopping patience in epochs on validation loss.")
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    folds: int = Field(5, ge=2)
    device: str = "auto"
    threads: int | None = Field(
        1, ge=1, description="torch CPU threads; 1 because these small models gain little from more, "
        "and 2 threads on a busy 2-core machine ran 15x slower (null = torch default)."
    )
    augment: EcgAugment = Field(default_factory=EcgAugment)
    parallel: int = Field(1, ge=1, description="Ensemble members trained at once (processes of `threads` threads).")


class EcgConfig(StrictModel):
    name: str = "ecg-default"
    seed: int = 0
    data: str | list[str] | None = Field(None, description="Folder(s) of WFDB records or manifest CSV(s).")
    holdout: str | None = Field(
        None, description="Record list (one name a line; relative paths from the repository root) that "
        "training and every model choice must never see: the internal test split."
    )
    classes: list[str] = Field(default_factory=lambda: ["SB", "AFIB", "GSVT", "SR"])
    preprocess: EcgPreprocess = Field(default_factory=EcgPreprocess)
    scalogram: EcgScalogram = Field(default_factory=EcgScalogram)
    model: EcgModel = Field(default_factory=EcgModel)
    train: EcgTrain = Field(default_factory=EcgTrain)

    def member_train(self, view: int) -> EcgTrain:
        """The train section of ensemble view ``view``: this config's, with the member's overrides."""
        return EcgTrain.model_validate({**self.train.model_dump(), **self.model.members[view].train})

    @model_validator(mode="after")
    def _check_member_train(self) -> "EcgConfig":
        for view in range(len(self.model.members)):  # fail at load time, not after preparing the data
            self.member_train(view)
        if self.scalogram.f_max_hz > self.preprocess.fs / 2:
            raise ValueError(f"scalogram.f_max_hz ({self.scalogram.f_max_hz:g}) is above the Nyquist frequency of "
                             f"preprocess.fs ({self.preprocess.fs:g} Hz)")
        if (self.model.fold_members or 0) > self.train.folds:
            raise ValueError(f"model.fold_members ({self.model.fold_members}) exceeds train.folds ({self.train.folds})")
        return self

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (plain YAML keeps the last,
    so a repeated ``epochs:`` would silently override the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path, model: type[ConfigT]) -> ConfigT:
    """Read a YAML file into ``model``; any problem becomes a one-line ``UserError``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"config {path} is a folder; give a YAML file")
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        raw = yaml.load(read_user_text(path, "config"), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must be a YAML mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise UserError(f"config {path} is invalid: {problems}") from exc


def config_hash(config: BaseModel) -> str:
    """Short content hash of a resolved config (keys sorted), for cache keys and run ids."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dump_config(config: BaseModel) -> str:
    """The resolved config as YAML text, stored beside every output."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
