"""The main job (`make run` / `highmem run`): the whole pipeline, stage by stage.

source -> kconfig -> build (kernel + modules) -> image -> qemu boot -> serial shell ->
module with gdb checkpoints -> report. Every run gets an artifacts directory that is kept
whether the run passes or fails.
"""

import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from . import kconfig_check, report
from .build import KernelBuild, build_kernel
from .checker import Checker
from .console import SerialShell
from .gdbmi import Gdb
from .image import build_image
from .kconfig import configure, resolve_fragments
from .meminfo import check_highmem, parse_meminfo
from .modbuild import build_modules, symvers
from .layout import Layout
from .module_run import ModuleResult, arm, load_core, run_module
from .paths import DEFAULT_SOURCE, new_run_dir
from .progress import Phases, say
from .qemu import Qemu, QemuConfig
from .source import resolve_source
from .suite import ModuleSpec


@dataclass
class RunOptions:
    source: Path = DEFAULT_SOURCE
    configs: list[str] = field(default_factory=list)
    suite: tuple[ModuleSpec, ...] = ()
    module_dirs: dict[str, Path] = field(default_factory=dict)  # user modules: name -> dir
    accel: str = "auto"
    memory: str = "8G"
    smp: int = 2
    timeout: float = 300.0
    append: str = ""


@dataclass
class RunResult:
    run_dir: Path
    modules: list[ModuleResult]
    meminfo: dict[str, int]
    phases: Phases
    layout: Layout | None = None

    @property
    def passed(self) -> bool:
        return bool(self.modules) and all(m.passed for m in self.modules)


def _deps_seconds() -> float | None:
    started = os.environ.get("HIGHMEM_DEPS_STARTED")
    try:
        return time.time() - float(started) if started else None
    except ValueError:
        return None


class GuestSession:
    """A booted guest with a shell, hm_checkpoint loaded, and gdb attached and running."""

    def __init__(self, cfg: QemuConfig, kb: KernelBuild, run_dir: Path, page_offset: int) -> None:
        self.stack = ExitStack()
        self.qemu = self.stack.enter_context(Qemu(cfg, run_dir))
        self.qemu.boot()
        self.shell = SerialShell(self.qemu.child)
        self.shell.sync()
        self.meminfo = parse_meminfo(self.shell.check("cat /proc/meminfo"))
        self.gdb = self.stack.enter_context(Gdb(kb.vmlinux, run_dir / "gdb-mi.log"))
        core = load_core(self.shell)
        self.gdb.attach(self.qemu.gdb_socket)  # the guest stops here
        self.checker = Checker(self.gdb, page_offset)
        self.checker.kernel_masks()  # read while stopped
        self.checker.kernel_layout()
        arm(self.gdb, core)

    def close(self) -> None:
        self.stack.close()


def run(opts: RunOptions, run_dir: Path | None = None) -> RunResult:
    phases = Phases()
    deps = _deps_seconds()
    if deps is not None:
        phases.add("deps", deps)
    run_dir = run_dir or new_run_dir()
    say(f"highmem-harness run: artifacts in {run_dir}")
    with phases.phase("configure"):
        source = resolve_source(opts.source)
        say(f"  Linux {source.version_str} from {source.tree}")
        build_dir = configure(source, resolve_fragments(opts.configs))
        shutil.copy(build_dir / ".config", run_dir / "kernel.config")
    with phases.phase("build"):
        kb = build_kernel(source, build_dir)
        kos = build_modules(kb)
        for user_dir in sorted(set(opts.module_dirs.values())):
            kos += build_modules(kb, user_dir, extra_symbols=symvers(kb))
    with phases.phase("image"):
        initrd = build_image(kb.build_dir, kos)
    cfg = QemuConfig(kernel=kb.vmlinux, initrd=initrd, memory=opts.memory, smp=opts.smp,
                     accel=opts.accel, append=opts.append)
    page_offset = int(kconfig_check.parse_config(kb.config.read_text())
                      .get("CONFIG_PAGE_OFFSET", "0xC0000000"), 0)
    result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=phases)
    session: GuestSession | None = None
    try:
        for spec in opts.suite:
            if session is None:
                with phases.phase("boot"):
                    session = GuestSession(cfg, kb, run_dir, page_offset)
                    result.meminfo = session.meminfo
                    say(f"  booted ({session.qemu.accel}) in {session.qemu.boot_seconds:.1f} s: "
                        f"HighTotal {session.meminfo.get('HighTotal', 0)} kB, "
                        f"LowTotal {session.meminfo.get('LowTotal', 0)} kB")
                    check_highmem(session.meminfo, opts.memory)
                    result.layout = session.checker.kernel_layout()
            with phases.phase("module"):
                m = run_module(session.shell, session.gdb, session.checker, spec)
                result.modules.append(m)
                say(f"  {spec.title}: {len(m.cases)} cases, {m.pte_checks} PTE assertions, "
                    f"{'PASS' if m.passed else 'FAIL'}")
            phases.times["module"] -= m.gdb_seconds
            phases.add("gdb checks", m.gdb_seconds)
            if spec.crashes or m.insmod_rc != 0:
                say("  rebooting the guest (the kernel may be damaged after that module)")
                session.close()
                session = None
    finally:
        if session is not None:
            session.close()
        report.write_json(run_dir / "report.json", result)
    return result


def print_report(result: RunResult) -> str:
    text = report.format_report(result)
    (result.run_dir / "report.txt").write_text(text + "\n")
    for m in result.modules:
        (result.run_dir / f"dmesg-{m.name}{'-' + m.params.replace('=', '-') if m.params else ''}.txt"
         ).write_text(m.dmesg)
    say(text)
    return text
