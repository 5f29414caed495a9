"""A gdb or QEMU that dies under a module is noticed at once and named (issue 19: a gdb
SIGKILLed mid-module was not noticed, the module waited its whole timeout and was blamed).

A real gdb process (no symbols: it starts in milliseconds) killed under each wait of
stages/gdbmi.py; then module_run's wait loop over fakes: a dead QEMU or a dead gdb ends the
module within a second, with what died and how in the reason.
"""

import signal
import threading
import time
from pathlib import Path

import pytest

from harness.core.suite import ModuleSpec
from harness.stages import module_run
from harness.stages.gdbmi import Gdb, GdbExited
from harness.stages.kept_gdb import KeptGdb
from harness.stages.procutil import exit_text


def test_exit_text():
    assert exit_text(-9) == "killed by SIGKILL"
    assert exit_text(-11) == "killed by SIGSEGV"
    assert exit_text(1) == "exit status 1"
    assert exit_text(-200) == "killed by signal 200"


@pytest.fixture
def gdb(tmp_path: Path):
    g = Gdb(None, tmp_path / "gdb-mi.log")
    yield g
    g.close()


def _kill(g: Gdb) -> None:
    proc = g.mi.gdb_process
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=5)


def test_a_killed_gdb_ends_a_wait_for_a_stop_at_once(gdb):
    gdb.cmd("-gdb-version")
    _kill(gdb)
    t0 = time.monotonic()
    with pytest.raises(GdbExited) as e:
        gdb.wait_stopped(timeout=30)
    assert time.monotonic() - t0 < 1.0
    assert e.value.what == "gdb exited: killed by SIGKILL"


def test_a_killed_gdb_ends_a_command_at_once(gdb):
    _kill(gdb)
    t0 = time.monotonic()
    with pytest.raises(GdbExited):
        gdb.cmd("-gdb-version", timeout=30)
    assert time.monotonic() - t0 < 1.0
    assert "gdb exited: killed by SIGKILL" in (gdb.log.flush() or
                                               Path(gdb.log.name).read_text())


def test_a_gdb_killed_while_a_command_waits(gdb):
    """gdb dies while a command is in flight (a long one: its answer never comes)."""
    proc = gdb.mi.gdb_process
    assert proc is not None
    t0 = time.monotonic()
    threading.Timer(0.3, proc.kill).start()
    with pytest.raises(GdbExited):
        gdb.cmd('-interpreter-exec console "shell sleep 20"', timeout=30)
    assert time.monotonic() - t0 < 1.5


def test_a_kept_gdb_that_died_is_replaced_not_kept(gdb):
    kept = KeptGdb()
    kept.gdb = gdb
    _kill(gdb)
    kept.detach()
    assert kept.gdb is None            # the next guest gets a new gdb


def test_a_kept_gdb_whose_target_went_away_is_replaced(gdb):
    kept = KeptGdb()
    kept.gdb, gdb.target_gone = gdb, True
    kept.detach()
    assert kept.gdb is None


# -- module_run's wait over fakes --------------------------------------------------------

class FakeShell:
    def __init__(self) -> None:
        self.n = 0

    def check(self, cmd: str, timeout: float = 60.0) -> str:
        return ""

    def start(self, cmd: str) -> int:
        self.n += 1
        return self.n

    def poll(self, token: int, timeout: float = 0.0):
        time.sleep(timeout)
        return None                    # insmod never returns (a module asleep in init)

    def drain(self, timeout: float = 1.0) -> None:
        pass


class FakeGdb:
    running = True

    def __init__(self, dies_at: float) -> None:
        self.dies_at = dies_at

    def wait_stopped(self, timeout: float):
        time.sleep(timeout)
        if time.monotonic() > self.dies_at:
            raise GdbExited(-signal.SIGKILL)
        return None


class FakeChecker:
    monitor = None


class FakeConsole:
    def new_crash(self):
        return None

    def text(self) -> str:
        return "[ 1.0] cat_sleep: sleeping\n"


def _guest(gdb_dies_at: float = float("inf"), qemu_dies_at: float = float("inf"),
           how: str = "killed by SIGKILL") -> module_run.Guest:
    def remote(cmd: str, timeout: float):
        return 0, "[ 1.0] cat_sleep: sleeping\n", ""

    return module_run.Guest(
        shell=FakeShell(), gdb=FakeGdb(gdb_dies_at), checker=FakeChecker(),  # type: ignore
        console=FakeConsole(), remote=remote,  # type: ignore[arg-type]
        alive=lambda: time.monotonic() < qemu_dies_at,
        exited=lambda: how if time.monotonic() >= qemu_dies_at else "")


SPEC = ModuleSpec(name="cat_sleep", timeout=60)


def test_a_dead_gdb_ends_the_module_within_a_second_named():
    t0 = time.monotonic()
    r = module_run.run_module(_guest(gdb_dies_at=t0 + 0.5), SPEC)
    assert time.monotonic() - t0 < 2.0
    assert r.failure is not None and r.failure.kind == "harness"
    assert r.failure.cause.startswith("gdb exited: killed by SIGKILL while insmod cat_sleep ran")


def test_a_dead_qemu_ends_the_module_within_a_second_named():
    t0 = time.monotonic()
    r = module_run.run_module(_guest(qemu_dies_at=t0 + 0.5), SPEC)
    assert time.monotonic() - t0 < 2.0
    assert r.failure is not None and r.failure.kind == "crash"
    assert r.failure.cause.startswith("QEMU exited while cat_sleep ran (killed by SIGKILL): "
                                      "last console line")


def test_a_qemu_that_exits_by_itself_keeps_the_panic_wording():
    t0 = time.monotonic()
    r = module_run.run_module(_guest(qemu_dies_at=t0 + 0.2, how="exit status 0"), SPEC)
    assert r.failure is not None
    assert r.failure.cause.startswith("QEMU exited while cat_sleep ran: ")


def test_a_long_judge_looks_at_gdb_and_qemu_between_entries(gdb):
    """The RAM mapping reads on after gdb or QEMU died: the judge must look for itself."""
    from harness.core.errors import GdbError
    from harness.stages.checker import Checker

    checker = Checker(gdb)
    assert checker.watch(float("inf")) is False and checker.watch(0.0) is True
    checker.target_alive = lambda: False
    with pytest.raises(GdbError, match="QEMU exited while a checkpoint was judged"):
        checker.watch(float("inf"))
    checker.target_alive = lambda: True
    _kill(gdb)
    with pytest.raises(GdbExited):
        checker.watch(float("inf"))


def test_a_command_gdb_sits_on_after_qemu_died_is_not_waited_for(gdb):
    """QEMU gone and gdb silent (an internal error of gdb was seen): 1 s, not 30."""
    from harness.core.errors import GdbError

    gdb.peer_alive = lambda: False
    t0 = time.monotonic()
    with pytest.raises(GdbError, match="QEMU exited and gdb did not answer"):
        gdb.cmd('-interpreter-exec console "shell sleep 3"', timeout=30)
    assert time.monotonic() - t0 < 2.0
    gdb.peer_alive = lambda: True         # a live QEMU: the command's answer is waited for
    r, _ = gdb.cmd("-gdb-version", timeout=30)
    assert r["message"] == "done"
