"""The warm guest's pure parts (workflows/warm/model.py), its status files against /proc
(workflows/warm/record.py, on this test's own processes) and its socket (workflows/warm/channel.py
against a socket served by a thread). No VM."""

import os
import shutil
import socket
import subprocess
import sys
import time
import tempfile
import threading
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.options import RunOptions
from harness.core.suite import ModuleSpec
from harness.workflows.warm.model import (
    WarmRecord,
    decode,
    encode,
    first_evidence,
    guest_knobs,
    is_server_cmdline,
    parse_record,
    pick_module,
    request_timeout,
    run_request,
    spec_from_json,
    spec_to_json,
    stale_reason,
    unfit_reason,
    verdict_lines,
)
from harness.frontends import cli
from harness.stages import owned
from harness.workflows.warm import record as warm_record
from harness.stages.sockdir import make_sockdir
from harness.workflows.warm.channel import WarmError, call

SERVER_ARGV = [sys.executable, "-m", "harness.workflows.warm.server", "--run-dir", "/x"]


def _rec(**kw) -> WarmRecord:
    base = dict(pid=1234, started="555", run_dir="/a/warm-1", socket="/tmp/hm-x/warm.sock",
                state="ready", knobs=guest_knobs(RunOptions(accel="tcg")),
                vmlinux="/b/vmlinux", vmlinux_ident="/b/vmlinux:10:20", source_identity="tar:x")
    base.update(kw)
    return WarmRecord(**base)


# --- the status record ---

def test_record_round_trip():
    rec = _rec()
    assert parse_record(rec.to_json()) == rec


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"pid": 1}',
                                  '{"pid": "12", "started": "1", "run_dir": "/a", "socket": "/s"}',
                                  '{"pid": 0, "started": "1", "run_dir": "/a", "socket": "/s"}',
                                  '{"pid": 5, "started": "1", "run_dir": "", "socket": "/s"}'])
def test_record_that_is_not_one(text):
    assert parse_record(text) is None


def test_record_ignores_unknown_keys():
    text = _rec().to_json().replace('"pid"', '"future": 1, "pid"')
    assert parse_record(text) == _rec()


# --- stale or alive ---

def test_server_cmdline():
    assert is_server_cmdline(SERVER_ARGV)
    assert not is_server_cmdline([sys.executable, "-m", "harness.cli", "run"])
    assert not is_server_cmdline(["vim", "harness/workflows/warm/server.py"])


def test_stale_reasons():
    rec = _rec()
    assert stale_reason(rec, SERVER_ARGV, "555") is None
    assert "is gone" in stale_reason(rec, None, None)
    assert "another program" in stale_reason(rec, ["sleep", "100"], "555")
    assert "reused" in stale_reason(rec, SERVER_ARGV, "999")
    assert "failed to start: no kernel" in stale_reason(_rec(state="failed", error="no kernel"),
                                                        SERVER_ARGV, "555")
    # a server still starting is alive (not stale), but does not fit a run yet
    assert stale_reason(_rec(state="starting"), SERVER_ARGV, "555") is None


def test_fit():
    rec = _rec()
    knobs = guest_knobs(RunOptions(accel="tcg"))
    assert unfit_reason(rec, knobs, "/b/vmlinux:10:20", "tar:x") is None
    assert unfit_reason(rec, knobs, "/b/vmlinux:10:20", None) is None
    assert "starting" in unfit_reason(_rec(state="starting"), knobs, "/b/vmlinux:10:20", None)
    other = guest_knobs(RunOptions(accel="tcg", memory="6G"))
    assert "--memory 'auto', this run has '6G'" in unfit_reason(rec, other, "/b/vmlinux:10:20",
                                                              None)
    cfg = guest_knobs(RunOptions(accel="tcg", configs=["debug-kmap-local"]))
    why = unfit_reason(rec, cfg, "/b/vmlinux:10:20", None)
    assert "--config '', this run has 'debug-kmap-local'" in why
    assert "rebuilt" in unfit_reason(rec, knobs, "/b/vmlinux:11:20", None)
    assert "rebuilt" in unfit_reason(rec, knobs, None, None)
    assert "source changed" in unfit_reason(rec, knobs, "/b/vmlinux:10:20", "tar:y")


