"""Stage 3, build: bzImage, modules, vmlinux and scripts_gdb (vmlinux-gdb.py), with ccache.

A stamp in the build directory records the source identity that was built; when it
matches and the artifacts exist, the kernel's make is not run at all.
"""

import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError
from .progress import Ticker, say
from .source import KernelSource

TARGETS = ("bzImage", "modules", "vmlinux", "scripts_gdb")
STEP = re.compile(r"^\s+([A-Z][A-Z0-9_]+)\s+(\S+)")  # kbuild's "  CC      mm/highmem.o"


@dataclass(frozen=True)
class KernelBuild:
    """The artifacts of one built kernel (paths in its build directory)."""

    build_dir: Path
    source: KernelSource

    @property
    def vmlinux(self) -> Path:
        return self.build_dir / "vmlinux"

    @property
    def bzimage(self) -> Path:
        return self.build_dir / "arch" / "x86" / "boot" / "bzImage"

    @property
    def gdb_script(self) -> Path:
        return self.build_dir / "vmlinux-gdb.py"

    @property
    def config(self) -> Path:
        return self.build_dir / ".config"

    @property
    def release(self) -> str:
        return (self.build_dir / "include" / "config" / "kernel.release").read_text().strip()


@contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Serialise builds in one build directory between concurrent runs on this machine."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".hm-lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def compiler() -> str:
    return "ccache gcc" if shutil.which("ccache") else "gcc"


def up_to_date(kb: KernelBuild) -> bool:
    stamp = kb.build_dir / ".hm-built"
    if not stamp.exists() or kb.source.identity.startswith("dir:"):
        return False
    if stamp.read_text().strip() != kb.source.identity:
        return False
    return all(p.exists() for p in (kb.vmlinux, kb.bzimage, kb.gdb_script))


def build_kernel(source: KernelSource, build_dir: Path, jobs: int | None = None) -> KernelBuild:
    with build_lock(build_dir):
        return _build_kernel(source, build_dir, jobs)


def _build_kernel(source: KernelSource, build_dir: Path, jobs: int | None) -> KernelBuild:
    kb = KernelBuild(build_dir=build_dir, source=source)
    if up_to_date(kb):
        say(f"  kernel up to date ({kb.build_dir.name}): make not run")
        return kb
    jobs = jobs or (os.cpu_count() or 2) + 1
    argv = ["make", "-C", str(source.tree), f"O={build_dir}", "ARCH=i386",
            f"CC={compiler()}", f"-j{jobs}", *TARGETS]
    log = build_dir / "build.log"
    expected = _previous_steps(build_dir)
    say(f"  make {' '.join(TARGETS)} -j{jobs} (log: {log})")
    ticker = Ticker("build")
    steps, last = 0, ""
    t0 = time.monotonic()
    with log.open("w") as f:
        f.write("$ " + " ".join(argv) + "\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                f.write(line)
                m = STEP.match(line)
                if m:
                    steps += 1
                    last = f"{m.group(1)} {m.group(2)}"
                pct = f"{min(99, 100 * steps // expected)}%, " if expected else ""
                ticker.update(f"{pct}{steps} steps, {last}")
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ticker.done()
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:])
        say(tail)
        raise BuildError(f"the kernel build failed (make exit {rc})", f"read {log}")
    (build_dir / ".hm-steps").write_text(str(steps))
    (build_dir / ".hm-built").write_text(source.identity + "\n")
    say(f"  built {kb.release} in {time.monotonic() - t0:.0f} s ({steps} steps)")
    return kb


def _previous_steps(build_dir: Path) -> int:
    try:
        return int((build_dir / ".hm-steps").read_text())
    except (OSError, ValueError):
        # a cold tinyconfig+highmem64g build of 6.12 takes about 1500 steps
        return 0 if (build_dir / "vmlinux").exists() else 1500
