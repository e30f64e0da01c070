"""Issue 10: every bad input and every fault gives exit status 2 (130 when interrupted), one
``error:`` line, no traceback, and leaves no half-written output behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, SAMPLE_ECG
from svs_util import tiny_bundle


def _assert_one_error(result, code: int = 2, contains: str = ""):
    assert result.code == code, result
    lines = [line for line in result.err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out


# -- command line ------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ([], "Missing command"),
    (["train"], "Missing command"),
    (["evaluate"], "Missing command"),
    (["models"], "Missing command"),
    (["stems"], "Missing command"),
    (["flow"], "Missing command"),
    (["predict"], "Missing argument"),
    (["no-such-command"], "No such command"),
    (["predict", "rec", "--no-such-option"], "No such option"),
    (["predict", "rec", "--model"], "requires an argument"),
    (["separate", "song.wav", "--threshold", "abc"], "Invalid value for '--threshold'"),
    (["separate", "song.wav", "--threshold", "2"], "Invalid value for '--threshold'"),
    (["separate", "song.wav", "--input-rms-db", "-500"], "Invalid value for '--input-rms-db'"),
    (["models", "retune", "svs-default", "--input-rms-db", "3"], "Invalid value for '--input-rms-db'"),
    (["train", "ecg"], "Missing option '--config'"),
    (["stems", "get", "track"], "Missing option '--out'"),
])
def test_usage_mistakes_are_one_line_and_exit_2(cli, args, message):
    _assert_one_error(cli(*args), contains=message)


def test_usage_error_from_the_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", "--bogus"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60, env=_env(tmp_path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: No such option")


# -- interrupts --------------------------------------------------------------------------
_DRIVER = """
import os, signal, sys
import {module} as target
real, calls = target.{function}, []
def interrupted(*args, **kwargs):
    calls.append(1)
    if len(calls) == {after}:
        os.kill(os.getpid(), signal.{signal})
    return real(*args, **kwargs)
target.{function} = interrupted
sys.argv = ["pipeline", *sys.argv[1:]]
from pipeline.cli import main
main()
"""


def _env(tmp_path):
    return {**os.environ, "PIPELINE_STORE": str(tmp_path / "store"), "TMPDIR": str(tmp_path / "tmp"),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _run_interrupted(tmp_path, module, function, sig, *args, after=2):
    """Run the CLI in a child that sends itself ``sig`` on call number ``after`` of ``module.function``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    script = _DRIVER.format(module=module, function=function, signal=sig, after=after)
    # the child starts with SIGINT at its default, as a shell's foreground command does: pytest run as a background
    # job of a non-interactive shell (`pytest &`) ignores SIGINT, its children inherit SIG_IGN, and Python then
    # rightly leaves an inherited "ignore" alone
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env=_env(tmp_path),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _song(tmp_path, seconds=3.0, sr=16000):
    path = tmp_path / "song.wav"
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sr)
    return path


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_separation_leaves_nothing(tmp_path, sig, code):
    model = tiny_bundle(tmp_path / "model")
    out = tmp_path / "out"
    proc = _run_interrupted(tmp_path, "pipeline.svs.separate", "separate_array", sig,
                            "separate", _song(tmp_path), "--model", model, "--out", out)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "tmp").glob("pipeline-*")), "temporary files left behind"
    assert not (tmp_path / "store" / "stems").exists() or not any((tmp_path / "store" / "stems").rglob("*.*"))
    assert not out.exists() or not any(out.rglob("*.*"))


def test_interrupted_predict_exits_130(tmp_path):
    proc = _run_interrupted(tmp_path, "pipeline.ecg.predict", "predict_prepared", "SIGINT",
                            "predict", SAMPLE_ECG / "JS00007.mat", "--model", "rule", after=1)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: interrupted"]


