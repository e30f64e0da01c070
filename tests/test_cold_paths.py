"""`pipeline predict` and `pipeline separate` stay off the heavy imports that dominate cold start.

Not a timing test (speed lives in bench/): it checks which modules a fresh process loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO, SAMPLE_ECG

HEAVY = ("torch", "timm", "prefect", "matplotlib", "librosa", "pandas", "scipy.fft", "scipy.signal", "scipy.ndimage",
         "scipy.sparse")
RUN_AND_LIST = (
    "import json, sys\n"
    "from pipeline.cli import main\n"
    "sys.argv = ['pipeline', *sys.argv[1:]]\n"
    "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    "print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)\n"
)


def _loaded_heavy_modules(args: list[str], tmp_path) -> list[str]:
    env = {**os.environ, "PIPELINE_STORE": str(tmp_path / "store")}
    code = RUN_AND_LIST.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_predict_imports_no_heavy_module(tmp_path):
    assert _loaded_heavy_modules(["predict", str(SAMPLE_ECG / "JS00007.hea")], tmp_path) == []


def test_separate_imports_no_heavy_module(tmp_path):
    audio = REPO / "samples" / "audio" / "music-delta-80s-rock.ogg"
    assert _loaded_heavy_modules(["separate", str(audio)], tmp_path) == []
