"""report.html pages (issue 14): self-contained, and rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import SAMPLE_ECG
from tests.test_ensemble import SMALL_ENSEMBLE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _untrained_ensemble(folder):
    """Both views, untrained: its many errors give the page explanation pictures to show."""
    from pipeline.config import EcgConfig
    from pipeline.ecg.bundle import member_meta, save_ensemble
    from pipeline.ecg.ensemble import member_config, member_key
    from pipeline.models import create_model

    cfg = EcgConfig.model_validate(SMALL_ENSEMBLE)
    members = []
    for view, member in enumerate(cfg.model.members):
        mcfg = member_config(cfg, view, member.seeds[0])
        model = create_model(member.name, n_classes=4, n_features=0, **member.args).eval()
        members.append((member_meta(mcfg, model.input_kind, 0, member_key(cfg, view, member.seeds[0])), model))
    save_ensemble(folder, cfg, members, weights=[0.5, 0.5], temperature=1.0)
    return folder


@pytest.fixture(scope="module")
def ecg_page(tmp_path_factory):
    from pipeline.ecg.evaluate import evaluate_folder

    root = tmp_path_factory.mktemp("ecg-page")
    model = _untrained_ensemble(root / "model")
    report = evaluate_folder(SAMPLE_ECG, str(model), out=root / "out")
    return report, root / "out" / "report.html"


def test_ecg_page_is_self_contained_and_shows_every_error(ecg_page):
    report, page = ecg_page
    text = page.read_text()
    assert report["errors"], "the untrained ensemble should misclassify some sample records"
    assert not re.search(r'(src|href)="(https?:|//|file:)', text)  # nothing fetched from anywhere
    assert text.count("data:image/png;base64,") == 2 + len(report["errors"])  # confusion, reliability, pictures
    for error in report["errors"]:
        assert error["record"] in text
    assert "rule baseline" in text and "balanced accuracy" in text and "Per class" in text


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium); "
                    ".ci/run installs it")
def test_ecg_page_renders_in_headless_chromium(ecg_page, tmp_path):
    from PIL import Image

    _, page = ecg_page
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console_errors = [line for line in done.stderr.splitlines() if "CONSOLE" in line and "error" in line.lower()]
    assert not console_errors, console_errors
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # text, tables and plots, not a blank page