# -- ECG records -------------------------------------------------------------------------
def _record(folder, edit=lambda header: header, name="JS00007"):
    """A copy of a bundled record with its header text passed through ``edit``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mat").write_bytes((SAMPLE_ECG / "JS00007.mat").read_bytes())
    (folder / f"{name}.hea").write_text(edit((SAMPLE_ECG / "JS00007.hea").read_text().replace("JS00007", name)))
    return folder / name


def _record_line(**changes):
    """Edit the record line's fields by position name: n_sig, fs, n_samples."""
    positions = {"n_sig": 1, "fs": 2, "n_samples": 3}

    def edit(header):
        first, rest = header.split("\n", 1)
        fields = first.split()
        for key, value in changes.items():
            fields[positions[key]] = value
        return " ".join(f for f in fields if f) + "\n" + rest
    return edit


def _read_error(path, **kwargs) -> str:
    from pipeline.errors import UserError
    from pipeline.io.ecg import read_record

    with pytest.raises(UserError) as info:
        read_record(path, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("rate", ["nan", "inf", "-500", "abc", "1e3", "0", "20", "20000"])
def test_bad_sampling_rates_are_refused(tmp_path, rate):
    message = _read_error(_record(tmp_path, _record_line(fs=rate)))
    assert "sampling rate" in message and rate in message


def test_missing_sampling_rate_is_refused(tmp_path):
    header = _record(tmp_path).with_suffix(".hea")
    header.write_text("JS00007 12\n" + header.read_text().split("\n", 1)[1])
    assert "no sampling rate" in _read_error(header)


@pytest.mark.parametrize("n_samples", ["4000", "6000"])
def test_sample_count_must_match_the_signal_file(tmp_path, n_samples):
    message = _read_error(_record(tmp_path, _record_line(n_samples=n_samples)))
    assert f"holds 5000 samples per signal but the header declares {n_samples}" in message


@pytest.mark.parametrize("signal_name", ["OTHER", "../other/JS00008.mat", "sub/JS00008.mat", ".."])
def test_signal_file_must_sit_beside_the_header(tmp_path, signal_name):
    other = tmp_path / "other"
    other.mkdir()
    (other / "JS00008.mat").write_bytes((SAMPLE_ECG / "JS00008.mat").read_bytes())
    signal_name = str(other / "JS00008.mat") if signal_name == "OTHER" else signal_name
    base = _record(tmp_path / "rec", lambda h: h.replace("JS00007.mat", signal_name))
    assert "must sit beside the header" in _read_error(base)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".hea", ".mat"])
def test_fifo_instead_of_a_file_is_refused_without_hanging(tmp_path, suffix):
    base = _record(tmp_path)
    base.with_suffix(suffix).unlink()
    os.mkfifo(base.with_suffix(suffix))
    assert "not a regular file" in _read_error(base)


def test_zero_sample_record_is_refused(tmp_path):
    base = _record(tmp_path, _record_line(n_samples="0"))
    base.with_suffix(".mat").write_bytes(base.with_suffix(".mat").read_bytes()[:24])
    assert "holds no samples" in _read_error(base)


@pytest.mark.parametrize("n_sig", ["8", "14", "0"])
def test_signal_count_must_match_the_signal_lines(tmp_path, n_sig):
    message = _read_error(_record(tmp_path, _record_line(n_sig=n_sig)))
    assert f"declares {n_sig} signal(s)" in message if n_sig != "0" else "declares no signal" in message


def _multi_segment(tmp_path, segments, present):
    for name in present:
        _record(tmp_path, name=name)
    lines = [f"multi/{len(segments)} 12 500 {5000 * len(segments)}"] + [f"{s} 5000" for s in segments]
    (tmp_path / "multi.hea").write_text("\n".join(lines) + "\n")
    return tmp_path / "multi"


def test_multi_segment_record_reads(tmp_path):
    from pipeline.io.ecg import read_record

    assert read_record(_multi_segment(tmp_path, ["sa", "sb"], ["sa", "sb"])).signal.shape == (12, 10000)


