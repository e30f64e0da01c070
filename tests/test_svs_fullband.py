"""Full-band separator evaluation (``evaluate separator --full-band``): SiSEC-style BSS Eval images
metrics at 44.1 kHz stereo on a synthetic track whose stems are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from svs_util import one_thread, tiny_bundle  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 44100


def _stems(seconds: float, high_hz: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stereo 'vocals' (a 440 Hz harmonic tone, louder on the left; plus a weak partial at
    ``high_hz``) and 'accompaniment' (white noise) of equal RMS per channel, ``(2, samples)``."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 440 * k * t) / k for k in (1, 2, 3))
    if high_hz:
        tone = tone + 0.3 * np.sin(2 * np.pi * high_hz * t)
    voice = np.stack([0.8 * tone, 0.5 * tone])
    noise = np.random.default_rng(seed).standard_normal(voice.shape)
    acc = noise * np.sqrt(np.mean(voice**2, axis=1, keepdims=True) / np.mean(noise**2, axis=1, keepdims=True))
    scale = 0.2 / np.max(np.abs(voice + acc))
    return voice * scale, acc * scale


def _model_stft():
    from pipeline.svs.config import SvsStft

    return SvsStft(sample_rate=16000, n_fft=1024, win_length=1024, hop=256)


def test_perfect_oracle_and_mixture_reference_points():
    from pipeline.svs.fullband import ibm_vocals, oracle_stft, score

    voice, acc = _stems(1.5)  # under two 1-s windows: scored whole (the CLI test covers windows)
    refs, mix = np.stack([voice, acc]), voice + acc

    perfect = score(refs, voice, acc, SR)
    for metric in ("sdr", "sir", "sar", "isr"):
        assert min(perfect[metric].values()) > 60, (metric, perfect[metric])

    cfg = oracle_stft(SR, _model_stft())
    assert (cfg.n_fft, cfg.hop) == (2822, 706)  # the model's 64 ms / 16 ms at 44.1 kHz
    ora = ibm_vocals(mix, voice, acc, cfg)
    oracle = score(refs, ora, mix - ora, SR)
    assert oracle["sdr"]["vocals"] > 12 and oracle["sdr"]["accompaniment"] > 12, oracle

    floor = score(refs, mix, mix, SR)  # equal-level stems: the mixture is 0 dB from either
    assert abs(floor["sdr"]["vocals"]) < 0.5 and abs(floor["sdr"]["accompaniment"]) < 0.5, floor


def test_model_rate_path_loses_the_band_above_its_nyquist():
    """A perfect mask at 16 kHz cannot give the vocals' 11 kHz partial back: it stays in the accompaniment."""
    from pipeline.svs.fullband import energy_above, ibm_vocals, ibm_vocals_model_rate, oracle_stft, score

    voice, acc = _stems(1.5, high_hz=11000.0)
    refs, mix = np.stack([voice, acc]), voice + acc
    low = ibm_vocals_model_rate(mix, voice, acc, SR, _model_stft())
    assert energy_above(low, SR, 8000) < 1e-5 < energy_above(voice, SR, 8000)
    full = ibm_vocals(mix, voice, acc, oracle_stft(SR, _model_stft()))
    assert score(refs, full, mix - full, SR)["sdr"]["vocals"] > score(refs, low, mix - low, SR)["sdr"]["vocals"] + 3


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("model"))


def _write_track(folder, voice, acc, mixture=None, rate=SR):
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.wav", voice.T, rate, subtype="FLOAT")
    sf.write(folder / "accompaniment.wav", acc.T, rate, subtype="FLOAT")
    if mixture is not False:
        sf.write(folder / "mixture.wav", (voice + acc if mixture is None else mixture).T, SR, subtype="FLOAT")


def test_cli_full_band_scores_stereo_44k_through_the_separation_path(cli, tmp_path, model):
    from pipeline.svs.fullband import format_table

    voice, acc = _stems(2.0, high_hz=11000.0)
    _write_track(tmp_path / "data" / "song", voice, acc)
    result = cli("evaluate", "separator", tmp_path / "data", "--full-band", "--model", model, "--json",
                 "--out", tmp_path / "out")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["mode"] == "full-band" and report["sample_rates"] == [SR] and report["channels"] == [2]
    assert report["n_tracks"] == 1 and report["threshold"] == 0.35
    for block in (report, report["oracle_ibm"], report["oracle_ibm_model_rate"], report["mixture"]):
        assert set(block["sdr"]) == {"vocals", "accompaniment"} and {"sir", "sar", "isr"} <= set(block)
    assert report["oracle_ibm"]["sdr"]["vocals"] > report["mixture"]["sdr"]["vocals"] + 10
    row = report["per_track"][0]
    assert row["windows"] == 2 and row["model_vocals_energy_above_model_nyquist"] < 1e-4
    assert json.loads((tmp_path / "out" / "report.json").read_text())["tracks"] == ["song"]
    assert (tmp_path / "out" / "tracks.csv").read_text().startswith("track,")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "perfect mask, 16 kHz path" in page and "data:image/png;base64," in page and ">song<" in page
    assert (tmp_path / "out" / "fullband.png").read_bytes()[:4] == b"\x89PNG"
    table = format_table(report)
    assert "oracle IBM" in table and "44.1 kHz stereo" in table


def _bad(root, case):
    voice, acc = _stems(0.5)
    if case == "no stems":
        root.mkdir(parents=True)
        sf.write(root / "mixture.wav", (voice + acc).T, SR)
    elif case == "mono reference":
        _write_track(root / "song", voice[:1], acc[:1], mixture=voice + acc)
    elif case == "length":
        _write_track(root / "song", voice[:, :-1000], acc[:, :-1000], mixture=voice + acc)
    elif case == "rate":
        _write_track(root / "song", voice, acc, rate=22050)
    elif case == "no mixture":
        _write_track(root / "song", voice, acc, mixture=False)


@pytest.mark.parametrize("case, message", [("no stems", "no tracks found"), ("mono reference", "channel"),
                                           ("length", "samples long"), ("rate", "sampled at 22050"),
                                           ("no mixture", "has none")])
def test_cli_full_band_bad_input_is_one_error_line(cli, tmp_path, model, case, message):
    _bad(tmp_path / "data", case)
    result = cli("evaluate", "separator", tmp_path / "data", "--full-band", "--model", model)
    lines = [line for line in result.err.strip().splitlines() if line]
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    assert message in lines[0] and "Traceback" not in result.err + result.out
