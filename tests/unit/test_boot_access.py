"""`highmem boot`'s access file and guest record, and GuestSSH's deadlines, against an
in-process paramiko server on 127.0.0.1 (no VM)."""

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import paramiko
import pytest

from harness.core.errors import GuestError
from harness.frontends import guest_record
from harness.stages.sockdir import make_sockdir
from harness.stages.ssh import GuestSSH, load_access, save_access

HOST_KEY = paramiko.ECDSAKey.generate(bits=256)
CLIENT_KEY = paramiko.ECDSAKey.generate(bits=256)


class FakeGuest(paramiko.ServerInterface):
    """An SSH server whose exec requests behave as `mode` says: "ok" (out, err, exit 3),
    "big" (3 MB of stderr, then stdout), "silent" (never answers after the exec reply),
    "no_reply" (never answers the exec request at all)."""

    def __init__(self, mode: str, release: threading.Event) -> None:
        self.mode, self.release = mode, release

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == CLIENT_KEY else paramiko.AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if self.mode == "no_reply":
            self.release.wait(30)  # blocks this connection's transport thread
            return False
        threading.Thread(target=self.answer, args=(channel,), daemon=True).start()
        return True

    def answer(self, chan: paramiko.Channel) -> None:
        time.sleep(0.05)
        if self.mode == "silent":
            return
        if self.mode == "big":
            chan.sendall_stderr(b"e" * 3_000_000)
        chan.sendall(b"out")
        if self.mode == "ok":
            chan.sendall_stderr(b"err")
        chan.send_exit_status(3 if self.mode == "ok" else 0)
        chan.close()


@pytest.fixture
def guest():
    """Start a fake guest in a given mode; yields a function mode -> port."""
    release = threading.Event()
    transports: list[paramiko.Transport] = []
    socks: list[socket.socket] = []

    def start(mode: str) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        socks.append(srv)

        def accept() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                t = paramiko.Transport(conn)
                t.add_server_key(HOST_KEY)
                transports.append(t)
                t.start_server(server=FakeGuest(mode, release))

        threading.Thread(target=accept, daemon=True).start()
        return int(srv.getsockname()[1])

    yield start
    release.set()
    for s in socks:
        s.close()
    for t in transports:
        t.close()


def test_a_command_returns_exit_code_stdout_and_stderr(guest):
    ssh = GuestSSH(guest("ok"), HOST_KEY, CLIENT_KEY, timeout=5)
    try:
        assert ssh.run("true", timeout=5) == (3, "out", "err")
    finally:
        ssh.close()


def test_a_large_stderr_does_not_stall_stdout(guest):
    ssh = GuestSSH(guest("big"), HOST_KEY, CLIENT_KEY, timeout=5)
    try:
        rc, out, err = ssh.run("x", timeout=20)
    finally:
        ssh.close()
    assert (rc, out, len(err)) == (0, "out", 3_000_000)


@pytest.mark.parametrize("mode", ["silent", "no_reply"])
def test_a_guest_that_stops_answering_ends_in_guest_error(guest, mode):
    ssh = GuestSSH(guest(mode), HOST_KEY, CLIENT_KEY, timeout=5)
    t0 = time.monotonic()
    try:
        with pytest.raises(GuestError, match="did not finish within 1 s") as e:
            ssh.run("sleep 1000", timeout=1.0)
    finally:
        ssh.close()
    assert time.monotonic() - t0 < 4
    assert len(str(e.value).splitlines()) == 2


def test_access_file_is_0600_from_creation_and_never_overwritten(guest, tmp_path):
    ssh = GuestSSH(guest("ok"), HOST_KEY, CLIENT_KEY, timeout=5)
    path = tmp_path / "ssh-access.json"
    old = os.umask(0)  # even with a permissive umask
    try:
        save_access(ssh, path)
    finally:
        os.umask(old)
        ssh.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        save_access(ssh, path)
    again = load_access(path, timeout=5)
    try:
        assert again.run("true", timeout=5)[0] == 3
    finally:
        again.close()


def test_a_missing_access_file_is_a_guest_error(tmp_path):
    with pytest.raises(GuestError, match="cannot read the guest's SSH access file"):
        load_access(tmp_path / "gone.json")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The directory of `highmem boot`'s record (the artifacts directory; the cache too)."""
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache"


