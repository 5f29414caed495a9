"""The Lab: the policy shared by `highmem run`, the other commands and the pytest plugin.
Prepare once (configure, build, image), boot a guest on demand, run module specs on it.

A kernel or module failure is a result here, never an exception: a module that does not
build, a boot that panics, a module that oopses or hangs each end in a ModuleResult or
BootResult, and the guest is booted again for the next module. Only errors of the user or
the machine (bad source, missing tools, a kernel tree that does not build) raise.

The Lab decides; an `Operations` object acts on the machine (operations.StageOperations
runs the stages; tests/unit/test_orchestration.py passes a fake, as kunit_tool's tests
swap its LinuxSourceTreeOperations). Nothing happens in the constructor: prepare() builds,
boot() boots. This file imports no I/O library: the unit tests drive it without a VM.
"""

from __future__ import annotations

import shutil
import time
from errno import ENOENT
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .core.errors import HarnessError
from .core.host_errors import HOST_ERRNOS, HostIOError
from .core.failure import Failure, crash_summary, panic_line, tail
from .core.layout import Layout
from .core.kconfig_check import parse_config
from .core.meminfo import check_highmem, memory_note
from .core.options import RunOptions
from .core.profile import memory_for, profile_for
from .core.phases import Phases
from .core.preflight import check_smp
from .core.results import BootResult, ModuleResult, boot_messages, not_run
from .core.suite import ModuleSpec
from .stages.console_log import ConsoleLog
from .stages.progress import say

if TYPE_CHECKING:  # types only: importing stages.build would import subprocess
    from .stages.build import KernelBuild


@dataclass
class Built:
    """What the build stage made: the kernel, the test modules (.ko), and the modules that
    did not compile (name -> the compiler's first error)."""

    kernel: KernelBuild
    kos: list[Path] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        return {k.stem for k in self.kos}


class Session(Protocol):
    """A booted guest as the Lab uses it (operations.GuestSession, or a test's fake)."""

    meminfo: dict[str, int]
    boot_dmesg: str
    layout: Layout | None       # read when gdb attached
    restored: bool              # from a snapshot, not booted
    notes: list[str]            # what the report says of this boot (a bad snapshot dropped)

    @property
    def attached(self) -> bool: ...
    @property
    def snapshot_ready(self) -> bool: ...
    @property
    def accel(self) -> str: ...
    @property
    def boot_seconds(self) -> float: ...
    def attach(self, save: bool = False) -> None: ...
    def alive(self) -> bool: ...
    def gdb_mark(self) -> int: ...
    def run_module(self, spec: ModuleSpec, console: ConsoleLog) -> ModuleResult: ...
    def close(self) -> None: ...


class Operations(Protocol):
    """What the Lab asks of the machine, one call per stage (operations.StageOperations)."""

    def configure(self, opts: RunOptions, run_dir: Path) -> KernelBuild: ...
    def build(self, configured: KernelBuild, opts: RunOptions) -> Built: ...
    def image(self, built: Built) -> Path: ...
    def boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
             run_dir: Path) -> Session: ...
    def decode_crash(self, text: str, built: Built) -> str | None: ...
    def probe_boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
                   run_dir: Path) -> list[str]: ...
    def close(self) -> None: ...


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:60]


