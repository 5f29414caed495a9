"""Module stage: load one test module in the guest with gdb watching hm_checkpoint(), and
turn whatever happens into a ModuleResult — a crash, a hang or a malformed checkpoint is a
result, never an exception.

Order: insmod hm_checkpoint.ko, look its address up in /proc/kallsyms, attach gdb (this
stops the guest), put a hardware breakpoint there, resume, then insmod the test module over
the serial console. While insmod runs, every stop is a checkpoint: `Checker` judges it and
the guest is resumed. gdb is the only owner of run control here. One deadline (the spec's
timeout) covers insmod and the time stopped at checkpoints.

The wait looks at both processes at least every 0.25 s: QEMU's exit (`alive`) and gdb's
(a GdbExited from any gdb read) end the module at once, named for what died ("QEMU exited
while M ran (killed by SIGKILL)", "gdb exited: killed by SIGKILL while insmod M ran"),
never its timeout spent on a guest or a debugger that is gone.
"""

import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import ktap
from ..core.errors import GdbError, GuestError
from ..core.failure import Failure, crash_summary, last_line, nearest_symbol, panic_line
from ..core.results import ModuleResult, Stop, module_failure
from ..core.suite import ModuleSpec
from .checker import Checker, CheckpointTimeout
from .console import SerialShell
from .console_log import ConsoleLog
from .gdbmi import Gdb, GdbExited
from .image import MODULE_DIR_IN_GUEST
from .progress import Ticker

CORE = "hm_checkpoint"
CRASH_GRACE_S = 5.0      # after an oops on the console: time for insmod to be killed
PROBE_TIMEOUT_S = 8.0    # a command into a guest that may be wedged
EXIT_GRACE_S = 3.0       # gdb saw the target exit: QEMU's own exit is that close behind
GDB_ERROR_GRACE_S = 0.5  # gdb failed: if QEMU was killed, pexpect sees it by then
TOOL_GONE_PROBE_S = 0.5  # gdb died: the kernel log is read within this or not at all


def load_core(shell: SerialShell) -> tuple[int, int]:
    """insmod hm_checkpoint.ko; returns the addresses of hm_checkpoint() and of its call
    count (the module prints both: one serial round trip, where reading /proc/kallsyms
    costs a second under TCG). The count is 0 when it could not be read: every stop is
    then judged, a re-fired breakpoint included."""
    out = shell.check(f"insmod {MODULE_DIR_IN_GUEST}/{CORE}.ko && "
                      f"dmesg | grep '{CORE}: ready at' | tail -n 1")
    m = re.search(r"ready at ([0-9a-f]{8})(?: count at ([0-9a-f]{8}))?", out)
    if m:
        return int(m.group(1), 16), int(m.group(2) or "0", 16)
    out = shell.check(f"awk '$3 == \"{CORE}\" {{print $1}}' /proc/kallsyms")
    try:
        return int(out.split()[0], 16), 0
    except (IndexError, ValueError):
        raise GuestError(f"{CORE} is not in /proc/kallsyms: {out!r}",
                         "check that the kernel has CONFIG_KALLSYMS=y") from None


def arm(gdb: Gdb, breakpoint_addr: int) -> None:
    """With gdb attached (guest stopped): hardware breakpoint on hm_checkpoint(), resume."""
    gdb.cmd(f"-break-insert -h *{breakpoint_addr:#x}")
    gdb.resume()


def insmod_line(spec: ModuleSpec, ko: str | None = None) -> str:
    """The guest's shell line; every parameter word quoted (a value may hold spaces).
    ko: the module's file in the guest (default: the image's, in MODULE_DIR_IN_GUEST; a
    warm guest's modules are pushed elsewhere over SSH)."""
    words = shlex.split(spec.params) if spec.params else []
    return shlex.join([
        "insmod", ko or f"{MODULE_DIR_IN_GUEST}/{spec.name}.ko", *words])


@dataclass
class Guest:
    """What one module run needs of the booted guest. `remote`: a command over SSH with a
    timeout (another channel than the serial console, for a guest whose console is busy);
    `alive`: is QEMU still running; `kos`: module name -> its .ko in the guest, for
    modules not loaded from the image (a warm guest's, pushed over SSH)."""

    shell: SerialShell
    gdb: Gdb
    checker: Checker
    console: ConsoleLog
    remote: Callable[[str, float], tuple[int, str, str]]
    alive: Callable[[], bool]
    kos: dict[str, str] = field(default_factory=dict)
    exited: Callable[[], str] = lambda: ""


