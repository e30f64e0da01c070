"""WFDB reading: every accepted form of a path, and a clear error for each broken input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.io.ecg import STANDARD_LEADS, read_record, to_standard_leads
from tests.conftest import SAMPLE_ECG, SHARED_DATA, synthetic_ecg, write_record


@pytest.mark.parametrize("suffix", [".mat", ".hea", ""])
def test_sample_record_loads_from_any_path_form(suffix):
    record = read_record(f"{SAMPLE_ECG / 'JS00007'}{suffix}")
    assert record.fs == 500
    assert record.signal.shape == (12, 5000)
    assert record.dx_codes == ["164889003", "164934002"]
    assert to_standard_leads(record).shape == (12, 5000)


def test_dat_record_round_trips_values(tmp_path):
    signal = synthetic_ecg()
    write_record(tmp_path, "rec", signal)
    record = read_record(tmp_path / "rec.dat")
    assert record.leads == list(STANDARD_LEADS)
    np.testing.assert_allclose(record.signal.T, signal, atol=1e-3)


def test_leads_are_reordered_to_standard_order(tmp_path):
    signal = synthetic_ecg()
    shuffled = list(reversed(STANDARD_LEADS))
    write_record(tmp_path, "rev", signal, leads=shuffled)
    record = read_record(tmp_path / "rev")
    ordered = to_standard_leads(record)
    np.testing.assert_allclose(ordered[0], signal[:, shuffled.index("I")], atol=1e-3)


def _bad(tmp_path, name="rec"):
    write_record(tmp_path, name, synthetic_ecg())
    return tmp_path / name


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (_bad(p).with_suffix(".hea").unlink(), p / "rec.dat")[1], "header file"),
        (lambda p: (_bad(p).with_suffix(".dat").unlink(), p / "rec.hea")[1], "signal file"),
        (lambda p: p / "nothing.dat", "no such record"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "notes.txt").write_text("hello") and p / "notes.txt", "not a WFDB record"),
    ],
    ids=["missing-header", "missing-signal", "missing-everything", "directory", "not-wfdb"],
)
def test_missing_or_wrong_paths_raise_user_error(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        read_record(make(tmp_path))


def test_truncated_signal_file(tmp_path):
    base = _bad(tmp_path)
    data = base.with_suffix(".dat").read_bytes()
    base.with_suffix(".dat").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match="truncated|header"):
        read_record(base)


def test_header_sample_count_mismatch(tmp_path):
    base = _bad(tmp_path)
    header = base.with_suffix(".hea")
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    fields[3] = str(int(fields[3]) * 2)
    header.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="samples|truncated"):
        read_record(base)


def test_nan_lead(tmp_path):
    signal = synthetic_ecg()
    signal[100:200, 3] = np.nan
    write_record(tmp_path, "nan", signal)
    with pytest.raises(UserError, match="NaN"):
        read_record(tmp_path / "nan")


def test_flat_lead(tmp_path):
    signal = synthetic_ecg()
    signal[:, 7] = 0.2
    write_record(tmp_path, "flat", signal)
    with pytest.raises(UserError, match="V2.*flat"):
        read_record(tmp_path / "flat")


def test_missing_sampling_rate(tmp_path):
    base = _bad(tmp_path)
    header = base.with_suffix(".hea")
    lines = header.read_text().splitlines()
    header.write_text("\n".join([" ".join(lines[0].split()[:2]), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="no sampling rate"):
        read_record(base)


def test_implausible_sampling_rate(tmp_path):
    write_record(tmp_path, "slow", synthetic_ecg(seconds=60, fs=10)[::1], fs=10)
    with pytest.raises(UserError, match="implausible"):
        read_record(tmp_path / "slow")


def test_binary_header(tmp_path):
    base = _bad(tmp_path)
    base.with_suffix(".hea").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="not a WFDB header"):
        read_record(base)


def test_unreadable_header(tmp_path):
    base = _bad(tmp_path)
    base.with_suffix(".hea").unlink()
    base.with_suffix(".hea").mkdir()  # a path that exists but cannot be read as a file
    with pytest.raises(UserError, match="cannot read"):
        read_record(base)


def test_fewer_than_twelve_leads(tmp_path):
    write_record(tmp_path, "two", synthetic_ecg(n_leads=2), leads=["II", "V5"])
    record = read_record(tmp_path / "two")
    with pytest.raises(UserError, match="12-lead models need"):
        to_standard_leads(record)


@pytest.mark.shared
def test_every_shared_record_loads_or_is_rejected_clearly():
    """Walk ../shared/data/ecg: 12-lead sets load (bar a flat lead); mitdb is rejected for 12-lead use."""
    loaded, rejected = 0, {}
    for header in sorted((SHARED_DATA / "ecg").glob("*/*.hea")):
        try:
            record = read_record(header)
        except UserError as exc:
            rejected[header.stem] = str(exc)
            continue
        loaded += 1
        if header.parent.name == "mitdb":
            assert record.fs == 360 and record.signal.shape[0] == 2
            with pytest.raises(UserError, match="12-lead"):
                to_standard_leads(record)
        else:
            assert to_standard_leads(record).shape[0] == 12
            assert 5000 <= record.signal.shape[1] <= 8000
    assert loaded >= 355
    assert all("flat" in reason for reason in rejected.values()), rejected


def test_sample_copy_keeps_header_and_signal_together(tmp_path):
    for suffix in (".hea", ".mat"):
        shutil.copy(SAMPLE_ECG / f"JS00008{suffix}", tmp_path / f"JS00008{suffix}")
    assert read_record(tmp_path / "JS00008.mat").dx_codes == ["426783006"]


def _records_to_compare():
    """Bundled records (format 16) and, when present, shared ones of every source."""
    records = [(r.with_suffix(""), True) for r in sorted(SAMPLE_ECG.glob("*.hea"))]
    for sub, fast in (("chapman", True), ("cinc2021", False), ("mitdb", False)):
        records += [(r.with_suffix(""), fast) for r in sorted((SHARED_DATA / "ecg" / sub).glob("*.hea"))[:10]]
    return records


@pytest.mark.parametrize("record, chapman_format", _records_to_compare(), ids=lambda v: getattr(v, "name", ""))
def test_format16_fast_path_equals_wfdb(record, chapman_format):
    """The hand-written format-16 reader gives wfdb's values exactly, or defers to wfdb."""
    from pipeline.io import ecg as ecg_io

    header = record.with_suffix(".hea")
    reference = ecg_io._read_with_wfdb(record, header)
    fast = ecg_io._read_format16(record, header.read_text())
    if chapman_format:
        assert fast is not None, "Chapman/SPH records must take the fast path"
    if fast is not None:
        np.testing.assert_array_equal(fast[0], reference[0])
        assert fast[1:] == reference[1:]


