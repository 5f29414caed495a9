"""The built kernel, image and modules, and a guest booted on demand: what `highmem run`
and the pytest plugin share. Stages: source -> kconfig -> build -> image -> boot -> module.

A kernel or module failure is a result here, never an exception: a module that does not
build, a boot that panics, a module that oopses or hangs each end in a ModuleResult or
BootResult, and the guest is booted again for the next module. Only errors of the user or
the machine (bad source, missing tools, a kernel tree that does not build) raise.
"""

import shutil
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .build import KernelBuild, build_kernel
from .checker import Checker
from .console import ConsoleLog, SerialShell
from .errors import HarnessError
from .failure import Failure, tail
from .gdbmi import Gdb
from .image import build_image
from .kconfig import configure, resolve_fragments
from .layout import Layout
from .meminfo import check_highmem, parse_meminfo
from .modbuild import build_modules, symvers
from .module_run import Guest, arm, load_core, run_module
from .paths import DEFAULT_SOURCE
from .preflight import check_smp
from .progress import Phases, say
from .qemu import Qemu, QemuConfig
from .results import BootResult, ModuleResult, boot_messages, not_run
from .source import resolve_source
from .ssh import start_sshd
from .suite import ModuleSpec


@dataclass
class LabOptions:
    source: Path = DEFAULT_SOURCE
    configs: list[str] = field(default_factory=list)
    module_dirs: dict[str, Path] = field(default_factory=dict)  # user modules: name -> dir
    accel: str = "auto"
    memory: str = "8G"
    smp: int = 2
    append: str = ""


class GuestSession:
    """A booted guest with a shell, hm_checkpoint loaded, and gdb attached and running."""

    def __init__(self, cfg: QemuConfig, kb: KernelBuild, run_dir: Path,
                 attach: bool = True) -> None:
        """attach=False leaves QEMU's gdbstub free for another debugger (`highmem gdb`):
        then there is no `gdb`/`checker`, and hm_checkpoint.ko is not loaded."""
        self.stack = ExitStack()
        self.boot_dmesg = ""
        try:
            self.qemu = self.stack.enter_context(Qemu(cfg, run_dir))
            self.qemu.boot()
            self.shell = SerialShell(self.qemu.child)
            self.shell.sync()
            self.meminfo = parse_meminfo(self.shell.check("cat /proc/meminfo"))
            self.ssh = start_sshd(self.shell, self.qemu.ssh_port)
            self.stack.callback(self.ssh.close)
            self.boot_dmesg = self.ssh.run("dmesg", 30)[1]
            if not attach:
                return
            self.gdb = self.stack.enter_context(Gdb(kb.vmlinux, run_dir / "gdb-mi.log"))
            core = load_core(self.shell)
            self.gdb.attach(self.qemu.gdb_socket)  # the guest stops here
            self.checker = Checker(self.gdb)
            self.checker.kernel_masks()  # read while stopped
            self.checker.kernel_layout()
            arm(self.gdb, core)
        except BaseException:
            self.stack.close()
            raise

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """A command in the guest over SSH: (exit code, stdout, stderr)."""
        return self.ssh.run(cmd, timeout)

    @property
    def console(self) -> SerialShell:
        """The serial console (boot log, panics); kernel messages interleave there."""
        return self.shell

    def dmesg(self) -> str:
        return self.ssh.run("dmesg")[1]

    def module_guest(self, console: ConsoleLog) -> Guest:
        return Guest(shell=self.shell, gdb=self.gdb, checker=self.checker, console=console,
                     remote=lambda cmd, t: self.ssh.run(cmd, t), alive=self.qemu.alive)

    def close(self) -> None:
        self.stack.close()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:60]


