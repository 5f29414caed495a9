"""The Lab's operations on the machine: configure, build, image and boot through the stages
(harness/stages/), and the booted guest they give (`GuestSession`). lab.py decides what to do
and when; this file only does it — as kunit_tool keeps LinuxSourceTreeOperations (make,
QEMU) apart from LinuxSourceTree (policy). The unit tests give the Lab a fake instead.
"""

from contextlib import ExitStack
from pathlib import Path

from .core.errors import GdbError
from .core.layout import Layout
from .core.meminfo import parse_meminfo
from .core.options import RunOptions
from .core.ram_layout import parse_mtree
from .core.phases import Phases
from .core.results import ModuleResult
from .core.suite import ModuleSpec
from .lab import Built, Lab
from .stages.boot_probe import safe_probe
from .stages.build import KernelBuild, build_kernel
from .stages.checker import Checker
from .stages.console import SerialShell
from .stages.console_log import ConsoleLog
from .stages.crash_decode import decode
from .stages.gdbmi import Gdb
from .stages.image import build_image
from .stages.kconfig import configure, resolve_fragments
from .stages.modbuild import build_modules, symvers
from .stages.module_run import Guest, arm, load_core, run_module
from .stages.progress import say
from .stages.guest_ram import GuestRam
from .stages.qemu import RAM_BACKEND, Qemu, QemuConfig
from .stages.qmp import Monitor
from .stages.source import resolve_source
from .stages.ssh import GuestSSH, start_sshd


def _not_attached() -> GdbError:
    return GdbError("this guest was booted without the harness's gdb attached",
                    "ask for an attached guest: Lab.boot(attach=True)")


class GuestSession:
    """One guest, in one of three states. *made*: nothing runs (the constructor does no
    I/O). *booted* (boot()): QEMU, a root shell on the serial console, SSH; QEMU's gdbstub
    is free for any debugger (`highmem gdb` hands it to an interactive gdb). *attached*
    (attach()): hm_checkpoint.ko loaded, the harness's MI gdb attached and its breakpoint
    armed, the guest running again: modules can run. close() ends any state; a failure in
    boot() or attach() closes the session before it raises."""

    def __init__(self, cfg: QemuConfig, kernel: KernelBuild, run_dir: Path) -> None:
        self.cfg, self.kernel, self.run_dir = cfg, kernel, run_dir
        self.stack = ExitStack()
        self.qemu: Qemu | None = None
        self.shell: SerialShell | None = None
        self.ssh: GuestSSH | None = None
        self.meminfo: dict[str, int] = {}
        self.boot_dmesg = ""
        self.layout: Layout | None = None
        self._gdb: Gdb | None = None
        self._checker: Checker | None = None

    @property
    def booted(self) -> bool:
        return self.qemu is not None

    @property
    def attached(self) -> bool:
        """Whether the harness's gdb is attached (and hm_checkpoint() armed)."""
        return self._gdb is not None

    def boot(self) -> None:
        """Start QEMU, wait for the shell, start sshd; read /proc/meminfo and the boot log."""
        if self.booted:
            return
        try:
            qemu = self.stack.enter_context(Qemu(self.cfg, self.run_dir))
            qemu.boot()
            self.qemu = qemu
            self.shell = SerialShell(qemu.child)
            self.shell.sync()
            self.meminfo = parse_meminfo(self.shell.check("cat /proc/meminfo"))
            self.ssh = start_sshd(self.shell, qemu.ssh_port)
            self.stack.callback(self.ssh.close)
            self.boot_dmesg = self.ssh.run("dmesg", 30)[1]
        except BaseException:
            self.close()
            raise

    def attach(self) -> None:
        """insmod hm_checkpoint.ko, attach the MI gdb (the guest stops), read the kernel's
        masks and layout while it is stopped, arm the breakpoint and resume."""
        if self.attached:
            return
        if self.qemu is None or self.shell is None:
            raise GdbError("attach() on a guest that is not booted", "boot() it first")
        try:
            gdb = self.stack.enter_context(Gdb(self.kernel.vmlinux, self.run_dir / "gdb-mi.log"))
            core = load_core(self.shell)
            ram, monitor = self._ram_and_monitor()
            gdb.attach(self.qemu.gdb_socket)  # the guest stops here
            checker = Checker(gdb, ram, monitor)
            checker.kernel_masks()  # read while stopped
            self.layout = checker.kernel_layout()
            arm(gdb, core)
            self._gdb, self._checker = gdb, checker
        except BaseException:
            self.close()
            raise

    def _ram_and_monitor(self) -> tuple[GuestRam | None, Monitor | None]:
        """QMP kept open for QEMU's cross-check, and the guest's RAM mapped at the offsets
        of QEMU's own memory map (None, None: the checks go through gdb's monitor)."""
        assert self.qemu is not None
        monitor = Monitor(self.qemu.qmp_socket)
        self.stack.callback(monitor.close)
        if self.qemu.ram_file is None:
            return None, monitor
        regions = parse_mtree(monitor.hmp("info mtree -f"), RAM_BACKEND)
        ram = GuestRam(self.qemu.ram_file, regions)
        self.stack.callback(ram.close)
        return ram, monitor

    @property
    def gdb(self) -> Gdb:
        """The harness's MI gdb; a GdbError if this guest was booted without it."""
        if self._gdb is None:
            raise _not_attached()
        return self._gdb

    @property
    def checker(self) -> Checker:
        if self._checker is None:
            raise _not_attached()
        return self._checker

    @property
    def accel(self) -> str:
        return self.qemu.accel if self.qemu else ""

    @property
    def boot_seconds(self) -> float:
        return self.qemu.boot_seconds if self.qemu else 0.0

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """A command in the guest over SSH: (exit code, stdout, stderr)."""
        assert self.ssh is not None, "boot() first"
        return self.ssh.run(cmd, timeout)

    @property
    def console(self) -> SerialShell:
        """The serial console (boot log, panics); kernel messages interleave there."""
        assert self.shell is not None, "boot() first"
        return self.shell

    def dmesg(self) -> str:
        return self.run("dmesg")[1]

    def alive(self) -> bool:
        return self.qemu is not None and self.qemu.alive()

    def gdb_mark(self) -> int:
        """Where the gdb transcript (gdb-mi.log) is now, to cut one module's part out."""
        return self.gdb.transcript_size()

    def module_guest(self, console: ConsoleLog) -> Guest:
        return Guest(shell=self.console, gdb=self.gdb, checker=self.checker, console=console,
                     remote=self.run, alive=self.alive)

    def run_module(self, spec: ModuleSpec, console: ConsoleLog) -> ModuleResult:
        """One module with the checkpoints served (module_run.py); needs attach()."""
        return run_module(self.module_guest(console), spec)

    def close(self) -> None:
        self._gdb = self._checker = None
        self.qemu = self.shell = self.ssh = None
        self.stack.close()


