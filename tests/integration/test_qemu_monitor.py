"""QEMU's monitor for the user, for real (issue 18 item 6): a guest of `highmem boot` (4 GiB:
RAM above 4 GiB, and a vmcore half the size of 8 GiB's) with its three QMP sockets; a plain
socket client on the user's socket while the harness keeps working on its own; `highmem
qemu` answering and refusing; `highmem dump` writing a vmcore whose ELF headers cover
QEMU's RAM; and `highmem pte --hold --cpu N` reading the kmap_local PTE on the CPU the hold
runs on.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.core import vmcore
from harness.core.ram_layout import parse_mtree
from harness.frontends.inspect_args import parse_hold_lines

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
BANNER = re.compile(r"QMP for your own client: (\S+)/qmp-user\.sock")


def _accel(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--highmem-accel") or "auto"


class PlainQmp:
    """A QMP client of nothing but a socket and json, as a user's own would be."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rwb")
        self.greeting = json.loads(self.f.readline())

    def __call__(self, command: str, **args: object) -> object:
        self.f.write(json.dumps({"execute": command, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "event" not in msg:
                assert "return" in msg, msg
                return msg["return"]

    def close(self) -> None:
        self.f.close()
        self.sock.close()


@pytest.fixture(scope="module")
def booted(request, tmp_path_factory):
    """`highmem boot --memory 4G` without a terminal (it waits until SIGTERM): its socket
    directory once it is up."""
    log = tmp_path_factory.mktemp("boot") / "boot.err"
    with log.open("w") as err:
        proc = subprocess.Popen([*HIGHMEM, "boot", "--memory", "4G", "--accel", _accel(request)],
                                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=ENV)
    try:
        deadline = time.monotonic() + 3600
        while not (m := BANNER.search(log.read_text())):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "highmem boot did not come up"
            time.sleep(0.5)
        yield Path(m.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        sys.stdout.write(log.read_text()[-1500:])


# this file's own artifacts directory: its `highmem boot` guest is found by its commands
# here, and no other test's `highmem ssh` takes it for its own (the record is per directory)
ART = Path(tempfile.mkdtemp(prefix="hm-qmp-test-"))
ENV = dict(os.environ, HIGHMEM_ARTIFACTS=str(ART))


def highmem(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIGHMEM, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, env=ENV)


def test_the_user_socket_answers_while_the_harness_keeps_its_own(booted):
    assert {"qmp.sock", "qmp-tools.sock", "qmp-user.sock"} <= {p.name for p in booted.iterdir()}
    assert booted.stat().st_mode & 0o777 == 0o700
    user = PlainQmp(booted / "qmp-user.sock")
    try:
        assert user.greeting["QMP"]["version"]["qemu"]["major"] >= 7
        assert user("qmp_capabilities") == {}
        assert user("query-status")["status"] == "running"
        t0 = time.monotonic()          # the harness meanwhile, on its own socket
        p = highmem("qemu", "--sockets", str(booted), "info", "status")
        assert p.returncode == 0 and "VM status: running" in p.stdout, p.stderr
        p = highmem("qemu", "--sockets", str(booted), "--cpu", "1", "info", "registers")
        assert p.returncode == 0 and p.stdout.startswith("CPU#1"), p.stdout[:200]
        assert time.monotonic() - t0 < 30
        assert user("query-status")["status"] == "running"   # still ours, still answering
    finally:
        user.close()


def test_flooding_and_session_breaking_commands_are_refused_not_sent(booted):
    for cmd in (["info", "tlb"], ["stop"], ["quit"]):
        t0 = time.monotonic()
        p = highmem("qemu", "--sockets", str(booted), *cmd, timeout=60)
        assert p.returncode == 2 and time.monotonic() - t0 < 20
        lines = p.stderr.strip().splitlines()
        assert lines[-2].startswith(f"error: `{' '.join(cmd)}` is refused here")
        assert lines[-1].startswith("fix: use ")
    p = highmem("qemu", "--sockets", str(booted), "info", "status")
    assert "VM status: running" in p.stdout       # `stop` and `quit` never reached QEMU


def test_dump_writes_a_vmcore_covering_ram(booted, tmp_path):
    core_file = tmp_path / "vmcore"
    t0 = time.monotonic()
    p = highmem("dump", "--sockets", str(booted), str(core_file), timeout=1800)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    assert "ELF64 core, EM_386" in p.stdout and "registers of 2 CPUs" in p.stdout
    sys.stdout.write(f"\nhighmem dump of 4 GiB: {took:.0f} s\n")
    # checked here apart from the harness's check: readelf's view, QEMU's own RAM map
    with core_file.open("rb") as f:
        head = f.read(64)
        f.seek(0)
        core = vmcore.parse_core(f.read(vmcore.headers_size(head)))
    assert head[:4] == b"\x7fELF" and head[4] == 2 and core.machine == vmcore.EM_386
    user = PlainQmp(booted / "qmp-user.sock")
    try:
        user("qmp_capabilities")
        mtree = str(user("human-monitor-command", **{"command-line": "info mtree -f"}))
    finally:
        user.close()
    ram = [(r.gpa, r.end) for r in parse_mtree(mtree, "hm.ram") or parse_mtree(mtree, "pc.ram")]
    assert ram and max(end for _, end in ram) > 1 << 32
    assert vmcore.uncovered(core, ram) == []
    assert all(s.filesz == s.memsz for s in core.loads)
    assert core_file.stat().st_size >= max(s.offset + s.filesz for s in core.loads)
    p = highmem("dump", "--sockets", str(booted), str(core_file))
    assert p.returncode == 2 and "exists" in p.stderr          # never over a file
    core_file.unlink()                                          # ours: 4 GiB


def test_status_shows_the_user_socket(booted):
    rec = json.loads((ART / "guest.json").read_text())
    p = highmem("status")
    assert p.returncode == 0
    if rec.get("sockdir") == str(booted):     # another `highmem boot` may have replaced it
        assert f"QMP for your own client: {booted}/qmp-user.sock" in p.stdout, p.stdout


@pytest.mark.parametrize("cpu", ["0", "1", None])
def test_pte_hold_cpu_reads_the_kmap_local_pte_on_the_cpu_the_hold_runs_on(request, cpu):
    """--cpu 1: hm_hold's thread is bound to CPU 1, its slot is CPU 1's and the walk runs
    there. Without --cpu: the walk runs on the CPU the mapping was made on."""
    extra = ["--cpu", cpu] if cpu is not None else []
    p = highmem("pte", "--hold", "--hold-param", "spin=1", *extra, "hold:kmap_local",
                "--json", "--accel", _accel(request), timeout=3600)
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads(p.stdout)
    local = next(h for h in parse_hold_lines(p.stderr) if h["kind"] == "kmap_local")
    made_on = int(re.search(r"hm_hold: kmap_local va=\S+ pfn=\S+ cpu=(\d+)", p.stderr)[1])
    if cpu is not None:
        assert made_on == int(cpu)
    assert rep["va"] == local["va"] and rep["cpu"] == made_on
    assert rep["present"] and rep["pfn"] == local["pfn"], rep
    assert rep["area"].startswith("kmap_local slot ") and \
        rep["area"].endswith(f" of CPU {made_on}"), rep["area"]
    assert any(f"running on CPU {made_on}" in n for n in rep["notes"]), rep["notes"]


# -- inside `highmem gdb`: gdb's `monitor` replaced, hm-qemu, hm-pte --cpu ----------------

PROMPT = r"\(gdb\) "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def gdb_session(request, tmp_path_factory):
    import pexpect
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path_factory.mktemp("gdb-artifacts")))
    child = pexpect.spawn(HIGHMEM[0], [*HIGHMEM[1:], "gdb", "--hold", "--hold-param", "spin=1",
                                       "--accel", _accel(request)], cwd=REPO, env=env,
                          encoding="utf-8", codec_errors="replace", dimensions=(50, 220),
                          timeout=3600)
    child.logfile_read = sys.stdout
    try:
        child.expect(r"QMP for your own client: \S+", timeout=3600)
        child.expect(PROMPT, timeout=600)

        def run(command: str, timeout: float = 120) -> str:
            child.sendline(command)
            child.expect(PROMPT, timeout=timeout)
            out = ANSI.sub("", str(child.before)).replace("\r\n", "\n")
            return out.split("\n", 1)[1] if "\n" in out else ""
        yield run
        child.sendline("quit")
        if child.expect([r"\(y or n\)", pexpect.EOF], timeout=60) == 0:
            child.sendline("y")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close(force=True)


def test_gdb_monitor_info_tlb_is_refused_at_once_and_the_rest_goes_through_qmp(gdb_session):
    run = gdb_session
    t0 = time.monotonic()
    out = run("monitor info tlb", timeout=30)
    assert "`info tlb` is refused here" in out and "hm-pte VA" in out, out
    assert time.monotonic() - t0 < 10
    assert "VM status: paused" in run("monitor info status")   # gdb holds it stopped
    assert "Switching to thread 2" in run("thread 2")
    regs = run("hm-qemu info registers").strip()    # on the selected CPU
    assert regs.startswith("CPU#1"), regs[:200]
    run("thread 1")
    out = run("mon info cpus")
    assert "CPU #0" in out and "CPU #1" in out, out


def test_gdb_hm_pte_walks_a_kmap_local_va_on_its_own_cpu(gdb_session):
    run = gdb_session
    dmesg = run("lx-dmesg")
    local = next(h for h in parse_hold_lines(dmesg) if h["kind"] == "kmap_local")
    made_on = int(re.search(r"hm_hold: kmap_local va=\S+ pfn=\S+ cpu=(\d+)", dmesg)[1])
    other = 1 - made_on
    run(f"thread {other + 1}")
    out = run(f"hm-pte {local['va']:#x} --json")
    rep = json.loads(out)
    assert rep["cpu"] == made_on and rep["present"] and rep["pfn"] == local["pfn"], rep
    rep = json.loads(run(f"hm-pte {local['va']:#x} --cpu {other} --json"))
    assert rep["cpu"] == other and rep["pfn"] == local["pfn"]   # kernel tables: shared
    assert "Current thread is 2" in run("thread") or other == 0
    text = run("hm-kmaps")                 # its physical reads go through the wrapper now
    assert f"{local['va']:#010x}" in text, text