def test_knobs_cover_the_guest_not_the_run():
    a = guest_knobs(RunOptions(accel="tcg", timeout=5, reset=False))
    assert a == guest_knobs(RunOptions(accel="tcg"))
    assert a != guest_knobs(RunOptions(accel="tcg", snapshot=False))
    assert a != guest_knobs(RunOptions(accel="tcg", append="quiet"))


# --- request and response lines ---

def test_messages_round_trip():
    spec = ModuleSpec("kmap_local_misuse", "which=order", ("kernel BUG",), True, 30.0, ("x",))
    assert spec_from_json(spec_to_json(spec)) == spec
    req = run_request((spec,), {"my": "/m"}, "/r", False)
    back = decode(encode(req))
    line = encode(req)
    assert encode(back) == line and line.endswith(b"\n") and line.count(b"\n") == 1
    assert spec_from_json(back["specs"][0]) == spec
    assert request_timeout(back) > 30.0 + 600
    assert decode(b'{"ok": true}\n') == {"ok": True}


@pytest.mark.parametrize("line", [b"[]\n", b"{}\n", b"nonsense\n", b'{"x": 1}\n'])
def test_bad_messages(line):
    with pytest.raises(ValueError):
        decode(line)


# --- the verdict `highmem watch` prints ---

def _module(**kw):
    m = {"name": "my_test", "params": "", "passed": True, "status": "PASS", "failure": None,
         "reasons": [], "checkpoints": [{"index": 1, "label": "c: mapped", "error": None,
                                         "checks": [{"label": "c: mapped", "mismatches": []}]}],
         "ktap": [{"name": "c", "status": "PASS"}]}
    m.update(kw)
    return m


def test_verdict_pass():
    assert verdict_lines({"modules": [_module()]}, 2.34) == [
        "my_test: PASS (1 cases, 1 PTEs)  [2.3 s from save to verdict]"]
    assert verdict_lines({"modules": [_module()]}) == ["my_test: PASS (1 cases, 1 PTEs)"]


def test_verdict_names_the_case_and_field():
    cps = [{"index": 1, "label": "c: mapped", "error": None, "checks": [
        {"label": "c: mapped", "mismatches": ["PFN: expected 0x23f001, got 0x23f000",
                                              "NX: expected set, got clear"]}]}]
    m = _module(passed=False, status="FAIL", checkpoints=cps,
                reasons=["KTAP case c: FAIL", "checkpoint c: mapped: FAIL"])
    assert verdict_lines({"modules": [m]}) == [
        "my_test: FAIL: c: mapped: PFN: expected 0x23f001, got 0x23f000"]


def test_verdict_of_a_module_that_does_not_compile():
    cause = ("my_test did not compile: /m/my_test.c:20:24: error: expected ';' before 'x' "
             "(log: /c/build.log)")
    m = _module(passed=False, status="NO BUILD", checkpoints=[], ktap=[],
                failure={"kind": "build", "cause": cause, "line": "build: " + cause})
    assert verdict_lines({"modules": [m]}) == [
        "my_test: NO BUILD: /m/my_test.c:20:24: error: expected ';' before 'x'"]


def test_verdict_other_failures():
    bad = [{"index": 2, "label": "?", "error": "bad magic 0x1", "checks": []}]
    m = _module(passed=False, status="FAIL", checkpoints=bad)
    assert first_evidence(m) == "checkpoint 2: bad magic 0x1"
    m = _module(passed=False, status="FAIL", checkpoints=[],
                reasons=["crash: oops in my_test: BUG: NULL"])
    boot = {"number": 2, "passed": False, "reasons": ["boot: panic"]}
    assert verdict_lines({"modules": [m], "boots": [boot]}, 1.0) == [
        "my_test: FAIL: crash: oops in my_test: BUG: NULL",
        "boot 2: FAIL: boot: panic  [1.0 s from save to verdict]"]
    assert verdict_lines({"modules": []}) == ["no module ran"]


