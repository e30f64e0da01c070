"""Run every benchmark in bench/ (each writes bench/results/<name>.json) and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["scalogram.py", "predict.py", "separate.py", "train.py", "paper_scale.py"]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        path = BENCH / script
        if not path.exists():
            continue
        print(f"\n$ python bench/{script}", flush=True)
        if subprocess.run([sys.executable, str(path)], cwd=BENCH.parent).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
