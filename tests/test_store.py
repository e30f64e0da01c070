"""Artifact store: layout, manifest-last protocol, faults (killed and concurrent writers), S3.

The S3 tests talk HTTP to a real moto server process on a loopback port (no Python mock).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.store import MANIFEST, RunExistsError, Store, new_run_id, validate_id

REPO = Path(__file__).resolve().parent.parent


def _files(tmp_path: Path, **contents: bytes) -> dict[str, Path]:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    out = {}
    for name, data in contents.items():
        path = folder / name.replace("_", ".")
        path.write_bytes(data)
        out[path.name] = path
    return out


def _run_writer(env: dict[str, str], code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a separate writer process) with the store env."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env}, cwd=REPO,
        capture_output=True, text=True, timeout=timeout,
    )


# -- ids and paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "/etc", "", ".hidden", "a" * 129, "a..b", "x\x00"])
def test_validate_id_rejects_escaping_or_odd_ids(bad):
    with pytest.raises(UserError):
        validate_id(bad)


@pytest.mark.parametrize("bad", ["..", "a/../b", "/abs", "", "a//b", "a\\b"])
def test_store_paths_reject_traversal(tmp_path, bad):
    store = Store.open(tmp_path)
    with pytest.raises(UserError):
        store.path("stems", bad)


def test_display_path_is_relative_beside_the_repository_and_kept_elsewhere(tmp_path):
    from pipeline.config import REPO_ROOT, display_path

    assert display_path(REPO_ROOT / ".." / "shared" / "data" / "ecg") == "../shared/data/ecg"
    assert display_path(REPO_ROOT / "samples") == "samples"
    assert display_path("s3://bucket/data") == "s3://bucket/data"
    outside = "/" + REPO_ROOT.parts[1] + "-elsewhere/data" if len(REPO_ROOT.parts) > 2 else str(tmp_path)
    assert display_path(outside) == outside


def test_run_ids_are_unique_and_sortable():
    ids = [new_run_id() for _ in range(200)]
    assert len(set(ids)) == len(ids)
    assert all(validate_id(i) for i in ids)
    later = new_run_id()
    assert later > ids[0]


def test_open_reads_env_and_file_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_STORE", str(tmp_path / "s"))
    assert Store.open().root == str(tmp_path / "s")
    assert Store.open(f"file://{tmp_path}/t").root == str(tmp_path / "t")
    monkeypatch.setenv("PIPELINE_STORE_OPTIONS", "[1]")
    with pytest.raises(UserError):
        Store.open()


# -- local round trip ------------------------------------------------------------------------
def test_publish_read_latest_and_fetch_round_trip(tmp_path):
    store = Store.open(tmp_path / "store")
    files = _files(tmp_path, vocals_wav=b"V" * 1000, accompaniment_wav=b"A" * 500)
    first, second = new_run_id(), new_run_id()
    uri = store.publish_run(("stems", "song-1", first), files, kind="stems", metrics={"seconds": 1.5},
                            inputs=[{"uri": "in.wav", "sha256": "0" * 64}])
    assert uri == store.uri("stems", "song-1", first)
    store.set_latest(("stems", "song-1"), first)
    store.publish_run(("stems", "song-1", second), files, kind="stems")
    assert store.list_runs("stems", "song-1") == [first, second]
    assert store.latest("stems", "song-1") == first  # the pointer wins over "newest"
    pointer = json.loads((tmp_path / "store" / "stems" / "song-1" / "latest.json").read_text())
    assert pointer["path"] == f"stems/song-1/{first}" and str(tmp_path) not in json.dumps(pointer)  # store can move
    manifest = store.read_manifest("stems", "song-1", first)
    assert manifest["kind"] == "stems" and manifest["run_id"] == first
    assert {o["path"] for o in manifest["outputs"]} == {"vocals.wav", "accompaniment.wav"}
    assert manifest["metrics"] == {"seconds": 1.5}
    assert store.verify_run("stems", "song-1", first) == []
    fetched = store.fetch_run(("stems", "song-1", first), tmp_path / "out")
    assert fetched["vocals.wav"].read_bytes() == b"V" * 1000
    assert store.list_dir("stems") == ["song-1"]
    assert not list((tmp_path / "store").rglob(".tmp-*"))


def test_completed_runs_are_immutable(tmp_path):
    store = Store.open(tmp_path)
    files = _files(tmp_path, a_txt=b"1")
    store.publish_run(("reports", "x", "r1"), files, kind="report")
    with pytest.raises(RunExistsError):
        store.publish_run(("reports", "x", "r1"), files, kind="report")


def test_reserved_and_malicious_file_names_are_rejected(tmp_path):
    store = Store.open(tmp_path)
    src = _files(tmp_path, a_txt=b"1")["a.txt"]
    for name in (MANIFEST, "latest.json", "../escape", "/abs"):
        with pytest.raises(UserError):
            store.publish_run(("reports", "x", new_run_id()), {name: src}, kind="report")
    with pytest.raises(UserError):
        store.publish_run(("stems", "..", "r"), {"a.txt": src}, kind="stems")
    assert not (tmp_path / "escape").exists()


def test_fetch_with_malicious_ids_is_rejected_before_touching_disk(tmp_path):
    store = Store.open(tmp_path / "store")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / MANIFEST).write_text(json.dumps({"outputs": []}))
    for prefix in (("stems", "..", "secret"), ("stems", "../../secret", "x"), ("stems", "/etc", "x")):
        with pytest.raises(UserError):
            store.fetch_run(prefix, tmp_path / "out")
        with pytest.raises(UserError):
            store.read_manifest(*prefix)


def test_stems_get_cli_rejects_malicious_track_id(tmp_path):
    pytest.importorskip("pipeline.cli.stems", reason="'pipeline stems' command not written yet")
    result = subprocess.run(
        [sys.executable, "-c", "from pipeline.cli import main; main()",
         "stems", "get", "../../etc", "-o", str(tmp_path / "o")],
        env={**os.environ, "PIPELINE_STORE": str(tmp_path / "store")}, cwd=REPO, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error:") and "invalid" in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_tampered_output_is_detected(tmp_path):
    store = Store.open(tmp_path / "store")
    store.publish_run(("models", "ecg", "m", "r1"), _files(tmp_path, w_bin=b"weights"), kind="model")
    (tmp_path / "store" / "models" / "ecg" / "m" / "r1" / "w.bin").write_bytes(b"tampered")
    assert store.verify_run("models", "ecg", "m", "r1") == ["w.bin: sha256 mismatch"]
    with pytest.raises(UserError, match="checksum"):
        store.fetch_run(("models", "ecg", "m", "r1"), tmp_path / "out")
    assert not (tmp_path / "out" / "w.bin").exists()


def test_corrupt_manifest_and_dangling_latest_are_ignored(tmp_path):
    store = Store.open(tmp_path)
    files = _files(tmp_path, a_txt=b"1")
    store.publish_run(("stems", "t", "r1"), files, kind="stems")
    run2 = tmp_path / "stems" / "t" / "r2"
    run2.mkdir()
    (run2 / MANIFEST).write_text('{"outputs": [')  # truncated JSON
    (tmp_path / "stems" / "t" / "latest.json").write_text(json.dumps({"run_id": "r2"}))
    assert store.read_manifest("stems", "t", "r2") is None
    assert store.list_runs("stems", "t") == ["r1"]
    assert store.latest("stems", "t") == "r1"
    with pytest.raises(UserError, match="no manifest"):
        store.set_latest(("stems", "t"), "r2")
    (tmp_path / "stems" / "t" / "latest.json").write_text(json.dumps({"run_id": "../../x"}))
    assert store.latest("stems", "t") == "r1"


# -- faults: killed writer, concurrent writers -----------------------------------------------
_KILLED_WRITER = """
    import os, signal
    from pathlib import Path
    from pipeline.store import Store
    store = Store.open()
    calls = []
    original = Store.put_file
    def put_then_die(self, source, *parts):
        calls.append(parts)
        original(self, source, *parts)
        if len(calls) == 2:           # second output written, manifest not yet
            os.kill(os.getpid(), signal.SIGKILL)
    Store.put_file = put_then_die
    src = Path(os.environ["SRC"])
    store.publish_run(("stems", "song", "killed-run"), {"a.wav": src, "b.wav": src, "c.wav": src}, kind="stems")
    store.set_latest(("stems", "song"), "killed-run")