# --- watch's module choice (its saves: test_watch_saves.py) ---

def test_pick_module():
    assert pick_module(None, ["my_test"], "/m") == "my_test"
    assert pick_module(None, ["hm_checkpoint", "kmap"], "/m") == "kmap"
    assert pick_module("b", ["a", "b"], "/m") == "b"
    with pytest.raises(HarnessError, match="builds 2 modules"):
        pick_module(None, ["a", "b"], "/m")
    with pytest.raises(HarnessError, match="not in obj-m"):
        pick_module("c", ["a", "b"], "/m")
    with pytest.raises(HarnessError, match="none in obj-m"):
        pick_module(None, [], "/m")


def test_watch_usage_errors(tmp_path, capsys):
    assert cli.main(["watch", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["watch", str(tmp_path)]) == 2
    assert "has no Kbuild" in capsys.readouterr().err
    (tmp_path / "Kbuild").write_text("obj-m += a.o b.o\n")
    assert cli.main(["watch", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "builds 2 modules (a, b)" in err and "fix: name it: --module NAME" in err


# --- status files against /proc ---

def _write(root: Path, name: str, rec: WarmRecord) -> Path:
    """A warm directory as `highmem up`'s client leaves it: marked, its lock not held."""
    d = root / name
    d.mkdir(parents=True)
    owned.mark(d, "warm", hold=False)
    return warm_record.write_record(d, rec)


def test_find_records_alive_gone_and_foreign(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path))  # the image (and its keep link) in it
    sleeper = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        sockdir = make_sockdir(Path(tempfile.gettempdir()))  # owned by this (live) process
        foreign = _rec(pid=sleeper.pid, started=warm_record.proc_facts(sleeper.pid)[1],
                       socket=str(sockdir / "warm.sock"))
        keep = tmp_path / f".warm-keep-{dead.pid}-initramfs-x.cpio.gz"
        keep.write_bytes(b"")
        gone = _rec(pid=dead.pid, socket="/nonexistent/warm.sock",
                    image=str(tmp_path / "initramfs-x.cpio.gz"))
        _write(tmp_path, "warm-20260101-000000-0", foreign)
        _write(tmp_path, "warm-20260101-000000-1", gone)
        (tmp_path / "warm-20260101-000000-2").mkdir()
        owned.mark(tmp_path / "warm-20260101-000000-2", "warm", hold=False)
        (tmp_path / "warm-20260101-000000-2" / "warm.json").write_text("{half")
        found = {f.path.parent.name[-1]: f for f in warm_record.find_records(tmp_path)}
        assert "another program" in found["0"].stale
        assert "is gone" in found["1"].stale
        assert found["2"].stale == "unreadable status file"
        assert warm_record.live_records(tmp_path) == []
        assert not list(tmp_path.glob("*/warm.json"))
        assert sockdir.is_dir()  # its owner (this process) lives: never removed
        assert not keep.exists()  # the dead server's hard link to its image
    finally:
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_a_live_server_is_found(tmp_path):
    """A process whose argv is the server's counts as alive (here: a python that sleeps
    under that argv)."""
    code = "import time; time.sleep(60)"
    p = subprocess.Popen([sys.executable, "-c", code, "harness.workflows.warm.server"])
    try:
        for _ in range(200):  # until the child has exec'd (its cmdline names the server)
            words, start = warm_record.proc_facts(p.pid)
            if words and start and "harness.workflows.warm.server" in " ".join(words):
                break
            time.sleep(0.01)
        _write(tmp_path, "warm-20260101-000000-0", _rec(pid=p.pid, started=start))
        assert [r.pid for r in warm_record.live_records(tmp_path)] == [p.pid]
        _write(tmp_path, "warm-20260101-000000-1", _rec(pid=p.pid, started="1"))
        assert len(warm_record.live_records(tmp_path)) == 1  # the pid-reuse one removed
    finally:
        p.kill()
        p.wait()


def test_remove_stale_leaves_a_foreign_directory(tmp_path):
    d = tmp_path / "hm-notours"
    d.mkdir()
    path = _write(tmp_path, "warm-20260101-000000-0", _rec(socket=str(d / "warm.sock")))
    warm_record.remove_stale(warm_record.Found(path, warm_record.read_record(path), "gone"))
    assert d.is_dir() and not path.exists()


# --- the socket ---

def _serve_once(path: str, answer: bytes | None) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.recv(65536)
            if answer is None:
                threading.Event().wait(2.0)  # never answers within the client's timeout
            else:
                conn.sendall(answer)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_call(tmp_path):
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        s = os.path.join(d, "s")
        _serve_once(s, b'{"ok": true, "x": 1}\n')
        assert call(Path(s), {"op": "status"}, 5.0) == {"ok": True, "x": 1}
        os.unlink(s)
        _serve_once(s, b'{"ok": false, "error": "broken", "fix": "mend it"}\n')
        with pytest.raises(WarmError) as e:
            call(Path(s), {"op": "status"}, 5.0)
        assert (e.value.what, e.value.fix) == ("broken", "mend it")
        os.unlink(s)
        _serve_once(s, None)
        with pytest.raises(WarmError, match="did not answer in time"):
            call(Path(s), {"op": "status"}, 0.5)
        os.unlink(s)
        _serve_once(s, b"")
        with pytest.raises(WarmError, match="closed the connection"):
            call(Path(s), {"op": "status"}, 5.0)
        with pytest.raises(WarmError, match="cannot reach"):
            call(Path(d) / "nope", {"op": "status"}, 1.0)


def test_clean_leaves_a_live_warm_guest_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                          "harness.workflows.warm.server"])
    try:
        for _ in range(200):  # until the child has exec'd (its cmdline names the server)
            words, start = warm_record.proc_facts(p.pid)
            if words and start and "harness.workflows.warm.server" in " ".join(words):
                break
            time.sleep(0.01)
        _write(tmp_path, "warm-20260101-000000-0", _rec(pid=p.pid, started=start))
        _write(tmp_path, "warm-20260101-000000-1", _rec(pid=p.pid, started="1"))  # stale
        (tmp_path / "run-20260101-000000-0").mkdir()
        owned.mark(tmp_path / "run-20260101-000000-0", "run", hold=False)  # a run that ended
        assert cli.main(["clean"]) == 0
        assert "its warm guest is up" in capsys.readouterr().out
        assert sorted(d.name for d in tmp_path.iterdir()) == ["warm-20260101-000000-0"]
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("args", [["--idle-timeout", "0"], ["--wait", "-1"],
                                  ["--idle-timeout", "nan"]])
