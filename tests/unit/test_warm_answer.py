"""The warm guest's answer as files (workflows/warm/answer.py, warm_server.run_answer): an
answer larger than the socket's line limit goes through to `highmem run` and to the pytest
plugin, whole, while the same answer inline in the line is refused as oversized (the
limit is made small here so the report need not be 64 MiB). No VM: the server's real answer
code, a thread serving it on a unix socket, the real client."""

import json
import os
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from harness.core.checkpoint import Expect, PteCheck
from harness.core.ktap import Case, Suite
from harness.core.options import RunOptions
from harness.core.phases import Phases
from harness.core.results import ModuleResult, RunResult, Stop
from harness.core.suite import ModuleSpec
from harness.workflows.warm.model import WarmRecord, encode
from harness.workflows.warm import client as warm_client
from harness.workflows.warm.server import run_answer
from harness.workflows.warm import channel as warm_channel
from harness.stages.sockdir import OWNER
from harness.workflows.warm.answer import ANSWERS_KEPT, next_answer_dir, read_answer
from harness.workflows.warm.channel import WarmError

LIMIT = 1 << 20         # the socket line limit for these tests (MAX_LINE is 64 MiB)
CHECKS = 20000          # report.json about 5 MiB: five times the limit


def big_result(run_dir: Path) -> RunResult:
    ex = Expect("range", 1, 0xF8000000, 0x23F000, CHECKS, CHECKS, "big: range")
    checks = [PteCheck("big: range", "range", 0xF8000000 + 4096 * i, 0x800000023F000163 +
                       (i << 12), 0x800000023F000163 + (i << 12), "P RW A D NX", 0x23F000 + i,
                       [], 0x23F000000 + (i << 12), 0x23F000000 + (i << 12))
              for i in range(CHECKS)]
    m = ModuleResult(ModuleSpec("big", "n=1", cases=("range*",)), insmod_rc=0,
                     stops=[Stop(0, ex, checks, index=1)], seconds=1.5,
                     suites=[Suite("big", 1, [Case("range", 1, "PASS", seconds=0.5)], False)])
    return RunResult(run_dir, [m], {"HighTotal": 1}, Phases())


def serve(path: str, line: bytes) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.recv(1 << 16)
            try:
                conn.sendall(line)
            except OSError:
                pass            # the client gave up on an oversized line
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture
def sockdir(monkeypatch: pytest.MonkeyPatch):
    """A 0700 socket directory of this process (as the server makes it) and the limit."""
    monkeypatch.setattr(warm_channel, "MAX_LINE", LIMIT)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        os.chmod(d, 0o700)
        (Path(d) / OWNER).write_text(f"{os.getpid()} 0\n")
        yield Path(d)


def record(sockdir: Path, run_dir: Path) -> WarmRecord:
    return WarmRecord(pid=os.getpid(), started="0", run_dir=str(run_dir),
                      socket=str(sockdir / "warm.sock"), state="ready")


def test_a_large_answer_reaches_highmem_run(tmp_path: Path, sockdir: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = big_result(run_dir)
    resp = run_answer(result, {"run_dir": str(run_dir)}, tmp_path / "warm", [])
    assert (run_dir / "report.json").stat().st_size > 4 * LIMIT
    assert len(encode(resp)) < 1000
    serve(str(sockdir / "warm.sock"), encode(resp))
    got = warm_client.send_run(record(sockdir, tmp_path), (result.modules[0].spec,),
                               RunOptions(), run_dir)
    assert got["exit"] == 0
    assert got["report"] == (run_dir / "report.txt").read_text().removesuffix("\n")
    assert got["report"].splitlines()[-1].startswith("Verdict: PASS")
    checks = got["report_json"]["modules"][0]["checkpoints"][0]["checks"]
    assert len(checks) == CHECKS and checks[-1]["actual"] == hex(
        result.modules[0].stops[0].checks[-1].actual)


def test_a_large_answer_reaches_the_pytest_plugin(tmp_path: Path, sockdir: Path) -> None:
    """A request without a run directory: the files in answers/NNNNN of the server, the
    ModuleResults read back from results.json equal to those that ran."""
    result = big_result(tmp_path / "warm")
    (tmp_path / "warm").mkdir()
    resp = run_answer(result, {"run_dir": "", "results": "json"}, tmp_path / "warm", [])
    assert Path(resp["files"]["results.json"]).parent == tmp_path / "warm" / "answers" / "00001"
    assert Path(resp["files"]["results.json"]).stat().st_size > 4 * LIMIT
    serve(str(sockdir / "warm.sock"), encode(resp))
    got = warm_client.run_specs_on_warm(record(sockdir, tmp_path), (result.modules[0].spec,),
                                        {}, True)
    assert got == result.modules


def test_the_same_answer_inline_is_refused_as_oversized(tmp_path: Path, sockdir: Path) -> None:
    """The red side: the report's JSON in the answer line itself, as before, does not go
    through the socket."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = big_result(run_dir)
    resp = run_answer(result, {"run_dir": str(run_dir)}, tmp_path / "warm", [])
    inline = {**resp, "report_json": json.loads((run_dir / "report.json").read_text())}
    serve(str(sockdir / "warm.sock"), encode(inline))
    with pytest.raises(WarmError, match="oversized answer"):
        warm_channel.call(sockdir / "warm.sock", {"op": "run"}, 10.0)


def test_answer_dirs_are_numbered_and_the_oldest_removed(tmp_path: Path) -> None:
    made: list[Path] = []
    stranger = tmp_path / "answers" / "mine"
    stranger.mkdir(parents=True)
    dirs = [next_answer_dir(tmp_path, made) for _ in range(ANSWERS_KEPT + 3)]
    assert [d.name for d in dirs[:2]] == ["00001", "00002"]
    assert not dirs[0].exists() and not dirs[2].exists() and dirs[3].exists()
    assert made == dirs[3:] and stranger.exists()   # only what it made is removed


def test_an_answer_without_its_files_is_a_warm_error(tmp_path: Path) -> None:
    with pytest.raises(WarmError, match="names no files"):
        read_answer({"ok": True, "report": "old server"})
    with pytest.raises(WarmError, match="cannot read"):
        read_answer({"files": {"report.json": str(tmp_path / "gone.json"),
                               "report.txt": str(tmp_path / "gone.txt")}})
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(WarmError, match="malformed"):
        read_answer({"files": {"report.json": str(tmp_path / "report.json"),
                               "report.txt": str(tmp_path / "report.json")}})
    (tmp_path / "report.json").write_text("{}")
    (tmp_path / "results.json").write_text('{"format": 99}')
    with pytest.raises(WarmError, match="malformed"):
        read_answer({"files": {"report.json": str(tmp_path / "report.json"),
                               "report.txt": str(tmp_path / "report.json"),
                               "results.json": str(tmp_path / "results.json")}},
                    with_results=True)
