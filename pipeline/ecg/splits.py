"""The fixed internal test split: records that no training run or model choice may see.

The split is drawn once (stratified by class and by atrial flutter, seeded) and committed as a
plain list of record names, so every config and every later session excludes the same records.
Regenerate (prints the list):

    python -m pipeline.ecg.splits ../shared/data/ecg/manifest.csv --sources chapman chapman-extra
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from pipeline.errors import UserError, read_user_text
from pipeline.labels import FLUTTER_CODE


def stratified_holdout(names: list[str], strata: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded, stratified ``fraction`` of ``names`` (sorted); strata of one record stay in training."""
    from sklearn.model_selection import train_test_split

    counts = {s: strata.count(s) for s in set(strata)}
    eligible = [i for i, s in enumerate(strata) if counts[s] >= 2]
    _, test = train_test_split(
        [names[i] for i in eligible], test_size=fraction, random_state=seed, stratify=[strata[i] for i in eligible]
    )
    return sorted(test)


def read_record_list(path: str | Path) -> set[str]:
    """Record names, one per line (``#`` comments and blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"record list not found: {path}")
    names = {line.split("#", 1)[0].strip() for line in read_user_text(path, "record list").splitlines()}
    return {name for name in names if name}


def manifest_strata(manifest: Path, sources: list[str]) -> tuple[list[str], list[str]]:
    """Record names and their strata (``CLASS`` or ``AFIB-flutter``) from the shared manifest."""
    names, strata = [], []
    with manifest.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["source"] in sources and row["rhythm_class"] in ("SB", "AFIB", "GSVT", "SR"):
                flutter = FLUTTER_CODE in row["dx_codes"].split(";")
                names.append(row["record"])
                strata.append(row["rhythm_class"] + ("-flutter" if flutter else ""))
    return names, strata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--sources", nargs="+", default=["chapman", "chapman-extra"])
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names, strata = manifest_strata(args.manifest, args.sources)
    test = stratified_holdout(names, strata, args.fraction, args.seed)
    print(f"# internal test split: {len(test)} of {len(names)} records of {', '.join(args.sources)}; "
          f"stratified by class and flutter, fraction {args.fraction}, seed {args.seed}")
    print("# regenerate: python -m pipeline.ecg.splits <shared>/data/ecg/manifest.csv --sources "
          + " ".join(args.sources))
    print("\n".join(test))


if __name__ == "__main__":
    main()
