"""SNOMED-CT merge, QRS detection on known beat trains, and the rule baseline."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.labels import rhythm_label
from pipeline.models.rule import rule_predict
from pipeline.transforms.rhythm import detect_qrs, p_wave_consistency, rhythm_features
from tests.conftest import synthetic_ecg


@pytest.mark.parametrize(
    "codes, expected",
    [
        (["426177001"], "SB"),
        (["164890007", "164934002"], "AFIB"),  # flutter merges into AFIB
        (["427084000"], "GSVT"),
        (["427393009"], "SR"),  # sinus irregularity merges into SR
        (["17366009", "426783006"], "SR"),  # ambiguous SAAWR code ignored when another rhythm exists
        (["17366009"], "GSVT"),
    ],
)
def test_codes_map_to_classes(codes, expected):
    label = rhythm_label(codes)
    assert label.status == "ok" and label.label == expected


def test_conflicting_and_missing_codes_are_reported():
    assert rhythm_label(["426177001", "426783006"]).describe() == "MULTI:SB+SR"
    assert rhythm_label(["59118001"]).describe() == "NONE"
    assert rhythm_label([]).status == "none"


@pytest.mark.parametrize("bpm", [45, 75, 130])
def test_qrs_detector_counts_beats(bpm):
    x = synthetic_ecg(bpm=bpm).T
    peaks = detect_qrs(x, 500)
    expected = len(np.arange(0.3, 10, 60 / bpm))
    assert abs(len(peaks) - expected) <= 1
    assert rhythm_features(x, 500)[0] == pytest.approx(bpm, rel=0.03)


def test_rule_baseline_decides_each_class():
    cases = {"SB": synthetic_ecg(bpm=45), "GSVT": synthetic_ecg(bpm=130), "SR": synthetic_ecg(bpm=75),
             "AFIB": synthetic_ecg(bpm=90, jitter=0.35, seed=3)}
    features = np.stack([rhythm_features(x.T, 500) for x in cases.values()])
    predicted = rule_predict(features).argmax(1)
    assert [("SB", "AFIB", "GSVT", "SR")[i] for i in predicted] == list(cases)


def test_rule_rejects_unknown_threshold():
    with pytest.raises(ValueError, match="unknown rule thresholds"):
        rule_predict(np.zeros((1, 6), np.float32), irregular=0.2)


def test_p_wave_consistency_separates_sinus_from_fibrillation():
    fs, rng = 500, np.random.default_rng(0)
    base = synthetic_ecg(bpm=80, jitter=0.3, seed=1).T
    peaks = detect_qrs(base, fs)
    t = np.arange(base.shape[1]) / fs
    sinus = base + 0.15 * sum(np.exp(-0.5 * ((t - p / fs + 0.16) / 0.02) ** 2) for p in peaks)
    fibrillation = base + 0.05 * np.sin(2 * np.pi * 6.3 * t + rng.uniform(0, 6, (12, 1))) + 0.03 * rng.standard_normal(base.shape)
    assert p_wave_consistency(sinus, fs, peaks) > 0.8
    assert p_wave_consistency(fibrillation, fs, peaks) < 0.3
