"""The beat matching of bench/compare_tools.py (sensitivity / PPV against annotations); no timing."""

import numpy as np
import pytest

from bench.compare_tools import BEAT_SYMBOLS, match_beats

FS = 360
BEATS = np.arange(1, 21) * FS  # one beat a second


def ms(value: float) -> int:
    return round(value / 1000 * FS)


def test_detections_10_ms_late_all_match():
    score = match_beats(BEATS, BEATS + ms(10), ms(150))
    assert (score["tp"], score["fn"], score["fp"]) == (20, 0, 0)
    assert score["sensitivity"] == score["ppv"] == 1.0


def test_detections_300_ms_off_match_nothing():
    score = match_beats(BEATS, BEATS + ms(300), ms(150))
    assert (score["tp"], score["fn"], score["fp"]) == (0, 20, 20)
    assert score["sensitivity"] == score["ppv"] == 0.0


def test_missed_and_extra_beats_count_once_each():
    detected = np.concatenate([BEATS[:-2] - ms(20), [BEATS[5] + ms(40), BEATS[0] + FS // 2]])  # 2 missed, 2 extra
    score = match_beats(BEATS, detected, ms(150))
    assert (score["tp"], score["fn"], score["fp"]) == (18, 2, 2)
    assert score["sensitivity"] == pytest.approx(0.9) and score["ppv"] == pytest.approx(0.9)


def test_a_detection_matches_at_most_one_beat_and_the_closest_wins():
    reference = np.array([1000, 1050])  # two beats within one tolerance window
    score = match_beats(reference, [1040], ms(150))
    assert (score["tp"], score["fn"], score["fp"]) == (1, 1, 0)
    assert match_beats(reference, [990, 1040], ms(150))["tp"] == 2  # 990 -> 1000, 1040 -> 1050


def test_tolerance_edge_and_empty_inputs():
    assert match_beats([1000], [1000 + ms(75)], ms(75))["tp"] == 1
    assert match_beats([1000], [1000 + ms(75) + 1], ms(75))["tp"] == 0
    assert match_beats([], [5], ms(75))["fp"] == 1
    assert match_beats([5], [], ms(75))["fn"] == 1


def test_rhythm_and_noise_annotations_are_not_beats():
    assert {"N", "A", "V"} <= BEAT_SYMBOLS
    assert not {"+", "~", "|", '"'} & BEAT_SYMBOLS
