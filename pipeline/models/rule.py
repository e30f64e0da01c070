"""The no-learning rule baseline: AFIB if RR is irregular, else SB / GSVT / SR by heart rate.

Every ECG evaluation reports it beside the learned model, so a network that does not beat
counting beats is visible as such.
"""

from __future__ import annotations

import numpy as np

from pipeline.labels import CLASSES
from pipeline.transforms.rhythm import FEATURE_NAMES

DEFAULT_THRESHOLDS = {"irregular_rr_cv": 0.10, "brady_bpm": 60.0, "tachy_bpm": 100.0}


def rule_predict(features: np.ndarray, classes: tuple[str, ...] = CLASSES, **thresholds) -> np.ndarray:
    """Class probabilities (one-hot) from rhythm features.

    Args:
        features: (n_records, 6) from ``rhythm_features``.
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS`.
    Returns:
        (n_records, len(classes)) float32, 1 at the decided class.
    """
    limits = {**DEFAULT_THRESHOLDS, **thresholds}
    unknown = set(limits) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown rule thresholds {sorted(unknown)}; valid: {sorted(DEFAULT_THRESHOLDS)}")
    rate = features[:, FEATURE_NAMES.index("heart_rate_bpm")]
    irregular = features[:, FEATURE_NAMES.index("rr_cv")] > limits["irregular_rr_cv"]
    decided = np.where(
        irregular, "AFIB", np.where(rate < limits["brady_bpm"], "SB", np.where(rate > limits["tachy_bpm"], "GSVT", "SR"))
    )
    out = np.zeros((len(features), len(classes)), dtype=np.float32)
    for i, label in enumerate(decided):
        out[i, classes.index(label)] = 1.0
    return out
