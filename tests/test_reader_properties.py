"""Property tests (issue 10): mutated WFDB and WAV headers give a valid result or one clean
``UserError``, never another exception or a hang."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from tests.conftest import SAMPLE_ECG  # noqa: E402
from pipeline.errors import UserError  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER = (SAMPLE_ECG / "JS00007.hea").read_text()
TOKENS = st.one_of(
    st.sampled_from(["0", "1", "12", "500", "5000", "-1", "nan", "inf", "1e3", "", "~", "..", "../JS00007.mat",
                     "/etc/passwd", "JS00007.mat", "16", "16+24", "212", "8x2", "1000/mV", "1000(0)/mV", "#"]),
    st.integers(-10**6, 10**9).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8),
)


@st.composite
def mutated_headers(draw):
    """The bundled header with tokens replaced, lines dropped or duplicated."""
    lines = [line.split(" ") for line in HEADER.splitlines()]
    for _ in range(draw(st.integers(1, 6))):
        row = draw(st.one_of(st.just(0), st.integers(0, len(lines) - 1)))  # the record line half the time
        action = draw(st.sampled_from(["replace", "drop_line", "dup_line", "drop_token"]))
        if action == "replace" and lines[row]:
            lines[row][draw(st.integers(0, len(lines[row]) - 1))] = draw(TOKENS)
        elif action == "drop_line" and len(lines) > 1:
            del lines[row]
        elif action == "dup_line":
            lines.insert(row, list(lines[row]))
        elif action == "drop_token" and lines[row]:
            del lines[row][-1]
    return "\n".join(" ".join(line) for line in lines) + "\n"


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mutated")
    shutil.copy(SAMPLE_ECG / "JS00007.mat", folder / "JS00007.mat")
    return folder


@SETTINGS
@given(header=st.one_of(mutated_headers(), st.text(max_size=300)))
def test_mutated_wfdb_header_is_read_or_refused_cleanly(record_dir, header):
    from pipeline.io.ecg import read_record

    (record_dir / "JS00007.hea").write_text(header, errors="surrogateescape")
    try:
        record = read_record(record_dir / "JS00007")
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert 50 <= record.fs <= 10000
    assert record.signal.ndim == 2 and record.signal.shape[1] > 0 and np.isfinite(record.signal).all()
    fields = next(line for line in header.splitlines() if line.strip() and not line.strip().startswith("#")).split()
    assert record.fs == float(fields[2].split("/")[0]), "the header's rate, never a silent default"
    if len(fields) > 3 and fields[3].isdigit():
        assert record.signal.shape[1] == int(fields[3]), "the header's sample count, never padded or cut"


def _wav_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(np.arange(16000) / 5), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


WAV = _wav_bytes()


@SETTINGS
@given(edits=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_wav_header_is_read_or_refused_cleanly(tmp_path, edits):
    from pipeline.io.audio import check_levels, probe_audio

    data = bytearray(WAV)
    for offset, value in edits:
        data[offset] = value
    path = tmp_path / "song.wav"
    path.write_bytes(bytes(data))
    try:
        check_levels(probe_audio(path))
    except UserError as exc:
        assert "\n" not in str(exc)
