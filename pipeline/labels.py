"""SNOMED-CT rhythm codes from ``#Dx`` to the four classes SB / AFIB / GSVT / SR.

The merge table (Zheng et al. 2020, Sci Data 7:48) ships as ``resources/rhythm_4class_map.csv``,
a copy of ``shared/data/ecg/rhythm_4class_map.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

CLASSES = ("SB", "AFIB", "GSVT", "SR")
FLUTTER_CODE = "164890007"  # atrial flutter: merged into AFIB, but reported on its own (hardest sub-rhythm)


@dataclass(frozen=True)
class RhythmLabel:
    """Outcome of mapping a record's codes.

    ``status`` is ``ok`` (``label`` set), ``none`` (no rhythm code) or ``multi`` (codes from
    several classes; ``classes`` lists them). Records are never silently assigned.
    """

    status: str
    label: str | None = None
    classes: tuple[str, ...] = ()
    flutter: bool = False

    def describe(self) -> str:
        if self.status == "ok":
            return self.label or ""
        if self.status == "none":
            return "NONE"
        return "MULTI:" + "+".join(self.classes)


@lru_cache(maxsize=1)
def _code_table() -> tuple[dict[str, str], frozenset[str]]:
    """code -> class, and the codes flagged ambiguous (used only when nothing else matches)."""
    text = resources.files("pipeline.resources").joinpath("rhythm_4class_map.csv").read_text()
    table, ambiguous = {}, set()
    for row in csv.DictReader(text.splitlines()):
        table[row["snomed_ct"].strip()] = row["class4"].strip()
        if "ambiguous" in (row.get("note") or "") or "only if no other" in (row.get("note") or ""):
            ambiguous.add(row["snomed_ct"].strip())
    return table, frozenset(ambiguous)


def rhythm_label(dx_codes: list[str]) -> RhythmLabel:
    """Map SNOMED-CT codes to one of :data:`CLASSES`, or report NONE / MULTI."""
    table, ambiguous = _code_table()
    firm = {table[c] for c in dx_codes if c in table and c not in ambiguous}
    if not firm:
        firm = {table[c] for c in dx_codes if c in ambiguous}
    if not firm:
        return RhythmLabel("none")
    if len(firm) > 1:
        return RhythmLabel("multi", classes=tuple(c for c in CLASSES if c in firm))
    (label,) = firm
    return RhythmLabel("ok", label=label, flutter=FLUTTER_CODE in dx_codes)