class Lab:
    """Prepare once (configure, build, image); boot lazily; run module specs."""

    def __init__(self, opts: LabOptions, run_dir: Path, phases: Phases) -> None:
        self.opts, self.run_dir, self.phases = opts, run_dir, phases
        self.session: GuestSession | None = None
        self.meminfo: dict[str, int] = {}
        self.layout: Layout | None = None
        self.boots: list[BootResult] = []
        self.build_failures: dict[str, str] = {}
        self.built: set[str] = set()
        self.nmodules = 0
        with phases.phase("configure"):
            source = resolve_source(opts.source)
            say(f"  Linux {source.version_str} from {source.tree}")
            build_dir = configure(source, resolve_fragments(opts.configs))
            shutil.copy(build_dir / ".config", run_dir / "kernel.config")
            check_smp(opts.smp, (build_dir / ".config").read_text(errors="replace"))
        with phases.phase("build"):
            self.kernel = build_kernel(source, build_dir)
            kos, self.build_failures = build_modules(self.kernel)
            for user_dir in sorted(set(opts.module_dirs.values())):
                more, failed = build_modules(self.kernel, user_dir,
                                             extra_symbols=symvers(self.kernel))
                kos += more
                self.build_failures.update(failed)
            self.built = {k.stem for k in kos}
        with phases.phase("image"):
            initrd = build_image(self.kernel.build_dir, kos)
        self.qemu_cfg = QemuConfig(kernel=self.kernel.vmlinux, initrd=initrd, memory=opts.memory,
                                   smp=opts.smp, accel=opts.accel, append=opts.append)

    @property
    def boot_failed(self) -> BootResult | None:
        return next((b for b in self.boots if b.failure is not None), None)

    def guest(self, attach: bool = True) -> GuestSession:
        """The booted guest (booted now if needed); attach=False: no MI gdb (see
        GuestSession), for a session that hands the gdbstub to an interactive gdb.
        Raises BootError (or another HarnessError) if it does not come up."""
        if self.session is None:
            with self.phases.phase("boot"):
                s = GuestSession(self.qemu_cfg, self.kernel, self.run_dir, attach=attach)
                self.session = s
                self.meminfo = s.meminfo
                say(f"  booted ({s.qemu.accel}) in {s.qemu.boot_seconds:.1f} s: HighTotal "
                    f"{s.meminfo.get('HighTotal', 0)} kB, "
                    f"LowTotal {s.meminfo.get('LowTotal', 0)} kB")
                check_highmem(s.meminfo, self.opts.memory)
                if attach:
                    self.layout = s.checker.kernel_layout()
        return self.session

    def _boot(self) -> GuestSession | None:
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
            s = self.guest()
            rec.messages = boot_messages(s.boot_dmesg)
            (rec.artifacts / "dmesg.txt").write_text(s.boot_dmesg)
        except HarnessError as e:
            self.close()
            rec.failure = Failure("boot", e.what)
            rec.console_tail = tail(console.text())
            say(f"  boot {rec.number} FAILED: {e.what}")
        finally:
            rec.seconds = time.monotonic() - t0
            (rec.artifacts / "console.log").write_text(console.text())
            self.boots.append(rec)
        return self.session

    def run_spec(self, spec: ModuleSpec) -> ModuleResult:
        """One module on the guest. Whatever happens becomes its result; the guest is
        rebooted before the next module if this one crashed, hung, failed to load, or was
        expected to crash."""
        self.nmodules += 1
        mdir = self.run_dir / "modules" / f"{self.nmodules:02d}-{_slug(spec.title)}"
        mdir.mkdir(parents=True, exist_ok=True)
        if spec.name in self.build_failures:
            m = ModuleResult(spec=spec, failure=Failure(
                "build", f"{spec.name} did not compile: {self.build_failures[spec.name]}"))
        elif spec.name not in self.built:
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
        s = self._boot()
        if s is None:
            b = self.boot_failed
            return not_run(spec, f"the guest did not boot (boot {b.number if b else '?'}: "
                           f"{b.failure.cause if b and b.failure else '?'})")
        console = ConsoleLog(self.run_dir / "console.log")
        gdb_mark = s.gdb.transcript_size()
        started = time.monotonic() - self.phases.started  # the guest is up: insmod next
        with self.phases.phase("module"):
            try:
                m = run_module(s.module_guest(console), spec)
            except HarnessError as e:  # the guest was unusable before the module started
                kind = "hang" if s.qemu.alive() else "crash"
                m = ModuleResult(spec=spec, failure=Failure(
                    kind, f"the guest did not answer before {spec.name} started: {e.what}"))
            except Exception as e:  # noqa: BLE001 - our bug: keep it, go on with the next
                (mdir / "traceback.txt").write_text(traceback.format_exc())
                m = ModuleResult(spec=spec, failure=Failure(
                    "harness", f"internal error of the harness: {type(e).__name__}: {e} "
                    f"(traceback in {mdir / 'traceback.txt'}; please report it)"))
        m.started_s = started
        self.phases.times["module"] -= m.gdb_seconds
        self.phases.add("gdb checks", m.gdb_seconds)
        (mdir / "console.log").write_text(console.text())
        (mdir / "gdb-mi.log").write_text(_slice(self.run_dir / "gdb-mi.log", gdb_mark))
        damaged = any(r.startswith("unexpected kernel message") for r in m.reasons())
        if m.failure is not None or spec.crashes or m.insmod_rc != 0 or damaged:
            say("  the guest will be booted again before the next module (the kernel may "
                "be damaged)")
            self.close()
        return m

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def _slice(path: Path, start: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")
    except OSError:
        return ""
