"""A machine for the Lab that is not one: operations that configure, build and boot nothing,
and a guest whose module runs replay what a real run recorded (data/orchestration/recorded/:
NAME.dmesg is the module's kernel log, NAME.json what the harness's I/O side saw: insmod's
exit code, the time taken, the checkpoint stops, and the failure it decided itself — a hang
— if any). Everything else is the real code: the Lab's policy, the pass/fail rules, the
report. Like kunit_tool's tests, which swap LinuxSourceTreeOperations for a fake."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.oops import format_chain, oops_frames
from harness.core import checkpoint as cp
from harness.core import ktap
from harness.core.errors import BootError
from harness.core.failure import Failure, panic_line
from harness.core.layout import Layout
from harness.core.options import RunOptions
from harness.core.results import ModuleResult, Stop, module_failure
from harness.core.suite import ModuleSpec
from harness.lab import Built
from harness.stages.console_log import ConsoleLog

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "orchestration" / "recorded"
BOOT_PANIC = DATA / "failures" / "panic_boot.txt"
INTERRUPT = "interrupt"   # a module name whose run is cut short by Ctrl-C


@dataclass
class FakeSource:
    identity: str = "tar:linux-source-6.12.tar.xz:144637500:1763856000"
    version: tuple[int, int, int] = (6, 12, 57)


@dataclass
class FakeKernel:
    """What the Lab reads of a configured or built kernel (stages/build.py's KernelBuild)."""

    build_dir: Path
    release: str = "6.12.117"   # the recorded runs' kernel
    source: FakeSource = field(default_factory=FakeSource)

    @property
    def config(self) -> Path:
        return self.build_dir / ".config"

    @property
    def vmlinux(self) -> Path:
        return self.build_dir / "vmlinux"


def replay(spec: ModuleSpec, name: str) -> ModuleResult:
    """The ModuleResult module_run.py made in the recorded run: the stops as recorded, the
    KTAP cases parsed from the recorded log, and the failure decided by the same rule as
    module_run (core/results.py's module_failure) unless the I/O side decided it (a hang)."""
    rec = json.loads((RECORDED / f"{name}.json").read_text())
    dmesg = (RECORDED / f"{name}.dmesg").read_text()
    stops = []
    for s in rec["checkpoints"]:
        checks = [cp.PteCheck(**c) for c in s["checks"]]
        expect = cp.Expect(kind=s["kind"], prot=0, va=checks[0].va if checks else 0, pfn=0,
                           count=0, entries=len(checks), label=s["label"])
        stops.append(Stop(s["cpu"], expect, checks, s["error"], s["index"]))
    rc = rec["insmod_rc"]
    failure = (Failure(**rec["failure"]) if rec["failure"] else
               module_failure(spec, rc, "", dmesg))
    return ModuleResult(spec=spec, insmod_rc=rc, dmesg=dmesg, stops=stops,
                        suites=ktap.parse_ktap(dmesg), gdb_seconds=rec["gdb_seconds"],
                        seconds=rec["seconds"], failure=failure)


@dataclass
class FakeSession:
    """A booted guest (lab.Session): the recorded boot; each module run replays its
    recording and writes its kernel log to the console, as the serial console would."""

    run_dir: Path
    ops: FakeOperations
    attached: bool = False
    layout: Layout | None = None
    up: bool = True
    restored: bool = False      # the fake has no snapshots: every guest is booted
    snapshot_ready: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. a bad snapshot dropped

    def __post_init__(self) -> None:
        boot = json.loads((RECORDED / "boot.json").read_text())
        self.meminfo: dict[str, int] = boot["meminfo_kB"]
        self.boot_dmesg = (RECORDED / "boot.dmesg").read_text()
        self.accel, self.boot_seconds = boot["accel"], boot["boot_seconds"]
        self._layout = Layout.from_json(boot["layout"])

    def attach(self, save: bool = False) -> None:
        self.attached, self.layout = True, self._layout

    def alive(self) -> bool:
        return self.up

    def gdb_mark(self) -> int:
        return 0

    def run_module(self, spec: ModuleSpec, console: ConsoleLog) -> ModuleResult:
        assert self.attached and self.up, "a module ran on a guest without gdb, or a dead one"
        self.ops.ran.append(spec.name)
        if spec.name == INTERRUPT:
            raise KeyboardInterrupt
        result = replay(spec, spec.name)
        with (self.run_dir / "console.log").open("a") as f:
            f.write(result.dmesg + "\n")
        return result

    def close(self) -> None:
        self.up = False


@dataclass
class FakeOperations:
    """lab.Operations: configure writes a .config, build "builds" every module but those in
    `no_build`, boot boots a FakeSession — or panics, the kernel printing the recorded boot
    panic on the console, when `boot_panics`."""

    tmp: Path
    no_build: dict[str, str] = field(default_factory=dict)
    boot_panics: bool = False
    boots: int = 0
    ran: list[str] = field(default_factory=list)
    sessions: list[FakeSession] = field(default_factory=list)

    def configure(self, opts: RunOptions, run_dir: Path) -> FakeKernel:
        kernel = FakeKernel(self.tmp / "build")
        kernel.build_dir.mkdir(exist_ok=True)
        kernel.config.write_text("CONFIG_X86_PAE=y\nCONFIG_HIGHMEM64G=y\nCONFIG_NR_CPUS=8\n"
                                 'CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"\n')
        return kernel

    def build(self, configured: FakeKernel, opts: RunOptions) -> Built:
        names = ["kmap_local_basic", "kmap_local_suite", "cat_null_deref", "cat_spin",
                 "cat_healthy", INTERRUPT]
        return Built(kernel=configured,  # type: ignore[arg-type]
                     kos=[configured.build_dir / f"{n}.ko" for n in names
                          if n not in self.no_build],
                     failures=dict(self.no_build))

    def image(self, built: Built) -> Path:
        return self.tmp / "initramfs.cpio.gz"

    def probe_boot(self, kernel: FakeKernel, initrd: Path, opts: RunOptions,
                   run_dir: Path) -> list[str]:
        return []

    def close(self) -> None:
        pass

    def decode_crash(self, text: str, built: Built) -> str | None:
        """The frames without faddr2line's file:line (no vmlinux here)."""
        frames = oops_frames(text)
        return format_chain(frames, {}) if frames else None

    def boot(self, kernel: FakeKernel, initrd: Path, opts: RunOptions,
             run_dir: Path) -> FakeSession:
        self.boots += 1
        if self.boot_panics:
            console = BOOT_PANIC.read_text()
            with (run_dir / "console.log").open("a") as f:
                f.write(console)
            raise BootError(f"the kernel panicked while booting: {panic_line(console)}",
                            f"read {run_dir / 'console.log'}")
        session = FakeSession(run_dir, self)
        self.sessions.append(session)
        return session