"""


def _assert_killed_write_invisible(store: Store, tmp_path: Path, complete_run: str) -> None:
    assert store.read_manifest("stems", "song", "killed-run") is None
    assert store.list_runs("stems", "song") == [complete_run]
    assert store.latest("stems", "song") == complete_run
    problems = store.verify_run("stems", "song", "killed-run")
    assert problems == [f"{store.uri('stems', 'song', 'killed-run')}: no manifest"]
    with pytest.raises(UserError, match="no complete run"):
        store.fetch_run(("stems", "song", "killed-run"), tmp_path / "fetched")
    assert store.sweep_incomplete("stems", "song", older_than_s=3600) == []
    assert store.sweep_incomplete("stems", "song", older_than_s=0) == ["killed-run"]
    assert store.list_dir("stems", "song") == [complete_run]


def _killed_write(store: Store, tmp_path: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src.wav"
    src.write_bytes(os.urandom(4096))
    complete = "0-complete"
    store.publish_run(("stems", "song", complete), {"a.wav": src}, kind="stems")
    store.set_latest(("stems", "song"), complete)
    result = _run_writer({**env, "SRC": str(src)}, _KILLED_WRITER)
    assert result.returncode == -9, result.stderr
    _assert_killed_write_invisible(store, tmp_path, complete)


def test_write_killed_midway_leaves_nothing_readers_accept(tmp_path):
    root = tmp_path / "store"
    _killed_write(Store.open(root), tmp_path, {"PIPELINE_STORE": str(root)})
    assert not list(root.rglob(".tmp-*"))


_CONCURRENT_WRITER = """
    import os, sys, time
    from pathlib import Path
    from pipeline.store import Store, new_run_id
    store = Store.open()
    me = sys.argv[1]
    start = float(os.environ["START_AT"])
    time.sleep(max(0.0, start - time.time()))
    for i in range(int(os.environ["N_RUNS"])):
        src = Path(os.environ["TMP"]) / f"{me}-{i}.wav"
        src.write_bytes((me * 50000).encode() + bytes([i]))
        run = new_run_id()
        store.publish_run(("stems", "shared-track", run), {"vocals.wav": src, "accompaniment.wav": src},
                          kind="stems", extra={"writer_name": me})
        store.set_latest(("stems", "shared-track"), run)
        print(run)
