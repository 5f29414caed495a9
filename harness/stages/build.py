"""Build stage: vmlinux, modules and scripts_gdb (vmlinux-gdb.py), with ccache; then a gdb
index in vmlinux.

Only what a run uses is built: QEMU boots the ELF vmlinux through PVH, so no bzImage. The
compiler and the assembler see the build directory mapped to "." in their debug info
(-fdebug-prefix-map via KCFLAGS and KAFLAGS), so ccache (which hashes the working directory
with -g, after that map) serves one build directory's objects to another, and the kernel's
timestamp, user, host and build number are fixed, so a rebuild of the same tree is the same
file. After make, `gdb-add-index` adds a .gdb_index section to vmlinux: gdb then reads it
instead of indexing all of the DWARF at each start.

A stamp in the build directory (.hm-built, JSON) records the source identity that was built,
the recipe (targets, make variables, environment, index) and the artifacts it produced
(vmlinux size and sha256, of the indexed file); when all match, the kernel's make is not run
at all. A stamp exists only after a finished make and index.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import gcov
from ..core.errors import BuildError
from .buildlock import build_lock
from .progress import Ticker, say
from .source import KernelSource

TARGETS = ("vmlinux", "modules", "scripts_gdb")
# the kernel's reproducibility knobs (Documentation/kbuild/reproducible-builds.rst): without
# them each link embeds the time, the user, the host and a build counter
REPRODUCIBLE_ENV = {"KBUILD_BUILD_TIMESTAMP": "2000-01-01 00:00:00 UTC",
                    "KBUILD_BUILD_USER": "highmem", "KBUILD_BUILD_HOST": "harness",
                    "KBUILD_BUILD_VERSION": "1"}
GDB_INDEX = "gdb-add-index"  # ships with Debian's gdb package
INDEX_TIMEOUT = 600
STEP = re.compile(r"^\s+([A-Z][A-Z0-9_]+)\s+(\S+)")  # kbuild's "  CC      mm/highmem.o"
STAMP = ".hm-built"
OLD_STAMP = "old"  # _read_stamp's answer for a stamp it cannot use
COLD_BUILD_STEPS = 1620


@dataclass(frozen=True)
class KernelBuild:
    """The artifacts of one built kernel (paths in its build directory)."""

    build_dir: Path
    source: KernelSource

    @property
    def vmlinux(self) -> Path:
        return self.build_dir / "vmlinux"

    @property
    def gdb_script(self) -> Path:
        return self.build_dir / "vmlinux-gdb.py"

    @property
    def config(self) -> Path:
        return self.build_dir / ".config"

    @property
    def release(self) -> str:
        return (self.build_dir / "include" / "config" / "kernel.release").read_text().strip()


def compiler() -> str:
    return "ccache gcc" if shutil.which("ccache") else "gcc"


@dataclass(frozen=True)
class StampVerdict:
    """What the build stamp says about the cached build.

    fresh: the artifacts are those of this source identity, untouched: make need not run.
    note: one progress line for the user ("" when there is nothing worth telling).
    damaged: artifacts that do not match the stamp; deleted before make so that it remakes
    them (make trusts a file by its mtime, so a corrupt vmlinux would otherwise stay).
    """

    fresh: bool
    note: str = ""
    damaged: tuple[Path, ...] = ()


def make_variables(build_dir: Path) -> dict[str, str]:
    """make's command-line variables besides O=, ARCH= and CC=: KCFLAGS and KAFLAGS (C and
    assembler: the user's, if set, then the debug prefix map of this build directory, as
    given and as resolved; gcc hands the map on to the assembler)."""
    maps = [f"-fdebug-prefix-map={d}=."
            for d in dict.fromkeys([str(build_dir), str(build_dir.resolve())])]
    flags = {var: " ".join(f for f in [os.environ.get(var, "").strip(), *maps] if f)
             for var in ("KCFLAGS", "KAFLAGS")}
    try:  # a gcov kernel (kernel-configs/gcov.config): profile the highmem objects only
        return {**flags, **gcov.make_variables((build_dir / ".config").read_text())}
    except OSError:
        return flags


def recipe(build_dir: Path) -> dict[str, object]:
    """What decides the built files besides the source and the .config: when it changes, make
    runs (kbuild then rebuilds every object whose command line changed). The compiler
    wrapper (ccache or not) and -j are not part of it: they do not change the output."""
    return {"targets": list(TARGETS), "make": make_variables(build_dir),
            "env": REPRODUCIBLE_ENV, "gdb_index": True}


def artifact_record(kb: KernelBuild) -> dict[str, object]:
    """What the stamp pins of the artifacts: vmlinux's size and sha256 (of the file with its
    gdb index; an 80 MB file hashes in about 0.3 s), whether vmlinux-gdb.py exists."""
    return {"vmlinux_size": kb.vmlinux.stat().st_size, "vmlinux_sha256": _sha256(kb.vmlinux),
            "gdb_script": kb.gdb_script.exists()}


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_stamp(kb: KernelBuild) -> None:
    """Record the identity built and its artifacts, atomically (a reader sees the old stamp
    or the new one, never half of one)."""
    stamp = kb.build_dir / STAMP
    tmp = stamp.with_name(STAMP + ".tmp")
    tmp.write_text(json.dumps({"identity": kb.source.identity, "recipe": recipe(kb.build_dir),
                               "artifacts": artifact_record(kb)}, indent=1) + "\n")
    os.replace(tmp, stamp)


def _read_stamp(build_dir: Path) -> dict[str, Any] | str | None:
    """The stamp as a dict; OLD_STAMP for the one-line format of older harness versions
    (or any unreadable stamp); None when there is none."""
    try:
        d = json.loads((build_dir / STAMP).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return OLD_STAMP
    ok = isinstance(d, dict) and isinstance(d.get("artifacts"), dict) and "identity" in d
    return d if ok else OLD_STAMP


def _mismatches(kb: KernelBuild, rec: dict[str, Any]) -> list[tuple[Path, str]]:
    """(artifact, what is wrong with it) for each artifact that differs from the record."""
    out: list[tuple[Path, str]] = []
    if not kb.vmlinux.exists():
        out.append((kb.vmlinux, "is missing"))
    elif kb.vmlinux.stat().st_size != rec.get("vmlinux_size") or \
            _sha256(kb.vmlinux) != rec.get("vmlinux_sha256"):
        out.append((kb.vmlinux, "does not match its stamp"))
    if rec.get("gdb_script") and not kb.gdb_script.exists():
        out.append((kb.gdb_script, "is missing"))
    return out


def check_stamp(kb: KernelBuild) -> StampVerdict:
    """Whether make may be skipped: a stamp of the same identity, artifacts as recorded.

    A "dir:" identity (a tree without its own git) never skips make: make decides."""
    stamp = _read_stamp(kb.build_dir)
    if stamp is None:
        return StampVerdict(False)
    if isinstance(stamp, str):
        return StampVerdict(False, "the build stamp is from an older harness: running make "
                            "once to renew it")
    bad = _mismatches(kb, stamp["artifacts"])
    if bad:
        path, what = bad[0]
        return StampVerdict(False, f"cached {path.name} {what}: rebuilding",
                            tuple(p for p, _ in bad))
    if stamp.get("recipe") != recipe(kb.build_dir):
        return StampVerdict(False, "the build recipe (targets, flags, gdb index) changed: "
                            "running make (objects whose flags changed are rebuilt)")
    fresh = (stamp["identity"] == kb.source.identity
             and not kb.source.identity.startswith("dir:"))
    return StampVerdict(fresh)


def up_to_date(kb: KernelBuild) -> bool:
    """True when make need not run (see check_stamp); says why not when that is news."""
    verdict = check_stamp(kb)
    if verdict.note:
        say(f"  {verdict.note}")
    return verdict.fresh


@dataclass(frozen=True)
class StepEstimate:
    """How many kbuild steps this build will take, and what the guess rests on."""

    steps: int  # 0: no guess
    basis: str  # "the last build's" or "a typical cold build's"


def progress_line(steps: int, est: StepEstimate, last: str) -> str:
    """The build ticker's status: a percentage only while below the estimate; once past it,
    the count and the estimate it passed (never a percentage stuck at 99)."""
    if est.steps and steps < est.steps:
        return f"about {100 * steps // est.steps}% ({steps} of ~{est.steps} steps), {last}"
    if est.steps:
        return f"{steps} steps, more than {est.basis} {est.steps}, {last}"
    return f"{steps} steps, {last}"


def build_kernel(source: KernelSource, build_dir: Path, jobs: int | None = None) -> KernelBuild:
    with build_lock(build_dir):
        return _build_kernel(source, build_dir, jobs)


def _build_kernel(source: KernelSource, build_dir: Path, jobs: int | None) -> KernelBuild:
    kb = KernelBuild(build_dir=build_dir, source=source)
    verdict = check_stamp(kb)
    if verdict.fresh:
        say(f"  kernel up to date ({kb.build_dir.name}): make not run")
        return kb
    if verdict.note:
        say(f"  {verdict.note}")
    for path in verdict.damaged:
        path.unlink(missing_ok=True)
    (build_dir / STAMP).unlink(missing_ok=True)  # a stamp only ever follows a finished make
    jobs = jobs or (os.cpu_count() or 2) + 1
    argv = ["make", "-C", str(source.tree), f"O={build_dir}", "ARCH=i386",
            f"CC={compiler()}", *(f"{k}={v}" for k, v in make_variables(build_dir).items()),
            f"-j{jobs}", *TARGETS]
    log = build_dir / "build.log"
    say(f"  make {' '.join(TARGETS)} -j{jobs} (log: {log})")
    t0 = time.monotonic()
    rc, steps = _run_make(argv, log, _previous_steps(build_dir))
    if rc != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:])
        say(tail)
        raise BuildError(f"the kernel build failed (make exit {rc})", f"read {log}")
    if not kb.vmlinux.exists():
        raise BuildError("make succeeded but vmlinux is missing", f"read {log}")
    (build_dir / ".hm-steps").write_text(str(steps))
    add_gdb_index(kb.vmlinux, log)
    write_stamp(kb)
    say(f"  built {kb.release} in {time.monotonic() - t0:.0f} s ({steps} steps)")
    return kb


def has_gdb_index(vmlinux: Path) -> bool:
    """Whether vmlinux already has an index gdb reads (.gdb_index or DWARF 5 .debug_names)."""
    r = subprocess.run(["readelf", "-S", "-W", str(vmlinux)], capture_output=True, text=True,
                       timeout=60)
    return r.returncode == 0 and bool(re.search(r"\s\.(gdb_index|debug_names)\s", r.stdout))


def add_gdb_index(vmlinux: Path, log: Path) -> None:
    """Add a .gdb_index section to vmlinux (once: make leaves an up-to-date vmlinux alone, and
    a relinked one comes without). Without it, each gdb start spends seconds and about 0.5 GB
    indexing the DWARF; with it, a fraction of a second."""
    if has_gdb_index(vmlinux):
        return
    if shutil.which(GDB_INDEX) is None:
        raise BuildError(f"{GDB_INDEX} is not installed", "install gdb (run 'make deps')")
    say(f"  {GDB_INDEX} vmlinux")
    with log.open("a") as f:
        f.write(f"$ {GDB_INDEX} {vmlinux}\n")
        f.flush()
        r = subprocess.run([GDB_INDEX, str(vmlinux)], stdout=f, stderr=subprocess.STDOUT,
                           timeout=INDEX_TIMEOUT)
    if r.returncode != 0 or not has_gdb_index(vmlinux):
        vmlinux.unlink(missing_ok=True)  # half-rewritten, perhaps: make remakes it
        raise BuildError(f"{GDB_INDEX} failed on {vmlinux} (exit {r.returncode})",
                         f"read {log}")


def _run_make(argv: list[str], log: Path, expected: StepEstimate) -> tuple[int, int]:
    """Run make with its output in `log` and a progress ticker: (exit code, kbuild steps).
    make is killed on any exception, KeyboardInterrupt included."""
    ticker = Ticker("build")
    steps, last = 0, ""
    with log.open("w") as f:
        f.write("$ " + " ".join(argv) + "\n")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace",
                                env=dict(os.environ, **REPRODUCIBLE_ENV))
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                f.write(line)
                m = STEP.match(line)
                if m:
                    steps += 1
                    last = f"{m.group(1)} {m.group(2)}"
                ticker.update(progress_line(steps, expected, last))
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ticker.done()
    return rc, steps


def _previous_steps(build_dir: Path) -> StepEstimate:
    """The step count of the last finished build here; for a first build a typical count."""
    try:
        return StepEstimate(int((build_dir / ".hm-steps").read_text()), "the last build's")
    except (OSError, ValueError):
        if (build_dir / "vmlinux").exists():
            return StepEstimate(0, "")
        # a cold tinyconfig+highmem64g build of 6.12 takes about 1620 steps (1621 measured)
        return StepEstimate(COLD_BUILD_STEPS, "a typical cold build's")