@dataclass
class _Watch:
    """State of one module run while insmod (then rmmod) is in flight."""

    spec: ModuleSpec
    t0: float = field(default_factory=time.monotonic)
    stops: list[Stop] = field(default_factory=list)
    gdb_seconds: float = 0.0
    crash_line: str | None = None
    crash_seen_at: float = 0.0
    command: str = "insmod"
    dmesg: str | None = None     # read while diagnosing a hang (the guest may be wedged)
    probe_s: float = PROBE_TIMEOUT_S  # how long a read of the kernel log may take
    mark: str = ""               # the line that opens the module's kernel log

    @property
    def deadline(self) -> float:
        return self.t0 + self.spec.timeout


def run_module(g: Guest, spec: ModuleSpec,
               on_stop: Callable[[Stop], None] | None = None) -> ModuleResult:
    """insmod one test module with gdb attached and running, then rmmod it (checkpoints
    in module_exit are served too). Returns a result whatever the kernel does;
    GuestError/GdbError only escape when the guest is unusable before the module starts."""
    mark = f"hm-harness: {spec.name} starts, log mark {secrets.token_hex(8)}"
    # the mark opens the module's kernel log: if it is gone when the log is read, the
    # ring buffer overflowed and lines of the module's were lost (a FAIL, never a PASS)
    g.shell.check(f"dmesg -c >/dev/null; echo '{mark}' >/dev/kmsg")
    w = _Watch(spec, mark=mark)
    ticker = Ticker(spec.title, every=2.0)
    try:
        line = insmod_line(spec, g.kos.get(spec.name))
        res, failure = _follow(g, w, g.shell.start(line), ticker, on_stop)
        rc, out = res if res is not None else (-1, "")
        if failure is None and rc == 0:
            w.command = "rmmod"
            _, failure = _follow(g, w, g.shell.start(f"rmmod {spec.name}"), ticker, on_stop)
    finally:
        ticker.done()
    if failure is not None:
        dmesg = w.dmesg if w.dmesg is not None else _probe_dmesg(g, w.probe_s)
        detail = crash_summary(dmesg) or crash_summary(g.console.text())
        if failure.kind == "crash" and detail and detail.split(";")[0] not in failure.cause:
            failure = Failure("crash", f"{failure.cause}: {detail}")
        return _result(w, rc, out, dmesg, failure)
    try:
        _, dmesg = g.shell.run("dmesg", timeout=30)
    except GuestError:
        dmesg = _probe_dmesg(g)
    return _result(w, rc, out, dmesg, module_failure(spec, rc, out, dmesg))


def _result(w: _Watch, rc: int, out: str, dmesg: str, failure: Failure | None) -> ModuleResult:
    return ModuleResult(spec=w.spec, insmod_rc=rc, insmod_out=out, dmesg=dmesg, stops=w.stops,
                        suites=ktap.parse_ktap(dmesg), gdb_seconds=w.gdb_seconds,
                        seconds=time.monotonic() - w.t0, failure=failure,
                        log_lost=log_lost(w.spec.name, w.mark, dmesg))


def log_lost(name: str, mark: str, dmesg: str) -> str:
    """Why the module's kernel log read back is not whole, or "": its opening `mark` must
    still be there (the ring buffer drops its oldest lines first)."""
    if not mark or not dmesg.strip() or mark in dmesg:
        return ""
    return (f"the kernel's ring buffer overflowed while {name} ran: its first lines, the "
            f"harness's start mark among them, were overwritten before they were read "
            f"(only the last {len(dmesg.encode())} bytes are left; raise log_buf_len with "
            f"--append, or print less)")


def _follow(g: Guest, w: _Watch, token: int, ticker: Ticker,
            on_stop: Callable[[Stop], None] | None
            ) -> tuple[tuple[int, str] | None, Failure | None]:
    """Serve checkpoints until the command ends; ((rc, output), None) or (None, failure)."""
    name = w.spec.name
    while True:
        if not g.alive():
            return None, _dead_or(g, w, Failure("crash", f"QEMU exited while {name} ran"))
        try:
            stopped = g.gdb.wait_stopped(timeout=0.2)
            if stopped is not None:
                failure = _serve_stop(g, w, stopped, on_stop)
                if failure is not None:
                    return None, failure
                continue
            res = g.shell.poll(token, timeout=0.05)
        except GdbExited as e:  # QEMU runs on: nothing to wait for
            return None, _dead_or(g, w, _gdb_gone(g, w, e))
        except GdbError as e:
            return None, _dead_or(g, w, Failure("hang", f"gdb stopped answering while "
                                                f"{w.command} {name} ran: {e.what}"),
                                  grace=GDB_ERROR_GRACE_S)
        except GuestError:
            return None, _dead_or(g, w, Failure("crash", f"the guest's console closed while "
                                                f"{w.command} {name} ran"))
        if res is not None:
            return res, None
        now = time.monotonic()
        line = g.console.new_crash()
        if line and w.crash_line is None:
            w.crash_line, w.crash_seen_at = line, now
        if w.crash_line and now > w.crash_seen_at + CRASH_GRACE_S:
            return None, Failure("crash", f"oops in {name}: {w.crash_line}; {w.command} did "
                                 f"not return within {CRASH_GRACE_S:.0f} s of it")
        if now > w.deadline:
            return None, _hang(g, w)
        ticker.update(f"{w.command}, {len(w.stops)} checkpoints")


