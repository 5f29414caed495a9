"""stages/qmp_line.py against a scripted QMP peer on a unix socket: the greeting and
qmp_capabilities, events skipped, QEMU's errors and silence turned into QmpError (the
deadline holds), and a socket with nobody behind it."""

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from harness.stages.qmp_line import QmpError, QmpLine

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2}}, "capabilities": []}}


def peer(path: Path, answers: list[object]) -> threading.Thread:
    """Accept one client; send the greeting; answer each request line with the next item
    (a dict is sent, "silence" sends nothing, a list sends each of its items)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            conn.sendall(json.dumps(GREETING).encode() + b"\r\n")
            f = conn.makefile("rb")
            for a in answers:
                if not f.readline():
                    return
                for msg in (a if isinstance(a, list) else [a]):
                    if msg != "silence":
                        conn.sendall(json.dumps(msg).encode() + b"\r\n")
            f.readline()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_commands_answer_and_events_are_kept(tmp_path):
    sock = tmp_path / "q.sock"
    peer(sock, [{"return": {}}, [{"event": "STOP"}, {"return": "rax=0\r\n"}],
                {"return": {"status": "running", "running": True}}])
    with QmpLine(sock, timeout=5) as q:
        assert q.hmp("info registers", cpu=1) == "rax=0\r\n"
        assert q.execute("query-status")["status"] == "running"
        assert [e["event"] for e in q.events] == ["STOP"]


def test_an_error_answer_is_a_qmp_error(tmp_path):
    sock = tmp_path / "q.sock"
    peer(sock, [{"return": {}}, {"error": {"class": "GenericError", "desc": "no such cpu"}}])
    with QmpLine(sock, timeout=5) as q, pytest.raises(QmpError, match="GenericError: no such"):
        q.hmp("info registers", cpu=7)


def test_silence_ends_at_the_deadline(tmp_path):
    sock = tmp_path / "q.sock"
    peer(sock, [{"return": {}}, "silence"])
    with QmpLine(sock, timeout=0.5) as q:
        t0 = time.monotonic()
        with pytest.raises(QmpError, match="did not answer within"):
            q.execute("query-status")
        assert time.monotonic() - t0 < 2


def test_no_server_is_a_qmp_error(tmp_path):
    with pytest.raises(QmpError, match="QMP socket .*q.sock") as e:
        QmpLine(tmp_path / "q.sock", timeout=1)
    assert "highmem status" in e.value.fix