@pytest.mark.parametrize(("gain", "unit"), [("1", "uV"), ("1000000", "V"), ("1", "μV")])
def test_header_units_are_converted_to_millivolts(tmp_path, gain, unit):
    """The same samples declared in uV or V (gain scaled to match) read as the same millivolts."""
    reference = read_record(SAMPLE_ECG / "JS00007")
    shutil.copy(SAMPLE_ECG / "JS00007.mat", tmp_path)
    header = (SAMPLE_ECG / "JS00007.hea").read_text(encoding="utf-8").replace("1000/mV", f"{gain}/{unit}")
    (tmp_path / "JS00007.hea").write_text(header, encoding="utf-8")
    np.testing.assert_allclose(read_record(tmp_path / "JS00007").signal, reference.signal, rtol=1e-6)


def test_a_lead_in_a_unit_that_is_not_a_voltage_is_refused(tmp_path):
    shutil.copy(SAMPLE_ECG / "JS00007.mat", tmp_path)
    header = (SAMPLE_ECG / "JS00007.hea").read_text().replace("1000/mV", "1000/mmHg", 1)
    (tmp_path / "JS00007.hea").write_text(header)
    with pytest.raises(UserError, match=r"lead I is recorded in 'mmHg', not a voltage"):
        read_record(tmp_path / "JS00007")
