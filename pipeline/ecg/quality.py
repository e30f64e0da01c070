"""Is this a recorded 12-lead ECG? The six limb leads must obey Einthoven's and Goldberger's relations.

Electrocardiographs record two limb leads and derive the other four (III = II - I, aVR = -(I + II)/2,
aVL = I - II/2, aVF = II - I/2), so a recording obeys them up to rounding and filtering: on the 959 readable
records in ../shared (922 Chapman-Shaoxing, 37 from other hospitals) the largest deviation is 0.026 of the
limb-lead level. Synthetic signals and swapped or mislabelled limb leads break them (the same square wave in
every lead: 1.41; independent uniform noise per lead: 1.24). The networks still answer for such input, often
confidently, so prediction says so in a note instead of staying silent.
"""

from __future__ import annotations

import numpy as np

LIMB_DEVIATION_MAX = 0.1  # ~4x the largest deviation of a real record, well below synthetic input's


def limb_lead_deviation(x: np.ndarray) -> float:
    """Largest RMS deviation from the four relations, relative to the RMS level of leads I and II.

    Args:
        x: (12, samples) in the order I, II, III, aVR, aVL, aVF, V1-V6 (any common unit).
    """
    lead_i, lead_ii, lead_iii, avr, avl, avf = np.asarray(x[:6], dtype=np.float64)
    deviations = (lead_iii - (lead_ii - lead_i), avr + (lead_i + lead_ii) / 2,
                  avl - (lead_i - lead_ii / 2), avf - (lead_ii - lead_i / 2))
    level = np.sqrt(np.mean(lead_i**2) + np.mean(lead_ii**2))
    if level == 0:  # flat I and II: refused by the reader before this point
        return 0.0
    return float(max(np.sqrt(np.mean(d**2)) for d in deviations) / level)


def limb_lead_note(x: np.ndarray, name: str) -> str | None:
    """A warning for the user when the limb leads cannot come from one recording, else None."""
    deviation = limb_lead_deviation(x)
    if deviation <= LIMB_DEVIATION_MAX:
        return None
    return (f"{name}: the limb leads break III = II - I and the augmented-lead relations (deviation {deviation:.2f} "
            f"of the limb-lead level; recorded ECGs stay below {LIMB_DEVIATION_MAX}): swapped or mislabelled leads, "
            "or not a recorded ECG, so its classification may mean nothing")