def _serve_stop(g: Guest, w: _Watch, stopped: dict[str, Any],
                on_stop: Callable[[Stop], None] | None) -> Failure | None:
    reason = stopped.get("reason")
    if reason != "breakpoint-hit":
        return _dead_or(g, w, Failure("crash", f"the guest stopped unexpectedly while "
                                      f"{w.spec.name} ran: {reason}"),
                        exiting=str(reason).startswith("exited"))
    g0 = time.monotonic()
    try:
        stop = g.checker.handle_stop(stopped, len(w.stops) + 1, w.deadline)
    except CheckpointTimeout as e:
        w.stops.append(e.stop)
        w.gdb_seconds += time.monotonic() - g0
        g.gdb.resume()
        return Failure("hang", f"{w.spec.name} did not finish within {w.spec.timeout:.0f} s "
                       f"(time at checkpoints included): {e}")
    g.gdb.resume()
    w.gdb_seconds += time.monotonic() - g0
    if stop is not None:
        stop.seconds = time.monotonic() - g0
        w.stops.append(stop)
        if on_stop:
            on_stop(stop)
    return None


def _gdb_gone(g: Guest, w: _Watch, e: GdbExited) -> Failure:
    """gdb died under the module: the module is not judged to its end (a harness failure,
    not the kernel's). A guest gdb left stopped is resumed over QMP (gdb took its
    breakpoints out at the stop), so its kernel log can still be read, briefly."""
    w.probe_s = TOOL_GONE_PROBE_S
    if not g.gdb.running and g.checker.monitor is not None:
        try:
            g.checker.monitor.qmp("cont")
        except Exception:  # noqa: BLE001 - QMP's errors vary; the log is a bonus
            pass
    return Failure("harness", f"{e.what} while {w.command} {w.spec.name} ran (the module "
                   "was not judged to its end)")


def _dead_or(g: Guest, w: _Watch, failure: Failure, exiting: bool = False,
             grace: float = 0.0) -> Failure:
    """If QEMU is gone, the failure is a crash with the panic line of the console.
    `exiting`: gdb said the target exited; QEMU may not be reaped yet (give it a moment);
    `grace`: how long to give it otherwise."""
    deadline = time.monotonic() + (EXIT_GRACE_S if exiting else grace)
    while g.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if g.alive():
        return failure
    g.shell.drain()  # QEMU's last output (the panic) into console.log
    text = g.console.text()
    why = panic_line(text) or crash_summary(text) or f"last console line: {last_line(text)}"
    how = g.exited()
    how = f" ({how})" if how.startswith("killed") else ""
    return Failure("crash", f"QEMU exited while {w.spec.name} ran{how}: {why}")


def _hang(g: Guest, w: _Watch) -> Failure:
    """The module overran its timeout: the last kernel message, and where each CPU is
    (gdb's program counters named from /proc/kallsyms)."""
    where = ""
    try:
        g.gdb.interrupt(timeout=PROBE_TIMEOUT_S)
        pcs = g.gdb.thread_pcs()
        g.gdb.resume()
        _, syms, _ = g.remote("grep ' [tT] ' /proc/kallsyms", PROBE_TIMEOUT_S)
        where = "; " + ", ".join(f"CPU{cpu} at {nearest_symbol(pc, syms) or hex(pc)}"
                                 for cpu, pc in sorted(pcs.items()))
    except (GdbError, GuestError):
        pass
    w.dmesg = _probe_dmesg(g)
    last = (f"last kernel message: {last_line(w.dmesg)!r}" if w.dmesg.strip() else
            f"last console line: {last_line(g.console.text())!r}")
    return _dead_or(g, w, Failure(
        "hang", f"{w.command} {w.spec.name} did not return within {w.spec.timeout:.0f} s "
        f"(time at checkpoints included); {last}{where}"))


def _probe_dmesg(g: Guest, timeout: float = PROBE_TIMEOUT_S) -> str:
    """The kernel log of a guest that may be wedged: over SSH, with a short deadline."""
    if not g.alive():
        return ""
    try:
        return g.remote("dmesg", timeout)[1]
    except GuestError:
        return ""
