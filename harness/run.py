"""The main job (`make run` / `highmem run`): the whole pipeline, stage by stage.

source -> kconfig -> build (kernel + modules) -> image -> qemu boot -> serial shell ->
module with gdb checkpoints -> report. Every run gets an artifacts directory that is kept
whether the run passes or fails.
"""

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .build import build_kernel
from .checker import Checker
from .console import SerialShell
from .gdbmi import Gdb
from .image import build_image
from .kconfig import configure, resolve_fragments
from .meminfo import check_highmem, parse_meminfo
from .modbuild import build_modules
from .module_run import ModuleResult, attach, load_core, run_module
from .paths import DEFAULT_SOURCE, new_run_dir
from .progress import Phases, say
from .qemu import Qemu, QemuConfig
from .source import resolve_source

DEFAULT_MODULES = ("kmap_local_basic",)


@dataclass
class RunOptions:
    source: Path = DEFAULT_SOURCE
    configs: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=lambda: list(DEFAULT_MODULES))
    params: dict[str, str] = field(default_factory=dict)  # module name -> parameters
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

    @property
    def passed(self) -> bool:
        return bool(self.modules) and all(m.passed for m in self.modules)


def _deps_seconds() -> float | None:
    started = os.environ.get("HIGHMEM_DEPS_STARTED")
    try:
        return time.time() - float(started) if started else None
    except ValueError:
        return None


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
    with phases.phase("image"):
        initrd = build_image(kb.build_dir, kos)
    cfg = QemuConfig(kernel=kb.vmlinux, initrd=initrd, memory=opts.memory, smp=opts.smp,
                     accel=opts.accel, append=opts.append)
    results: list[ModuleResult] = []
    meminfo: dict[str, int] = {}
    try:
        with Qemu(cfg, run_dir) as guest:
            with phases.phase("boot"):
                guest.boot()
                shell = SerialShell(guest.child)
                shell.sync()
                meminfo = parse_meminfo(shell.check("cat /proc/meminfo"))
                say(f"  booted ({guest.accel}) in {guest.boot_seconds:.1f} s: HighTotal "
                    f"{meminfo.get('HighTotal', 0)} kB, LowTotal {meminfo.get('LowTotal', 0)} kB")
                check_highmem(meminfo, opts.memory)
            with Gdb(kb.vmlinux, run_dir / "gdb-mi.log") as gdb:
                with phases.phase("module"):
                    attach(gdb, guest.gdb_socket, load_core(shell))
                    checker = Checker(gdb)
                    for name in opts.modules:
                        results.append(run_module(shell, gdb, checker, name,
                                                  opts.params.get(name, ""), opts.timeout))
                gdb_s = sum(m.gdb_seconds for m in results)
                phases.times["module"] -= gdb_s
                phases.add("gdb checks", gdb_s)
    finally:
        result = RunResult(run_dir=run_dir, modules=results, meminfo=meminfo, phases=phases)
        report.write_json(run_dir / "report.json", results, meminfo, phases.times)
    return result


def print_report(result: RunResult) -> str:
    lines: list[str] = []
    for m in result.modules:
        lines += report.module_section(m)
    mi = result.meminfo
    lines.append(f"Memory: HighTotal {mi.get('HighTotal', 0)} kB, LowTotal "
                 f"{mi.get('LowTotal', 0)} kB, MemTotal {mi.get('MemTotal', 0)} kB")
    lines.append(result.phases.format())
    lines.append(f"Verdict: {'PASS' if result.passed else 'FAIL'} (artifacts: {result.run_dir})")
    text = "\n".join(lines)
    (result.run_dir / "report.txt").write_text(text + "\n")
    say(text)
    return text