"""


def _concurrent_writers(store: Store, tmp_path: Path, env: dict[str, str], n_runs: int) -> None:
    start = time.time() + 2.0  # both interpreters are up by then; they then write at the same time
    common = {**env, "START_AT": str(start), "N_RUNS": str(n_runs), "TMP": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(_CONCURRENT_WRITER), name],
                         env={**os.environ, **common}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for name in ("w1", "w2")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    written = {name: out.split() for name, (out, _) in zip(("w1", "w2"), outputs)}
    all_runs = written["w1"] + written["w2"]
    assert len(set(all_runs)) == 2 * n_runs
    assert store.list_runs("stems", "shared-track") == sorted(all_runs)
    for name, runs in written.items():
        for run in runs:
            assert store.verify_run("stems", "shared-track", run) == []
            manifest = store.read_manifest("stems", "shared-track", run)
            assert manifest["writer_name"] == name
            data = store.fs.cat_file(store.path("stems", "shared-track", run, "vocals.wav"))
            assert data.startswith(name.encode() * 10)
    assert store.latest("stems", "shared-track") in all_runs


def test_concurrent_writers_of_one_track_do_not_corrupt_each_other(tmp_path):
    root = tmp_path / "store"
    _concurrent_writers(Store.open(root), tmp_path, {"PIPELINE_STORE": str(root)}, n_runs=3)


def _same_run_race(store: Store, tmp_path: Path) -> None:
    src_a, src_b = tmp_path / "a.wav", tmp_path / "b.wav"
    src_a.write_bytes(b"A" * 10000)
    src_b.write_bytes(b"B" * 10000)
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def write(name: str, src: Path) -> None:
        barrier.wait()
        try:
            store.publish_run(("stems", "race", "same-id"), {"vocals.wav": src}, kind="stems", extra={"who": name})
            outcome[name] = "ok"
        except RunExistsError:
            outcome[name] = "refused"

    threads = [threading.Thread(target=write, args=("a", src_a)), threading.Thread(target=write, args=("b", src_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcome.values()) == ["ok", "refused"]
    winner = next(k for k, v in outcome.items() if v == "ok")
    assert store.read_manifest("stems", "race", "same-id")["who"] == winner
    assert store.verify_run("stems", "race", "same-id") == []


def test_two_writers_of_the_same_run_id_one_is_refused(tmp_path):
    _same_run_race(Store.open(tmp_path), tmp_path)


# -- S3 over HTTP (moto server on loopback) ----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_store(s3_endpoint, request):
    import s3fs

    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    bucket = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    s3fs.S3FileSystem(**options).mkdir(bucket)
    store = Store.open(f"s3://{bucket}/pipeline", options)
    env = {"PIPELINE_STORE": store.root, "PIPELINE_STORE_OPTIONS": json.dumps(options)}
    return store, env


def test_s3_round_trip_and_claims(s3_store, tmp_path):
    store, env = s3_store
    assert not store.is_local
    files = _files(tmp_path, vocals_wav=os.urandom(3000), accompaniment_wav=os.urandom(2000))
    run = new_run_id()
    uri = store.publish_run(("stems", "track-1", run), files, kind="stems")
    assert uri.startswith("s3://")
    store.set_latest(("stems", "track-1"), run)
    assert store.latest("stems", "track-1") == run
    assert store.list_runs("stems", "track-1") == [run]
    assert store.list_dir("stems") == ["track-1"]
    assert store.verify_run("stems", "track-1", run) == []
    fetched = store.fetch_run(("stems", "track-1", run), tmp_path / "out")
    assert fetched["vocals.wav"].read_bytes() == files["vocals.wav"].read_bytes()
    with pytest.raises(RunExistsError):
        store.publish_run(("stems", "track-1", run), files, kind="stems")
    # a second process sees the same store through PIPELINE_STORE / PIPELINE_STORE_OPTIONS
    result = _run_writer(env, "from pipeline.store import Store; print(Store.open().latest('stems', 'track-1'))")
    assert result.stdout.strip() == run, result.stderr
    with pytest.raises(UserError):
        store.fetch_run(("stems", "..", run), tmp_path / "out2")


def test_s3_write_killed_midway_leaves_nothing_readers_accept(s3_store, tmp_path):
    store, env = s3_store
    _killed_write(store, tmp_path, env)


def test_s3_concurrent_writers_of_one_track(s3_store, tmp_path):
    store, env = s3_store
    _concurrent_writers(store, tmp_path, env, n_runs=2)


def test_s3_same_run_id_race_is_refused_by_conditional_put(s3_store, tmp_path):
    store, _ = s3_store
    _same_run_race(store, tmp_path)


def test_s3_concurrent_takeovers_of_a_stale_claim_one_wins(s3_store, monkeypatch):
    store, _ = s3_store
    prefix = ("stems", "track-1", "run-1")
    dead = {"host": "elsewhere", "pid": 1, "token": "dead", "claimed_utc": "2020-01-01T00:00:00+00:00"}
    store.fs.pipe_file(store.path(*prefix, ".writer"), json.dumps(dead).encode())
    real, raced = Store._read_claim, []

    def rival_takes_over_first(self, path):
        claim = real(self, path)
        if not raced:  # this writer has read the stale claim; a rival takes it over before it acts
            raced.append(True)
            Store.open(store.root, store.options).claim_run(*prefix)
        return claim

    monkeypatch.setattr(Store, "_read_claim", rival_takes_over_first)
    with pytest.raises(RunExistsError):
        store.claim_run(*prefix)
    monkeypatch.undo()
    winner = json.loads(store.fs.cat_file(store.path(*prefix, ".writer")))
    assert raced and winner["token"] != "dead" and winner["pid"] == os.getpid()