class StageOperations:
    """What the Lab asks of the machine, done by the stages (see lab.Operations)."""

    def configure(self, opts: RunOptions, run_dir: Path) -> KernelBuild:
        """The source resolved (unpacked once) and configured: a KernelBuild whose .config
        exists and which is not built yet."""
        source = resolve_source(opts.source)
        say(f"  Linux {source.version_str} from {source.tree}")
        return KernelBuild(configure(source, resolve_fragments(opts.configs)), source)

    def build(self, configured: KernelBuild, opts: RunOptions) -> Built:
        """The kernel, then our modules and each user module directory against it."""
        kernel = build_kernel(configured.source, configured.build_dir)
        kos, failures = build_modules(kernel)
        for user_dir in sorted(set(opts.module_dirs.values())):
            more, failed = build_modules(kernel, user_dir, extra_symbols=symvers(kernel))
            kos += more
            failures.update(failed)
        return Built(kernel=kernel, kos=kos, failures=failures)

    def image(self, built: Built) -> Path:
        return build_image(built.kernel.build_dir, built.kos)

    def boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
             run_dir: Path) -> GuestSession:
        """A guest booted (not attached) from the built kernel and image."""
        cfg = QemuConfig(kernel=kernel.vmlinux, initrd=initrd, memory=opts.memory,
                         smp=opts.smp, accel=opts.accel, append=opts.append)
        session = GuestSession(cfg, kernel, run_dir)
        session.boot()
        return session


    def probe_boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
                   run_dir: Path) -> list[str]:
        """Boot the failed kernel again, under gdb from its first instruction, and judge
        its first kmap_local maps and unmaps (stages/boot_probe.py); the mismatches."""
        cfg = QemuConfig(kernel=kernel.vmlinux, initrd=initrd, memory=opts.memory,
                         smp=opts.smp, accel="tcg", append=opts.append, extra_args=("-S",),
                         shared_ram=False)
        probe_dir = run_dir / "probe"
        probe_dir.mkdir(parents=True, exist_ok=True)
        with Qemu(cfg, probe_dir) as qemu, Gdb(kernel.vmlinux, probe_dir / "gdb-mi.log") as gdb:
            return safe_probe(qemu, gdb)

    def decode_crash(self, text: str, built: Built) -> str | None:
        """The oops in `text` decoded with the tree's scripts/faddr2line (None if none)."""
        tool = built.kernel.source.tree / "scripts" / "faddr2line"
        if not tool.exists():
            return None
        return decode(text, tool, built.kernel.vmlinux, {k.stem: k for k in built.kos})


def stage_lab(opts: RunOptions, run_dir: Path) -> Lab:
    """A Lab over the real operations (what every command and the pytest plugin use)."""
    return Lab(opts, run_dir, Phases(), StageOperations())


def guest_session(lab: Lab, attach: bool) -> GuestSession:
    """lab.boot(attach), typed as the GuestSession a Lab of StageOperations boots."""
    s = lab.boot(attach=attach)
    assert isinstance(s, GuestSession)
    return s