class Lab:
    """Prepare once (configure, build, image); boot lazily; run module specs."""

    def __init__(self, opts: RunOptions, run_dir: Path, phases: Phases,
                 ops: Operations) -> None:
        self.opts, self.run_dir, self.phases, self.ops = opts, run_dir, phases, ops
        self.built: Built | None = None
        self.initrd: Path | None = None
        self.session: Session | None = None
        self.meminfo: dict[str, int] = {}
        self.memory_note = ""  # meminfo.memory_note of the booted guest
        self.layout: Layout | None = None
        self.boots: list[BootResult] = []
        self.nmodules = 0
        self.pae = True  # CONFIG_X86_PAE of the configured kernel (prepare() reads it)
        self.highmem64g = True  # CONFIG_HIGHMEM64G of it: RAM above 4 GiB is kept
        self.version: tuple[int, ...] = (6, 12)  # the configured tree's (prepare() reads it)
        self.profile = profile_for(self.version)

    @property
    def kernel(self) -> KernelBuild:
        """The built kernel (prepare() first)."""
        if self.built is None:
            raise RuntimeError("Lab.prepare() has not run")
        return self.built.kernel

    def prepare(self) -> None:
        """Configure, build kernel and modules, make the image (once). Raises HarnessError
        for what the user or the machine must fix (source, config, --smp, a kernel that
        does not build); a test module that does not build is a result of its own."""
        if self.built is not None:
            return
        with self.phases.phase("configure"):
            configured = self.ops.configure(self.opts, self.run_dir)
            version = configured.source.version
            # --memory auto: the profile's guest RAM; a copy, so the caller's options (a
            # warm guest's record, a matrix cell's) keep what was asked
            self.opts = replace(self.opts, memory=memory_for(self.opts.memory, version))
            self.profile, self.version = profile_for(version), version
            shutil.copy(configured.config, self.run_dir / "kernel.config")
            config = parse_config(configured.config.read_text(errors="replace"))
            self.pae = config.get("CONFIG_X86_PAE") == "y"
            self.highmem64g = config.get("CONFIG_HIGHMEM64G") == "y"
            check_smp(self.opts.smp, configured.config.read_text(errors="replace"))
        with self.phases.phase("build"):
            built = self.ops.build(configured, self.opts)
        with self.phases.phase("image"):
            self.initrd = self.ops.image(built)
        self.built = built

    @property
    def boot_failed(self) -> BootResult | None:
        return next((b for b in self.boots if b.failure is not None), None)

    def boot(self, attach: bool = True) -> Session:
        """The guest, booted now if there is none. attach=True: with the harness's gdb
        attached (attached now if the guest was booted without it) — never a guest without
        gdb; attach=False leaves QEMU's gdbstub free (`highmem boot`, `highmem gdb`).
        Raises BootError (or another HarnessError) if it does not come up."""
        self.prepare()
        assert self.built is not None and self.initrd is not None
        if self.session is None:
            t0 = time.monotonic()
            with self.phases.phase("boot"):
                s = self.ops.boot(self.built.kernel, self.initrd, self.opts, self.run_dir)
                self.session = s
                self.meminfo = s.meminfo
                how = "restored from its snapshot" if s.restored else f"booted ({s.accel})"
                say(f"  {how} in {s.boot_seconds:.1f} s: HighTotal "
                    f"{s.meminfo.get('HighTotal', 0)} kB, "
                    f"LowTotal {s.meminfo.get('LowTotal', 0)} kB")
                try:
                    self.memory_note = memory_note(s.meminfo, self.opts.memory, self.pae,
                                                   self.highmem64g, s.boot_dmesg)
                    if self.memory_note and not s.restored:  # once, at the cold boot
                        say(f"  {self.memory_note}")
                    check_highmem(s.meminfo, self.opts.memory, pae=self.pae,
                                  highmem64g=self.highmem64g)
                    if attach:
                        s.attach(save=self.opts.snapshot)
                        self.layout = s.layout
                except BaseException:
                    self._drop_guest()
                    raise
            if s.restored:  # its own phase: `boot` is the cold boot
                self.phases.move("boot", "restore", time.monotonic() - t0)
        elif attach and not self.session.attached:
            with self.phases.phase("boot"):
                self.session.attach(save=self.opts.snapshot)
                self.layout = self.session.layout
        return self.session

    @property
    def resets(self) -> bool:
        """Each module on a clean kernel: opts.reset, and a snapshot to restore (without
        one a cold boot per module would cost a boot each: the kernel is shared)."""
        return (self.opts.reset and self.session is not None
                and self.session.snapshot_ready)

    def boot_for_modules(self) -> Session | None:
        """Boot for the modules, recorded as a BootResult; None if the guest did not come
        up (then no later module boots again: the same kernel would fail the same way)."""
        if self.session is not None:
            return self.session
        if self.boot_failed is not None:
            return None
        rec = BootResult(number=len(self.boots) + 1)
        rec.artifacts = self.run_dir / f"boot-{rec.number}"
        rec.artifacts.mkdir(exist_ok=True)
        console = ConsoleLog(self.run_dir / "console.log")
        t0 = time.monotonic()
        try:
            s = self.boot()
            rec.restored, rec.notes = s.restored, list(s.notes)
            rec.messages = [] if s.restored else boot_messages(s.boot_dmesg)
            (rec.artifacts / "dmesg.txt").write_text(s.boot_dmesg)
        except HostIOError:
            self._drop_guest()
            raise  # the host's, not the kernel's: run.run_modules stops the run
        except HarnessError as e:
            self._drop_guest()
            text = console.text()
            why = panic_line(text) or crash_summary(text)
            cause = e.what if not why or why in e.what else f"{e.what}: {why}"
            rec.failure = self._decoded(Failure("boot", cause), text)
            rec.console_tail = tail(console.text())
            say(f"  boot {rec.number} FAILED: {e.what}")
            if self.built is not None and self.initrd is not None:
                say("  booting it again under gdb to check kmap_local while it boots")
                rec.checks = self.ops.probe_boot(self.built.kernel, self.initrd, self.opts,
                                                 rec.artifacts)
                say("  " + (rec.checks[0] if rec.checks else "the boot checks found nothing"))
        finally:
            rec.seconds = time.monotonic() - t0
            (rec.artifacts / "console.log").write_text(console.text())
            self.boots.append(rec)
        return self.session

    def run_spec(self, spec: ModuleSpec) -> ModuleResult:
        """One module on the guest. Whatever happens becomes its result; the guest is
        rebooted before the next module if this one crashed, hung, failed to load, or was
        expected to crash."""
        self.prepare()
        assert self.built is not None
        self.nmodules += 1
        mdir = self.run_dir / "modules" / f"{self.nmodules:02d}-{_slug(spec.title)}"
        mdir.mkdir(parents=True, exist_ok=True)
        if spec.name in self.built.failures:
            m = ModuleResult(spec=spec, failure=Failure(
                "build", f"{spec.name} did not compile: {self.built.failures[spec.name]}"))
        elif spec.name not in self.built.names:
            m = ModuleResult(spec=spec, failure=Failure(
                "build", f"no {spec.name}.ko was built (is {spec.name}.o in obj-m of its "
                "Kbuild?)"))
        else:
            m = self._run_on_guest(spec, mdir)
        m.artifacts = mdir
        m.ended_s = time.monotonic() - self.phases.started
        m.started_s = m.started_s or m.ended_s
        (mdir / "dmesg.txt").write_text(m.dmesg)
        (mdir / "result.txt").write_text("\n".join(m.reasons() or ["PASS"]) + "\n")
        say(f"  {spec.title}: {len(m.cases)} cases, {m.pte_checks} PTE assertions, "
            f"{'PASS' if m.passed else 'FAIL'}"
            + (f" ({m.failure.line[:150]})" if m.failure else ""))
        return m

    def _run_on_guest(self, spec: ModuleSpec, mdir: Path) -> ModuleResult:
        s = self.boot_for_modules()
        if s is None:
            b = self.boot_failed
            return not_run(spec, f"the guest did not boot (boot {b.number if b else '?'}: "
                           f"{b.failure.cause if b and b.failure else '?'})")
        console = ConsoleLog(self.run_dir / "console.log")
        gdb_mark = s.gdb_mark()
        started = time.monotonic() - self.phases.started  # the guest is up: insmod next
        with self.phases.phase("module"):
            try:
                m = s.run_module(spec, console)
            except HostIOError:
                raise  # the host's, not the module's: run.run_modules stops the run
            except HarnessError as e:  # the guest was unusable before the module started
                kind = "hang" if s.alive() else "crash"
                m = ModuleResult(spec=spec, failure=Failure(
                    kind, f"the guest did not answer before {spec.name} started: {e.what}"))
            except Exception as e:  # noqa: BLE001 - our bug: keep it, go on with the next
                if isinstance(e, OSError) and e.errno in HOST_ERRNOS \
                        and (e.errno != ENOENT or not self.run_dir.is_dir()):
                    raise  # the host's (no space, read-only, ...): run.run_modules decides
                (mdir / "traceback.txt").write_text(traceback.format_exc())
                m = ModuleResult(spec=spec, failure=Failure(
                    "harness", f"internal error of the harness: {type(e).__name__}: {e} "
                    f"(traceback in {mdir / 'traceback.txt'}; please report it)"))
        m.started_s = started
        if m.failure is not None and m.failure.kind == "crash":
            m.failure = self._decoded(m.failure, m.dmesg or console.text())
        self.phases.times["module"] -= m.gdb_seconds
        self.phases.add("gdb checks", m.gdb_seconds)
        (mdir / "console.log").write_text(console.text())
        try:
            s.gdb_mark()  # flushes the transcript before its slice is cut
        except (HarnessError, ValueError, OSError):
            pass
        (mdir / "gdb-mi.log").write_text(_slice(self.run_dir / "gdb-mi.log", gdb_mark))
        damaged = any(r.kind in ("kernel-message", "log-lost") for r in m.verdict().reasons)
        if m.failure is not None or spec.crashes or m.insmod_rc != 0 or damaged:
            say("  the guest will be " + ("restored" if s.snapshot_ready else "booted again")
                + " before the next module (the kernel may be damaged)")
            self._drop_guest()
        elif self.resets:
            self._drop_guest()  # the next module starts from the snapshot
        return m

    def _decoded(self, failure: Failure, text: str) -> Failure:
        """The failure with the oops's frames decoded to file:line appended (`; at f+0x3c
        mm/highmem.c:573 <- ...`), when the text holds an oops and the build allows."""
        if self.built is None:
            return failure
        chain = self.ops.decode_crash(text, self.built)
        return Failure(failure.kind, f"{failure.cause}; at {chain}") if chain else failure

    def _drop_guest(self) -> None:
        """Stop the guest (the next module gets a restored or booted one)."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def close(self) -> None:
        """Stop the guest and everything kept for the next ones (the harness's gdb)."""
        self._drop_guest()
        self.ops.close()


def _slice(path: Path, start: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")
    except OSError:
        return ""