@pytest.mark.parametrize("segments, message", [
    (["sa", "sb"], "segment header"),
    (["sa", "multi"], "record itself"),
    (["sa", "../sb"], "must sit beside the header"),
])
def test_broken_multi_segment_records_are_refused(tmp_path, segments, message):
    assert message in _read_error(_multi_segment(tmp_path, segments, ["sa"]))


@pytest.mark.parametrize("broken, message", [
    (lambda folder: (os.unlink(folder / "sb.mat"), os.mkfifo(folder / "sb.mat")), "not a regular file"),
    (lambda folder: (folder / "sb.hea").write_text((folder / "sb.hea").read_text().replace("sb.mat", "../sb.mat")),
     "must sit beside the header"),
    (lambda folder: (folder / "sb.hea").write_text("sb/1 12 500 5000\nsa 5000\n"), "itself a multi-segment"),
])
def test_segment_signal_files_are_checked_like_a_record(tmp_path, broken, message):
    base = _multi_segment(tmp_path, ["sa", "sb"], ["sa", "sb"])
    broken(tmp_path)
    assert message in _read_error(base)


def test_records_longer_than_the_limit_are_refused_before_reading(tmp_path, monkeypatch):
    base = _record(tmp_path)
    assert "more than the 5 s limit" in _read_error(base, max_seconds=5)
    monkeypatch.setenv("PIPELINE_ECG_MAX_SECONDS", "9.5")
    assert "PIPELINE_ECG_MAX_SECONDS" in _read_error(base)
    monkeypatch.setenv("PIPELINE_ECG_MAX_SECONDS", "-1")
    assert "positive number of seconds" in _read_error(base)


def test_predict_reports_a_bad_rate_and_classifies_the_rest(cli, tmp_path):
    bad = _record(tmp_path, _record_line(fs="nan"))
    result = cli("predict", bad, SAMPLE_ECG / "JS00008.mat", "--model", "rule")
    _assert_one_error(result, contains="sampling rate 'nan'")
    assert len(result.out.strip().splitlines()) == 1


# -- audio -------------------------------------------------------------------------------
def _separate(cli, tmp_path, song):
    result = cli("separate", song, "--model", tiny_bundle(tmp_path / "model"), "--out", tmp_path / "out")
    assert not (tmp_path / "store" / "stems").exists() or not any((tmp_path / "store" / "stems").rglob("*.*"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))
    return result


def test_corrupt_flac_is_one_line(cli, tmp_path, tmp_store):
    song = tmp_path / "song.flac"
    sf.write(song, 0.3 * np.sin(np.arange(16000 * 20) / 10), 16000)
    data = bytearray(song.read_bytes())
    data[len(data) // 3:len(data) // 3 + 4000] = bytes(4000)
    song.write_bytes(bytes(data))
    _assert_one_error(_separate(cli, tmp_path, song), contains="could not be decoded")


def test_nan_after_the_first_block_is_reported_as_nan(cli, tmp_path, tmp_store):
    audio = 0.3 * np.sin(np.arange((1 << 20) + 4000) / 10)
    audio[(1 << 20) + 100] = np.nan
    song = tmp_path / "song.wav"
    sf.write(song, audio, 16000, subtype="FLOAT")
    _assert_one_error(_separate(cli, tmp_path, song), contains="contains NaN samples")


def test_wav_cut_short_is_refused(cli, tmp_path, tmp_store):
    song = _song(tmp_path, seconds=4.0)
    song.write_bytes(song.read_bytes()[:-16000 * 2])
    _assert_one_error(_separate(cli, tmp_path, song), contains="is cut short")


def _mp3(tmp_path, name, cut=lambda data: data):
    """A 3-s stereo MP3 whose bytes are passed through ``cut``."""
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3 to make the fixture")
    path = tmp_path / f"{name}.mp3"
    t = np.arange(3 * 22050) / 22050
    sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1), 22050, format="MP3")
    path.write_bytes(cut(path.read_bytes()))
    return path


def _noise_bytes(n: int) -> bytes:
    return np.random.default_rng(0).bytes(n)


