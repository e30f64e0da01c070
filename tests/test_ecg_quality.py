"""The limb-lead plausibility note: real recordings obey Einthoven's and Goldberger's relations, nonsense does not."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ecg.quality import LIMB_DEVIATION_MAX, limb_lead_deviation, limb_lead_note
from pipeline.io.ecg import read_record, to_standard_leads
from tests.conftest import SAMPLE_ECG


def _derived(lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    """Six limb leads derived from I and II as an electrocardiograph does, plus six arbitrary chest leads."""
    limb = [lead_i, lead_ii, lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2]
    return np.vstack(limb + [np.sin(np.arange(lead_i.size) * k) for k in range(1, 7)])


def test_derived_limb_leads_deviate_by_nothing_and_known_nonsense_by_its_exact_amount():
    rng = np.random.default_rng(0)
    x = _derived(rng.standard_normal(5000), rng.standard_normal(5000))
    assert limb_lead_deviation(x) < 1e-12
    square = np.tile(np.sign(np.sin(2 * np.pi * 1.3 * np.arange(5000) / 500 + 0.1)), (12, 1))
    # the same wave in every lead: aVR + (I + II)/2 = 2s against a level of sqrt(2) |s|
    assert limb_lead_deviation(square) == pytest.approx(np.sqrt(2))
    assert limb_lead_deviation(np.zeros((12, 100))) == 0.0


@pytest.mark.parametrize("record", sorted(p.stem for p in SAMPLE_ECG.glob("*.hea")))
def test_real_recordings_pass_and_swapping_two_limb_leads_does_not(record):
    x = to_standard_leads(read_record(SAMPLE_ECG / record))
    assert limb_lead_deviation(x) < LIMB_DEVIATION_MAX / 4
    assert limb_lead_note(x, record) is None
    swapped = x[[0, 2, 1, *range(3, 12)]]  # II and III exchanged
    assert limb_lead_deviation(swapped) > LIMB_DEVIATION_MAX
    assert "limb leads break" in limb_lead_note(swapped, record)
