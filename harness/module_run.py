"""Stage 10, module: load a test module in the guest with gdb watching hm_checkpoint().

Order: insmod hm_checkpoint.ko, look its address up in /proc/kallsyms, attach gdb (this
stops the guest), put a hardware breakpoint there, resume, then insmod the test module over
the serial console. While insmod runs, every stop is a checkpoint: `Checker` judges it and
the guest is resumed. gdb is the only owner of run control here.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import ktap
from .checker import Checker, Stop
from .console import SerialShell
from .errors import GuestError
from .gdbmi import Gdb
from .image import MODULE_DIR_IN_GUEST
from .progress import Ticker
from .suite import ModuleSpec, missing_expected, unexpected_trouble

CORE = "hm_checkpoint"


@dataclass
class ModuleResult:
    spec: ModuleSpec
    insmod_rc: int
    insmod_out: str
    dmesg: str
    stops: list[Stop] = field(default_factory=list)
    suites: list[ktap.Suite] = field(default_factory=list)
    gdb_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def params(self) -> str:
        return self.spec.params

    @property
    def pte_checks(self) -> int:
        return sum(len(s.checks) for s in self.stops)

    @property
    def cases(self) -> list[ktap.Case]:
        """KTAP cases; with an expected crash, the cases it cut short count as XFAIL."""
        out = [c for s in self.suites for c in s.cases]
        if self.spec.crashes and not self.missing_expected():
            for c in out:
                if c.status == "CRASHED":
                    c.status, c.directive = "XFAIL", "expected: " + "; ".join(self.spec.expect_log)
        return out

    def missing_expected(self) -> list[str]:
        return missing_expected(self.spec, self.dmesg)

    def reasons(self) -> list[str]:
        """Why this module run failed; empty when it passed."""
        why = []
        cases = self.cases
        if not cases:
            why.append("no KTAP results in the kernel log")
        why += [f"KTAP case {c.name}: {c.status}" for c in cases
                if c.status not in ("PASS", "SKIP", "XFAIL")]
        why += [f"checkpoint {s.expect.label}: FAIL" for s in self.stops if not s.passed]
        if self.insmod_rc != 0 and not self.spec.crashes:
            why.append(f"insmod exited {self.insmod_rc}: {self.insmod_out[-120:]}")
        why += [f"expected in the kernel log, not found: {p}" for p in self.missing_expected()]
        why += [f"unexpected kernel message: {t}"
                for t in unexpected_trouble(self.spec, self.dmesg)]
        return why

    @property
    def passed(self) -> bool:
        return not self.reasons()


def load_core(shell: SerialShell) -> int:
    """insmod hm_checkpoint.ko; returns the address of hm_checkpoint()."""
    shell.check(f"insmod {MODULE_DIR_IN_GUEST}/{CORE}.ko")
    out = shell.check(f"awk '$3 == \"{CORE}\" {{print $1}}' /proc/kallsyms")
    try:
        return int(out.split()[0], 16)
    except (IndexError, ValueError):
        raise GuestError(f"{CORE} is not in /proc/kallsyms: {out!r}",
                         "check that the kernel has CONFIG_KALLSYMS=y") from None


def arm(gdb: Gdb, breakpoint_addr: int) -> None:
    """With gdb attached (guest stopped): hardware breakpoint on hm_checkpoint(), resume."""
    gdb.cmd(f"-break-insert -h *{breakpoint_addr:#x}")
    gdb.resume()


def run_module(shell: SerialShell, gdb: Gdb, checker: Checker, spec: ModuleSpec,
               on_stop: Callable[[Stop], None] | None = None) -> ModuleResult:
    """insmod one test module with gdb attached and running; unload it afterwards."""
    t0 = time.monotonic()
    name, timeout = spec.name, spec.timeout
    shell.check("dmesg -c >/dev/null")
    token = shell.start(f"insmod {MODULE_DIR_IN_GUEST}/{name}.ko {spec.params}".strip())
    stops: list[Stop] = []
    gdb_seconds = 0.0
    ticker = Ticker(spec.title, every=2.0)
    deadline = t0 + timeout
    while True:
        stopped = gdb.wait_stopped(timeout=0.2)
        if stopped is not None:
            if stopped.get("reason") != "breakpoint-hit":
                raise GuestError(f"the guest stopped unexpectedly: {stopped.get('reason')}",
                                 "read gdb-mi.log and console.log in the run directory")
            g0 = time.monotonic()
            stop = checker.handle_stop(stopped)
            gdb.resume()
            gdb_seconds += time.monotonic() - g0
            if stop is not None:
                stops.append(stop)
                if on_stop:
                    on_stop(stop)
            continue
        res = shell.poll(token, timeout=0.05)
        if res is not None:
            break
        if time.monotonic() > deadline:
            raise GuestError(f"insmod {name} did not finish within {timeout:.0f} s",
                             "read console.log in the run directory; raise --timeout")
        ticker.update(f"{len(stops)} checkpoints")
    ticker.done()
    rc, out = res
    _, dmesg = shell.run("dmesg")
    if rc == 0:
        shell.run(f"rmmod {name}")
    return ModuleResult(spec=spec, insmod_rc=rc, insmod_out=out, dmesg=dmesg,
                        stops=stops, suites=ktap.parse_ktap(dmesg), gdb_seconds=gdb_seconds,
                        seconds=time.monotonic() - t0)
