"""The built kernel, image and modules, and a guest booted on demand: what `highmem run`
and the pytest plugin share. Stages: source -> kconfig -> build -> image -> boot -> module.
"""

import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .build import KernelBuild, build_kernel
from .checker import Checker
from .console import SerialShell
from .gdbmi import Gdb
from .image import build_image
from .kconfig import configure, resolve_fragments
from .layout import Layout
from .meminfo import check_highmem, parse_meminfo
from .modbuild import build_modules, symvers
from .module_run import ModuleResult, arm, load_core, run_module
from .paths import DEFAULT_SOURCE
from .progress import Phases, say
from .qemu import Qemu, QemuConfig
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
        try:
            self.qemu = self.stack.enter_context(Qemu(cfg, run_dir))
            self.qemu.boot()
            self.shell = SerialShell(self.qemu.child)
            self.shell.sync()
            self.meminfo = parse_meminfo(self.shell.check("cat /proc/meminfo"))
            self.ssh = start_sshd(self.shell, self.qemu.ssh_port)
            self.stack.callback(self.ssh.close)
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

    def close(self) -> None:
        self.stack.close()


class Lab:
    """Prepare once (configure, build, image); boot lazily; run module specs."""

    def __init__(self, opts: LabOptions, run_dir: Path, phases: Phases) -> None:
        self.opts, self.run_dir, self.phases = opts, run_dir, phases
        self.session: GuestSession | None = None
        self.meminfo: dict[str, int] = {}
        self.layout: Layout | None = None
        with phases.phase("configure"):
            source = resolve_source(opts.source)
            say(f"  Linux {source.version_str} from {source.tree}")
            build_dir = configure(source, resolve_fragments(opts.configs))
            shutil.copy(build_dir / ".config", run_dir / "kernel.config")
        with phases.phase("build"):
            self.kernel = build_kernel(source, build_dir)
            kos = build_modules(self.kernel)
            for user_dir in sorted(set(opts.module_dirs.values())):
                kos += build_modules(self.kernel, user_dir, extra_symbols=symvers(self.kernel))
        with phases.phase("image"):
            initrd = build_image(self.kernel.build_dir, kos)
        self.qemu_cfg = QemuConfig(kernel=self.kernel.vmlinux, initrd=initrd, memory=opts.memory,
                                   smp=opts.smp, accel=opts.accel, append=opts.append)

    def guest(self, attach: bool = True) -> GuestSession:
        """The booted guest (booted now if needed); attach=False: no MI gdb (see
        GuestSession), for a session that hands the gdbstub to an interactive gdb."""
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

    def run_spec(self, spec: ModuleSpec) -> ModuleResult:
        """One module on the guest; the guest is rebooted before the next one if this one
        crashed (or was expected to)."""
        s = self.guest()
        with self.phases.phase("module"):
            m = run_module(s.shell, s.gdb, s.checker, spec)
            say(f"  {spec.title}: {len(m.cases)} cases, {m.pte_checks} PTE assertions, "
                f"{'PASS' if m.passed else 'FAIL'}")
        self.phases.times["module"] -= m.gdb_seconds
        self.phases.add("gdb checks", m.gdb_seconds)
        name = f"dmesg-{spec.name}{'-' + spec.params.replace('=', '-') if spec.params else ''}"
        (self.run_dir / f"{name.replace(' ', '_')}.txt").write_text(m.dmesg)
        if spec.crashes or m.insmod_rc != 0:
            say("  the guest will be rebooted before the next module (after that module the "
                "kernel may be damaged)")
            self.close()
        return m

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
