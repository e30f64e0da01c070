"""The separator's YAML config: STFT, IBM, model, data split, training and separation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from pipeline.config import StrictModel


class SvsStft(StrictModel):
    sample_rate: int = Field(16000, ge=8000, le=96000, description="Model rate (Hz); input is resampled to it.")
    n_fft: int = Field(1024, ge=64, description="FFT size (bins = n_fft // 2 + 1).")
    win_length: int = Field(1024, ge=32, description="Hann window length (samples), <= n_fft.")
    hop: int = Field(256, ge=16, description="Hop between frames (samples).")
    features: Literal["log", "linear"] = Field("log", description="log1p(log_scale * |S|) or |S| as network input.")
    log_scale: float = Field(1.0, gt=0, description="Gain inside log1p: larger values compress quiet bins less linearly.")
    extra_windows: list[int] = Field(
        default_factory=list,
        description="Multi-resolution input: window lengths (samples, even, >= hop) of extra STFTs "
                    "(n_fft = window, same hop, centred like the main one) whose features, linearly "
                    "interpolated along frequency onto the main bins, are extra input channels; [] = off.")

    @model_validator(mode="after")
    def _check(self) -> "SvsStft":
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if self.hop > self.win_length:
            raise ValueError("hop must not exceed win_length")
        for w in self.extra_windows:
            if w % 2 or w < self.hop:
                raise ValueError(f"extra_windows: {w} must be even and >= hop ({self.hop}) so its frames "
                                 "line up with the main STFT's")
        return self

    @model_serializer(mode="wrap")
    def _drop_empty_extras(self, handler):
        """Leave ``extra_windows`` out while empty: single-resolution configs (and their hashes,
        work folders and bundled ``model.json``) read exactly as before the option existed."""
        data = handler(self)
        if not self.extra_windows:
            data.pop("extra_windows", None)
        return data

    @property
    def in_channels(self) -> int:
        """Network input channels: the main STFT plus one per extra window."""
        return 1 + len(self.extra_windows)

    def extra(self, window: int) -> "SvsStft":
        """The STFT of one extra window: ``n_fft = win_length = window``, the main hop and rate."""
        return SvsStft(sample_rate=self.sample_rate, n_fft=window, win_length=window, hop=self.hop,
                       features=self.features, log_scale=self.log_scale)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


class SvsIbm(StrictModel):
    smooth: tuple[float, float] = Field((0.02, 0.98), description="IBM label values for accompaniment/voice bins.")
    threshold: float = Field(0.35, ge=0, le=1, description="Voice probability below this is zeroed at inference.")


class SvsModel(StrictModel):
    name: Literal["fcn", "hourglass", "lin2018"] = "fcn"
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the network.")


class SvsSplit(StrictModel):
    by: Literal["song", "singer"] = Field("song", description="Hold out whole songs, or whole singers.")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="Share of songs per singer held out (by=song).")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of training songs used for validation.")
    test_singers: list[str] = Field(default_factory=list, description="Singers held out (by=singer).")
    test_songs: list[str] = Field(default_factory=list, description="Explicit held-out songs (singer_song); overrides test_fraction.")
    singers: list[str] = Field(default_factory=lambda: ["abjones", "amy"], description="MIR-1K singers allowed at all.")


class SvsAugment(StrictModel):
    remix_p: float = Field(0.5, ge=0, le=1, description="Chance of pairing a voice with another clip's accompaniment.")
    ratio_db: tuple[float, float] = Field((-6.0, 6.0), description="Voice-to-music ratio range (dB) for remixes.")
    gain_db: tuple[float, float] = Field((-12.0, 3.0), description="Overall gain range (dB).")
    shift_p: float = Field(0.3, ge=0, le=1, description="Chance of shifting the voice spectrum (pitch + formants).")
    shift_semitones: tuple[float, float] = Field((-3.0, 3.0), description="Range of the voice spectrum shift.")


class SvsTrain(StrictModel):
    pretrain_steps: int = Field(200, ge=0, description="Autoencoder steps on voice spectrograms (stage 1).")
    steps: int = Field(3000, ge=1, description="Cross-entropy steps against the IBM (stage 2).")
    time_budget_min: float | None = Field(None, gt=0, description="Stop stage 2 after this many minutes of process CPU time.")
    batch_size: int = Field(8, ge=1)
    patch_frames: int = Field(128, ge=1, description="Frames per training patch (fcn, hourglass); lin2018 uses 9.")
    lr: float = Field(1e-3, gt=0)
    pretrain_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    loss_weight_power: float = Field(0.0, ge=0, le=2, description="Weight each bin's cross-entropy by |mixture|^power (0: the paper's plain BCE).")
    val_every: int = Field(250, ge=1, description="Steps between validation/checkpoint.")
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    eval_max_tracks: int | None = Field(None, ge=1, description="Score at most this many held-out tracks (evenly spread); None = all.")
    input_rms_db: float | None = Field(None, ge=-100, le=0, description="Scale each training patch so its mixture has this RMS (dBFS) before the network (voice and accompaniment alike: the IBM is unchanged), the level separate.input_rms_db feeds it; None: patches at their augmented gain.")
    device: str = "auto"
    init_from: str | None = Field(None, description="Start from this published run's weights (NAME@RUN or folder) and skip stage 1: continued training.")
    augment: SvsAugment = Field(default_factory=SvsAugment)


class SvsSeparate(StrictModel):
    chunk_s: float = Field(20.0, gt=0, description="Audio seconds per inference chunk.")
    context_s: float = Field(2.0, ge=0, description="Extra seconds each side of a chunk, discarded after.")
    wiener: bool = Field(False, description="Soft Wiener-like post-filter (off: the paper's mask).")
    input_rms_db: float | None = Field(None, ge=-100, le=0, description="Scale each chunk to this RMS level (dBFS) before the network (the mask still scales the input as is); None: no scaling.")


class SvsConfig(StrictModel):
    name: str = "svs-default"
    seed: int = 0
    data: str | None = Field(None, description="Folder in the shared layout, raw MIR-1K wavs or MUSDB stems.")
    stft: SvsStft = Field(default_factory=SvsStft)
    ibm: SvsIbm = Field(default_factory=SvsIbm)
    model: SvsModel = Field(default_factory=SvsModel)
    split: SvsSplit = Field(default_factory=SvsSplit)
    train: SvsTrain = Field(default_factory=SvsTrain)
    separate: SvsSeparate = Field(default_factory=SvsSeparate)

    @model_validator(mode="after")
    def _check_levels(self) -> "SvsConfig":
        if self.stft.extra_windows and self.model.name == "lin2018":
            raise ValueError("stft.extra_windows (multi-resolution input) needs model fcn or hourglass, not lin2018")
        if self.train.input_rms_db is not None and self.separate.input_rms_db is None:
            raise ValueError("train.input_rms_db needs separate.input_rms_db: a network trained at one level "
                             "must be fed that level")
        return self
