"""Timing helpers shared by the benchmarks: median of repeats after a warm-up, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CHAPMAN = REPO.parent / "shared" / "data" / "ecg" / "chapman"
SAMPLE_ECG = REPO / "samples" / "ecg"


def median_seconds(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cores": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0]}
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def ecg_records(limit: int) -> list[Path]:
    """Real 12-lead records: the shared Chapman set when present, else the bundled sample."""
    folder = SHARED_CHAPMAN if SHARED_CHAPMAN.is_dir() else SAMPLE_ECG
    records = sorted(p.with_suffix("") for p in folder.glob("*.hea"))
    return (records * (limit // max(len(records), 1) + 1))[:limit]


def emit(name: str, result: dict, rows: list[tuple[str, str]], as_json: bool) -> None:
    """Print a short table (or one JSON object) and save bench/results/<name>.json."""
    result = {"benchmark": name, "machine": machine(), **result}
    out = REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k, _ in rows)
    print(f"== {name} ({result['machine']['cores']} cores, {result['machine']['cpu']})")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