@pytest.mark.parametrize("name, cut, message", [
    ("garbage", lambda data: _noise_bytes(len(data)), "not a readable audio file (format not recognised)"),
    ("damaged", lambda data: data[:len(data) // 3] + _noise_bytes(len(data) // 3) + data[2 * len(data) // 3:],
     "could not be decoded"),
    ("cut", lambda data: data[:len(data) // 2], "is cut short"),
])
def test_bad_mp3_is_one_line_without_decoder_noise(tmp_path, capfd, name, cut, message):
    from pipeline.errors import UserError
    from pipeline.io.audio import check_levels, probe_audio

    path = _mp3(tmp_path, name, cut)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_levels(probe_audio(path))
    assert capfd.readouterr().err == ""  # libmpg123 writes to fd 2 unless muted


def test_input_deleted_while_being_read(cli, tmp_path, tmp_store, monkeypatch):
    import pipeline.io.audio as audio_io

    real = audio_io.check_levels

    def then_delete(info, **kwargs):
        levels = real(info, **kwargs)
        info.path.unlink()
        return levels

    monkeypatch.setattr(audio_io, "check_levels", then_delete)
    _assert_one_error(_separate(cli, tmp_path, _song(tmp_path)), contains="disappeared while it was being read")


# -- artifact store ----------------------------------------------------------------------
def _claim(store, prefix, **fields):
    """Leave a claim (and a partial file) as a writer that died would."""
    import json
    import socket

    folder = store.path(*prefix)
    os.makedirs(folder, exist_ok=True)
    claim = {"host": socket.gethostname(), "pid": os.getpid(), "token": "t", "claimed_utc": "2020-01-01T00:00:00+00:00"}
    with open(f"{folder}/.writer", "w") as handle:
        json.dump({**claim, **fields}, handle)
    with open(f"{folder}/partial.wav", "wb") as handle:
        handle.write(b"half")


def _source(tmp_path):
    src = tmp_path / "src.wav"
    src.write_bytes(os.urandom(1000))
    return src


def test_claim_of_a_killed_writer_is_taken_over(tmp_path):
    from pipeline.store import Store

    store = Store.open(tmp_path / "store")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _claim(store, ("stems", "song", "run-1"), pid=int(dead.stdout), claimed_utc="2999-01-01T00:00:00+00:00")
    store.publish_run(("stems", "song", "run-1"), {"a.wav": _source(tmp_path)}, kind="stems")
    assert store.verify_run("stems", "song", "run-1") == []
    assert sorted(os.listdir(store.path("stems", "song", "run-1"))) == [".writer", "a.wav", "manifest.json"]


def test_claim_older_than_the_lease_is_taken_over_and_a_live_one_is_not(tmp_path, monkeypatch):
    from pipeline.store import RunExistsError, Store

    store = Store.open(tmp_path / "store")
    _claim(store, ("stems", "song", "old"), host="elsewhere", pid=1)
    store.publish_run(("stems", "song", "old"), {"a.wav": _source(tmp_path)}, kind="stems")
    assert store.list_runs("stems", "song") == ["old"]
    fresh = dt_now_iso()
    _claim(store, ("stems", "song", "live"), host="elsewhere", pid=1, claimed_utc=fresh)
    with pytest.raises(RunExistsError, match="another writer"):
        store.publish_run(("stems", "song", "live"), {"a.wav": _source(tmp_path)}, kind="stems")
    monkeypatch.setenv("PIPELINE_CLAIM_LEASE_S", "1e-9")
    store.publish_run(("stems", "song", "live"), {"a.wav": _source(tmp_path)}, kind="stems")


def dt_now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def test_failure_after_the_claim_cleans_the_run_folder(tmp_path, monkeypatch):
    import errno

    from pipeline.errors import UserError
    from pipeline.store import Store

    store = Store.open(tmp_path / "store")
    real = Store.put_file

    def disk_full(self, source, *parts):
        real(self, source, *parts)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Store, "put_file", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        store.publish_run(("stems", "song", "r"), {"a.wav": _source(tmp_path), "b.wav": _source(tmp_path)}, kind="stems")
    assert not os.path.exists(store.path("stems", "song", "r"))
    monkeypatch.setattr(Store, "put_file", real)
    store.publish_run(("stems", "song", "r"), {"a.wav": _source(tmp_path)}, kind="stems")


def test_full_disk_while_publishing_keeps_latest_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    from pipeline.errors import UserError
    from pipeline.store import Store

    store = Store.open(tmp_path / "store")
    for run in ("r1", "r2"):
        store.publish_run(("models", "ecg", "m", run), {"a.wav": _source(tmp_path)}, kind="model")
    store.set_latest(("models", "ecg", "m"), "r1")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # what a full disk looks like after buffered writes
    with pytest.raises(UserError, match="cannot write .*latest.json: No space left on device"):
        store.set_latest(("models", "ecg", "m"), "r2")
    with pytest.raises(UserError, match="No space left on device"):
        store.put_bytes(b"card", "models", "ecg", "m", "r2", "MODEL_CARD.md")
    monkeypatch.undo()
    assert store.latest("models", "ecg", "m") == "r1"
    assert not list((tmp_path / "store").rglob(".tmp-*"))
    assert not os.path.exists(store.path("models", "ecg", "m", "r2", "MODEL_CARD.md"))


def _published_stems(tmp_store, tmp_path, outputs=None):
    """A stems run in the store; ``outputs`` overrides the manifest's output list."""
    import json

    from pipeline.store import MANIFEST, Store

    store = Store.open(tmp_store)
    src = _source(tmp_path)
    store.publish_run(("stems", "song-1", "run-1"), {"vocals.flac": src, "accompaniment.flac": src}, kind="svs-stems")
    if outputs is not None:
        manifest_path = store.path("stems", "song-1", "run-1", MANIFEST)
        manifest = json.loads(open(manifest_path).read())
        manifest["outputs"] = outputs(manifest["outputs"])
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle)
    return store


def test_stems_get_never_deletes_files_it_did_not_write(cli, tmp_path, tmp_store):
    store = _published_stems(tmp_store, tmp_path)
    with open(store.path("stems", "song-1", "run-1", "accompaniment.flac"), "wb") as handle:
        handle.write(b"corrupted")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("vocals.flac", "accompaniment.flac"):
        (out / name).write_bytes(b"the user's own good file")
    _assert_one_error(cli("stems", "get", "song-1", "-o", out), contains="checksum")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        "vocals.flac": b"the user's own good file", "accompaniment.flac": b"the user's own good file"}


def test_manifest_path_with_dotdot_touches_nothing(cli, tmp_path, tmp_store):
    _published_stems(tmp_store, tmp_path, lambda outputs: [*outputs, {**outputs[0], "path": "../escaped/x.flac"}])
    out = tmp_path / "sub" / "out"
    _assert_one_error(cli("stems", "get", "song-1", "-o", out), contains="invalid file name")
    assert not (tmp_path / "sub" / "escaped").exists()
    assert not out.exists() or not any(out.iterdir())


def test_store_that_is_a_file_is_one_line(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "store.txt"
    blocker.write_text("x")
    monkeypatch.setenv("PIPELINE_STORE", str(blocker))
    for args in (["stems", "list"], ["models", "list"], ["stems", "get", "t", "-o", tmp_path / "o"]):
        _assert_one_error(cli(*args), contains="is not a folder")


def test_unwritable_store_is_refused_before_separating(cli, tmp_path, monkeypatch):
    import pipeline.svs.separate as separate

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PIPELINE_STORE", str(blocker / "store"))
    monkeypatch.setattr(separate, "separate_array", lambda *a, **k: pytest.fail("separated before the store check"))
    _assert_one_error(cli("separate", _song(tmp_path), "--model", tiny_bundle(tmp_path / "model")),
                      contains="artifact store")


@pytest.fixture
def endpoint_404():
    """An HTTP endpoint that answers 404 to every request (a wrong S3 endpoint URL)."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case, message", [
    ("no server", "cannot reach the artifact store"),
    ("404", "has no bucket 'no-bucket'"),
    ("no credentials", "Unable to locate credentials"),
])
def test_unreachable_object_store_is_one_line(cli, monkeypatch, tmp_path, endpoint_404, case, message):
    import json

    s3fs = pytest.importorskip("s3fs")
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)  # fail fast: s3fs and botocore both retry
    options = {"endpoint_url": endpoint_404, "key": "k", "secret": "s",
               "config_kwargs": {"retries": {"max_attempts": 1}}}
    if case == "no server":
        options["endpoint_url"] = f"http://127.0.0.1:{_closed_port()}"
    if case == "no credentials":
        del options["key"], options["secret"]
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            monkeypatch.delenv(name, raising=False)
        for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            monkeypatch.setenv(name, str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PIPELINE_STORE", f"s3://no-bucket/{case.replace(' ', '-')}")
    monkeypatch.setenv("PIPELINE_STORE_OPTIONS", json.dumps(options))
    for args in (["stems", "list"], ["models", "list"], ["predict", SAMPLE_ECG / "JS00007"]):
        _assert_one_error(cli(*args), contains=message)


def test_stray_files_in_listings_are_skipped_with_a_warning(cli, tmp_path, tmp_store):
    _published_stems(tmp_store, tmp_path, None)
    (tmp_store / "stems" / "notes.txt").write_text("stray")
    (tmp_store / "models" / "ecg").mkdir(parents=True)
    (tmp_store / "models" / "ecg" / "README").write_text("stray")
    bad = tmp_store / "stems" / "odd-track" / "run-9"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text('{"outputs": [1, 2]}')
    listed = cli("stems", "list")
    assert listed.code == 0 and listed.out.split("\t")[:2] == ["song-1", "run-1"]
    assert listed.err.strip() == f"warning: skipping {tmp_store / 'stems' / 'notes.txt'}: not a folder"
    models = cli("models", "list")
    assert models.code == 0 and "warning: skipping" in models.err and "Traceback" not in models.err


# -- audit: store URLs, output paths, damaged model folders, configs ---------------------
@pytest.mark.parametrize("url, message", [
    ("foo://x", "unknown scheme 'foo://'"),
    ("s3://", "names no bucket or folder"),
])
def test_store_url_with_unknown_scheme_or_no_location_is_one_line(cli, monkeypatch, url, message):
    monkeypatch.setenv("PIPELINE_STORE", url)
    for args in (["models", "list"], ["stems", "list"], ["predict", SAMPLE_ECG / "JS00007"]):
        _assert_one_error(cli(*args), contains=message)


def test_output_paths_that_cannot_be_written_are_refused_before_any_work(cli, tmp_path, tmp_store, monkeypatch):
    import pipeline.ecg.evaluate as evaluate
    import pipeline.svs.evaluate as svs_evaluate

    monkeypatch.setattr(evaluate, "evaluate_paths", lambda *a, **k: pytest.fail("scored before the --out check"))
    monkeypatch.setattr(svs_evaluate, "evaluate_tracks", lambda *a, **k: pytest.fail("separated before the --out check"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "folder.png").mkdir()
    track = tmp_path / "tracks" / "song"
    track.mkdir(parents=True)
    for stem in ("vocals", "accompaniment"):
        sf.write(track / f"{stem}.flac", np.zeros((1600, 1)) + 0.1, 16000)
    record = SAMPLE_ECG / "JS00007"
    for args, message in [
        (["scalogram", record, "-o", tmp_path / "folder.png"], "is a folder"),
        (["scalogram", record, "-o", blocker / "x.png"], f"{blocker} is a file"),
        (["explain", record, "--model", "rule", "-o", blocker], f"{blocker} is a file"),
        (["evaluate", "ecg", SAMPLE_ECG, "--model", "rule", "--out", blocker / "report"], f"{blocker} is a file"),
        (["evaluate", "separator", tmp_path / "tracks", "--model", tiny_bundle(tmp_path / "model"), "--out", blocker],
         f"{blocker} is a file"),
    ]:
        _assert_one_error(cli(*args), contains=message)
    assert not list(tmp_path.glob(".tmp-*")) and not any((tmp_path / "folder.png").iterdir())


def _damaged(folder, damage):
    """``folder`` with file ``name`` (a glob: its first match) removed (``content`` None), replaced
    by bytes, or cut to ``content`` bytes."""
    name, content = damage
    name = sorted(folder.glob(name))[0].name
    if content is None:
        (folder / name).unlink()
    else:
        (folder / name).write_bytes(content if isinstance(content, bytes) else (folder / name).read_bytes()[:content])
    return folder


@pytest.mark.parametrize("damage, message", [
    (("model.json", b"{not json"), "is not valid JSON"),
    (("model.json", b"\xff\xfe\x00garbage"), "is not UTF-8 text"),
    (("model.json", b"[1, 2]"), "must hold a JSON object"),
    (("model.json", b'{"task": "ecg"}'), "model.json lacks 'model_name'"),
    (("*.onnx", 1000), "cannot load the model"),
])
def test_damaged_ecg_model_folder_is_one_line(cli, tmp_path, damage, message):
    import shutil

    from pipeline.store import DEFAULT_ROOT, Store

    bundled = Store.open(DEFAULT_ROOT)
    source = DEFAULT_ROOT / "models" / "ecg" / "ecg-default" / bundled.latest("models", "ecg", "ecg-default")
    folder = _damaged(Path(shutil.copytree(source, tmp_path / "model")), damage)
    _assert_one_error(cli("predict", SAMPLE_ECG / "JS00007", "--model", folder), contains=message)


@pytest.mark.parametrize("damage, backend, message", [
    (("model.json", b"{not json"), "auto", "is not valid JSON"),
    (("model.onnx", 500), "auto", "cannot load the model"),
    (("model.pt", 500), "torch", "cannot load the model"),
    (("model.pt", None), "torch", "has no model.pt"),
])
def test_damaged_separator_model_folder_is_one_line(tmp_path, damage, backend, message):
    from pipeline.errors import UserError
    from pipeline.svs.bundle import load_bundle

    folder = _damaged(tiny_bundle(tmp_path / "model"), damage)
    with pytest.raises(UserError, match=message) as info:
        load_bundle(folder, backend)
    assert "\n" not in str(info.value)


def test_limb_leads_that_cannot_be_one_recording_are_classified_with_a_note(cli, tmp_path):
    def swap_ii_and_iii(header):
        lines = header.splitlines()
        for k, line in enumerate(lines):
            if line.endswith(" II"):
                lines[k] = line[:-3] + " III"
            elif line.endswith(" III"):
                lines[k] = line[:-4] + " II"
        return "\n".join(lines) + "\n"

    clean = cli("predict", SAMPLE_ECG / "JS00007", "--model", "rule")
    assert clean.code == 0 and "note:" not in clean.err
    swapped = cli("predict", _record(tmp_path / "data", swap_ii_and_iii), "--model", "rule")
    assert swapped.code == 0 and swapped.out.startswith(str(tmp_path / "data" / "JS00007"))
    assert [line for line in swapped.err.splitlines() if line.startswith("note: JS00007: the limb leads break")]


def test_model_option_naming_a_file_says_so(cli, tmp_path):
    _assert_one_error(cli("predict", SAMPLE_ECG / "JS00007", "--model", SAMPLE_ECG / "JS00007.hea"),
                      contains="is a file")
    _assert_one_error(cli("separate", _song(tmp_path), "--model", SAMPLE_ECG / "JS00007.hea"), contains="is a file")


_FAST = (REPO / "configs" / "ecg" / "ecg-fast.yaml").read_text()


@pytest.mark.parametrize("text, message", [
    (b"\x87\xff binary \x00", "is not UTF-8 text"),
    (_FAST + "\nseed: 1\n", "key 'seed' appears twice"),
    (_FAST.replace("median_windows_s: [0.2, 0.6]", "median_windows_s: [-1, 0]"), "median_windows_s must be positive"),
    (_FAST.replace("bandpass_hz: null", "bandpass_hz: [0, 40]"), "0 < low < high"),
    (_FAST.replace("bandpass_hz: null", "bandpass_hz: [40, 5]"), "0 < low < high"),
    (_FAST.replace("min_duration_s: 8", "min_duration_s: 20"), "min_duration_s cannot exceed duration_s"),
    (_FAST.replace("fs: 500", "fs: 100"), "above the Nyquist frequency"),
])
def test_config_mistakes_are_refused_before_any_work(cli, tmp_path, text, message):
    config = tmp_path / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    _assert_one_error(cli("train", "ecg", "--config", config), contains=message)
    _assert_one_error(cli("scalogram", SAMPLE_ECG / "JS00007", "-o", tmp_path / "s.png", "--config", config),
                      contains=message)
    assert not (tmp_path / "s.png").exists()


def test_config_that_is_a_folder_is_one_line(cli, tmp_path):
    _assert_one_error(cli("train", "ecg", "--config", tmp_path), contains="is a folder")


def test_binary_record_list_is_one_line(cli, tmp_path):
    listing = tmp_path / "only.txt"
    listing.write_bytes(b"\xc8\xff\x00\x01")
    _assert_one_error(cli("evaluate", "ecg", SAMPLE_ECG, "--model", "rule", "--only", listing), contains="not UTF-8")


def test_failed_evaluation_prints_no_progress_bar(cli, tmp_path):
    folder = _record(tmp_path / "data", lambda header: header.replace("#Dx: 164889003,164934002", "#Dx: ")).parent
    _assert_one_error(cli("evaluate", "ecg", folder, "--model", "rule"), contains="no usable labelled records")


def test_flow_run_logs_a_user_error_without_its_traceback():
    import logging

    from pipeline.cli.flow import _UserErrorWithoutTraceback
    from pipeline.errors import UserError

    def record(exc):
        try:
            raise exc
        except Exception:
            return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    quiet, bug = record(UserError("bad inbox")), record(ValueError("a bug"))
    assert _UserErrorWithoutTraceback().filter(quiet) and quiet.exc_info is None
    assert _UserErrorWithoutTraceback().filter(bug) and bug.exc_info is not None


def test_scratch_of_a_killed_process_is_removed_by_the_next_one(tmp_path, monkeypatch):
    """kill -9 skips TemporaryDirectory's cleanup; the next scratch folder of the same kind removes it,
    and leaves live owners' and other hosts' folders alone."""
    import tempfile

    from pipeline.scratch import scratch_dir

    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, pathlib\n"
        "from pipeline.scratch import scratch_dir\n"
        "d = scratch_dir('pipeline-separate-')\n"
        "(pathlib.Path(d.name) / 'vocals.flac').write_bytes(b'x' * 1000)\n"
        "print(d.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")], capture_output=True, text=True, env=env)
    assert killed.returncode == -signal.SIGKILL
    leaked = Path(killed.stdout.strip())
    assert leaked.parent == tmp_path and (leaked / "vocals.flac").is_file()
    dead_pid = leaked.name.split(".")[1].split("-")[0]
    other_host = tmp_path / f"pipeline-separate-00000000.{dead_pid}-abc"  # same dead pid, another host
    other_host.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with scratch_dir("pipeline-separate-") as live:
        with scratch_dir("pipeline-separate-") as second:
            assert not leaked.exists()
            assert Path(live).is_dir() and Path(second).is_dir() and other_host.is_dir()
    assert not Path(live).exists() and not Path(second).exists()