@pytest.fixture
def process():
    """Start a sleeping process with a given extra argv word; killed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(word: str) -> int:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", word])
        procs.append(p)
        return started(p.pid)

    yield start
    for p in procs:
        p.kill()
        p.wait()


def started(pid: int) -> int:
    """Wait (up to 2 s) until PID's command line is readable: right after Popen returns,
    /proc/PID/cmdline can still be empty."""
    deadline = time.monotonic() + 2
    while not Path(f"/proc/{pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def record(cache: Path, pid: int, access: Path, **extra: object) -> Path:
    path = cache / guest_record.STATE
    path.write_text(json.dumps({"pid": pid, "access": str(access), **extra}))
    return path


def test_a_live_highmem_boot_is_found(cache, tmp_path, process):
    access = tmp_path / guest_record.ACCESS_FILE
    access.write_text("{}")
    pid = process("highmem")
    record(cache, pid, access, started=guest_record.start_time(pid))
    st = guest_record.running_guest()
    assert st is not None and st["pid"] == pid


@pytest.mark.parametrize("case", ["dead", "foreign", "no_access", "reused_pid", "garbage"])
def test_a_stale_record_is_ignored_and_removed(cache, tmp_path, process, capsys, case):
    access = make_sockdir(tmp_path) / guest_record.ACCESS_FILE  # the guest's, as Qemu makes
    access.write_text("{}")
    pid = process("sleeper" if case == "foreign" else "highmem")
    if case == "dead":
        pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if case == "no_access":
        access.unlink()
    path = record(cache, int(pid), access, started="1" if case == "reused_pid" else None)
    if case == "garbage":
        path.write_text("{not json")
    assert guest_record.running_guest() is None
    assert not path.exists()
    if case != "garbage":
        assert not access.exists()  # a killed boot's leftover key goes too
    assert capsys.readouterr() == ("", "")


def test_a_planted_record_never_removes_a_users_file(cache, tmp_path):
    """A guest.json naming a file called ssh-access.json in a directory the harness did
    not make (an `owner` file in it proves nothing): the record goes, the file stays."""
    mine = tmp_path / "home"
    mine.mkdir()
    (mine / "owner").write_text("1 1\n")
    access = mine / guest_record.ACCESS_FILE
    access.write_text("the user's")
    record(cache, 999999999, access)
    assert guest_record.running_guest() is None
    assert access.read_text() == "the user's"


def test_forget_removes_the_access_file_and_only_our_record(cache, tmp_path):
    access = tmp_path / guest_record.ACCESS_FILE
    access.write_text("{}")
    path = record(cache, os.getpid() + 1, access)
    guest_record.forget_guest(access)
    assert not access.exists() and path.exists()  # another boot's record stays
    guest_record.write_state({"pid": os.getpid(), "access": str(access)})
    guest_record.forget_guest(None)
    assert not path.exists()


class FakeSSH:
    port = 2222
    host_key = HOST_KEY
    client_key = CLIENT_KEY


def test_boot_publishes_into_a_0700_dir_and_cleans_up_on_interrupt(cache, tmp_path):
    sockdir = tmp_path / "hm-sock"
    sockdir.mkdir(mode=0o755)
    access = sockdir / guest_record.ACCESS_FILE
    try:
        guest_record.publish_guest(FakeSSH(), sockdir, access, {"run_dir": str(tmp_path)})
        assert stat.S_IMODE(sockdir.stat().st_mode) == 0o700
        assert stat.S_IMODE(access.stat().st_mode) == 0o600
        st = json.loads((cache / guest_record.STATE).read_text())
        assert st["pid"] == os.getpid() and st["access"] == str(access)
        raise KeyboardInterrupt  # what SIGTERM becomes in the cli
    except KeyboardInterrupt:
        pass
    finally:
        guest_record.forget_guest(access)
    assert not access.exists() and not (cache / guest_record.STATE).exists()


def test_only_whole_argv_words_name_highmem():
    p = subprocess.Popen(["/home/u/highmem-harness/.venv/bin/python", "60"],
                         executable="/bin/sleep")
    q = subprocess.Popen(["/home/u/.venv/bin/highmem", "60"], executable="/bin/sleep")
    try:
        started(p.pid), started(q.pid)
        assert not guest_record.is_highmem_process(p.pid)
        assert guest_record.is_highmem_process(q.pid)
    finally:
        for proc in (p, q):
            proc.kill()
            proc.wait()


def test_the_host_key_reaches_dropbear_in_its_own_format():
    """dropbear -r reads the SSH wire strings "ssh-ed25519" and seed + public key; the
    client pins the public half of the same key."""
    import base64

    from harness.stages.ssh import HostKey, dropbear_key_b64

    host = HostKey()
    blob = base64.b64decode(dropbear_key_b64(host))
    n = int.from_bytes(blob[:4], "big")
    assert blob[4:4 + n] == b"ssh-ed25519"
    rest = blob[4 + n:]
    assert int.from_bytes(rest[:4], "big") == 64 and len(rest) == 68
    pub = rest[4 + 32:]
    assert host.public().asbytes().endswith(pub)
    assert host.public().get_name() == "ssh-ed25519"


def test_access_texts_round_trip():
    from harness.stages.ssh import SshAccess, access_keys, new_keys

    host, client = new_keys()
    acc = SshAccess(2222, host.public(), client)
    again = SshAccess.from_texts(2222, *access_keys(acc))
    assert again.client_key.asbytes() == client.asbytes()
    assert again.host_key.asbytes() == host.public().asbytes()
