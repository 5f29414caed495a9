"""Verdict stage, pure: results as data — a checkpoint stop, a module run, a boot, a whole
run — and the rules that decide whether each passed and what `highmem run` exits with. The
report, report.json, JUnit and the pytest plugin all read these; nothing here does I/O.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from . import checkpoint as cp
from . import ktap
from . import verdict as vd
from .failure import Failure, crash_summary
from .layout import Layout
from .phases import Phases
from .suite import ModuleSpec, missing_expected, trouble_lines, unexpected_trouble


@dataclass
class Stop:
    """One checkpoint stop: its expectation and the PTE assertions judged there. `error`:
    the checkpoint itself was malformed (bad magic, unreadable pointer, ...) and was not
    judged; `index`: 1-based number of the stop within its module."""

    cpu: int
    expect: cp.Expect
    checks: list[cp.PteCheck] = field(default_factory=list)
    error: str | None = None
    index: int = 0
    seconds: float = 0.0        # stopped: from the stop seen to the guest resumed

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)


def invalid_expect(addr: int, index: int) -> cp.Expect:
    """A placeholder expectation for a stop whose struct could not be read or parsed."""
    return cp.Expect(kind="invalid", prot=0, va=addr, pfn=0, count=0, entries=0,
                     label=f"checkpoint {index} (invalid struct at {addr:#x})")


@dataclass
class ModuleResult:
    """One module run (or the reason it did not run to the end)."""

    spec: ModuleSpec
    insmod_rc: int = -1
    insmod_out: str = ""
    dmesg: str = ""
    stops: list[Stop] = field(default_factory=list)
    suites: list[ktap.Suite] = field(default_factory=list)
    gdb_seconds: float = 0.0
    seconds: float = 0.0
    failure: Failure | None = None
    artifacts: Path | None = None
    started_s: float = 0.0      # since the run started (a reboot before it included)
    ended_s: float = 0.0
    log_lost: str = ""          # why the module's kernel log is incomplete ("": it is whole)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def params(self) -> str:
        return self.spec.params

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def ran(self) -> bool:
        return self.failure is None or self.failure.kind not in ("build", "not-run")

    @property
    def pte_checks(self) -> int:
        return sum(len(s.checks) for s in self.stops)

    @property
    def ktap_cases(self) -> list[ktap.Case]:
        """KTAP cases as the module printed them (copies); with an expected crash, the
        cases it cut short are XFAIL."""
        out = [c for s in self.suites for c in s.cases]
        if self.spec.crashes and not self.missing_expected():
            why = "expected: " + "; ".join(self.spec.expect_log)
            out = [replace(c, status="XFAIL", directive=why) if c.status == "CRASHED" else c
                   for c in out]
        return out

    def verdict(self) -> vd.Verdict:
        """The module's verdict (core/verdict.py): the only place it is decided."""
        return vd.judge(self)

    @property
    def cases(self) -> list[ktap.Case]:
        """KTAP cases as judged: a case that printed ok while the harness failed one of
        its checkpoints, or whose subtest failed, is FAIL (core/verdict.py)."""
        return list(self.verdict().cases)

    def missing_expected(self) -> list[str]:
        return missing_expected(self.spec, self.dmesg)

    def unexpected_trouble(self) -> list[str]:
        return unexpected_trouble(self.spec, self.dmesg)

    def reasons(self) -> list[str]:
        """Why this module run failed, the cause first; empty when it passed."""
        return [r.text for r in self.verdict().reasons]

    @property
    def passed(self) -> bool:
        return not self.reasons()


@dataclass
class BootResult:
    """One boot of the guest (the first, or after a crash): the `boot` item of the report.

    failure: it did not reach a usable guest (panic, oops, QEMU exit, no ready marker);
    messages: WARN/BUG/Oops lines the kernel printed while booting (a booted kernel that
    warns is a failing kernel too); console_tail: the last console lines when it failed."""

    number: int
    seconds: float = 0.0
    failure: Failure | None = None
    messages: list[str] = field(default_factory=list)
    console_tail: list[str] = field(default_factory=list)
    artifacts: Path | None = None
    checks: list[str] = field(default_factory=list)  # failed boot checks (boot_probe.py)
    restored: bool = False      # a snapshot restored, not a boot (stages/snapshot.py)
    notes: list[str] = field(default_factory=list)  # e.g. "snapshot K was bad: ..."

    def reasons(self) -> list[str]:
        why = [self.failure.line] if self.failure else []
        return why + self.checks + [f"kernel message while booting: {m}" for m in self.messages]

    @property
    def passed(self) -> bool:
        return not self.reasons()


def boot_messages(dmesg: str) -> list[str]:
    """The trouble lines of a boot's kernel log (WARN, BUG, Oops, panic)."""
    return trouble_lines(dmesg)


def not_run(spec: ModuleSpec, why: str) -> ModuleResult:
    return ModuleResult(spec=spec, failure=Failure("not-run", why))


def module_failure(spec: ModuleSpec, rc: int, out: str, dmesg: str) -> Failure | None:
    """Why a module whose insmod (and rmmod) ended failed, from its exit code `rc`, insmod's
    output and the kernel log of its run: an oops in the log is a crash (unless the suite
    expects one), a non-zero exit an insmod failure; None when neither."""
    crash = crash_summary(dmesg)
    if crash and not spec.crashes:
        when = "" if rc != 0 else " (insmod returned; the kernel oopsed after or at rmmod)"
        return Failure("crash", f"oops in {spec.name}{when}: {crash}")
    if rc != 0 and not spec.crashes:
        return Failure("insmod", f"insmod {spec.name} exited {rc}: {out.strip()[-160:]}")
    return None


@dataclass
class RunResult:
    """One `highmem run`: every module (run or not), every boot, what the guest reported."""

    run_dir: Path
    modules: list[ModuleResult]
    meminfo: dict[str, int]
    phases: Phases
    layout: Layout | None = None
    boots: list[BootResult] = field(default_factory=list)
    interrupted: str = ""  # "SIGINT" or "SIGTERM" when the run was cut short
    memory_note: str = ""  # how much of the guest's RAM the kernel kept (meminfo.memory_note)
    # an environment error stopped the run (core/host_errors.py: what, fix, path, errno)
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (bool(self.modules) and not self.interrupted and not self.environment
                and all(m.passed for m in self.modules) and all(b.passed for b in self.boots))


def exit_status(result: RunResult) -> int:
    """`highmem run`'s exit status: 0 all passed, 1 a test failed, 130/143 cut short by
    SIGINT/SIGTERM, 2 an environment error stopped it (the host's filesystem refused)."""
    if result.environment:
        return 2
    if result.interrupted:
        return 143 if result.interrupted == "SIGTERM" else 130
    return 0 if result.passed else 1