def test_up_usage_errors(args, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path))
    assert cli.main(["up", *args]) == 2
    err = capsys.readouterr().err
    assert "is not a positive number of seconds" in err and "fix:" in err
    assert not list(tmp_path.iterdir())  # nothing started


def test_the_image_outlives_pruning(tmp_path, monkeypatch):
    """The server's image, pruned by another run, is put back (the same inode: size and
    mtime, hence the snapshot key, unchanged); leftovers of killed servers are swept."""
    from harness.workflows.warm import server as warm_server
    from harness.operations import StageOperations

    img = tmp_path / "initramfs-abc.cpio.gz"
    img.write_bytes(b"image")
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f"{warm_server.KEEP_PREFIX}{dead.pid}-initramfs-old.cpio.gz"
    leftover.write_bytes(b"old")
    booted = []
    monkeypatch.setattr(StageOperations, "boot", lambda self, k, i, o, r: booted.append(i))
    ops = warm_server.WarmOperations()
    ops.keep_image(img)
    assert not leftover.exists()
    st = img.stat()
    img.unlink()  # pruned
    ops.boot(None, img, RunOptions(), tmp_path)  # type: ignore[arg-type]
    assert booted == [img] and img.read_bytes() == b"image"
    assert (img.stat().st_ino, img.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    ops.close()
    assert not list(tmp_path.glob(f"{warm_server.KEEP_PREFIX}*")) and img.exists()
