"""A vmcore of the guest: QMP `dump-guest-memory` (format elf, paging false, detached) into a
new file, its progress polled with `query-dump` to a deadline, then its headers checked
against QEMU's own memory map (core/vmcore.py). Standard library only (stages/qmp_line.py):
`highmem dump` and gdb's `hm-dump` both call it.

QEMU stops a running VM for the dump and resumes it after; a VM gdb holds stopped stays
stopped. Nothing is removed: a dump that fails or outlives its deadline leaves the file
QEMU wrote (QEMU 7.2 cannot cancel a dump).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core import vmcore
from ..core.errors import HarnessError
from ..core.preflight import UsageError
from ..core.ram_layout import parse_mtree
from .qmp_line import QmpLine

BACKENDS = ("hm.ram", "pc.ram")   # stages/qemu.py's RAM_BACKEND, or QEMU's own without it
POLL_S = 0.5
PROGRESS_S = 10.0         # a progress line at most this often


@dataclass
class Dumped:
    path: Path
    seconds: float
    summary: str
    problems: list[str]   # [] = crash and drgn find what they need in it


def new_file(text: str) -> Path:
    """The dump's path: absolute, a file that does not exist yet in a directory that does."""
    path = Path(text).absolute()
    if path.exists() or path.is_symlink():
        raise UsageError(f"{text} exists", "give a new file name: a dump never replaces a "
                         "file")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} is not a directory", "give a file in an existing "
                         "directory")
    return path


def ram_ranges(q: QmpLine) -> list[tuple[int, int]]:
    """Guest RAM [(start, end)) from QEMU's memory map (`info mtree -f`)."""
    text = q.hmp("info mtree -f", timeout=30)
    for backend in BACKENDS:
        regions = parse_mtree(text, backend)
        if regions:
            return [(r.gpa, r.end) for r in regions]
    raise HarnessError("QEMU's memory map shows no guest RAM (no hm.ram or pc.ram)",
                       "read `highmem qemu info mtree -f`; is this the harness's guest?")


def _wait(q: QmpLine, path: Path, timeout: float, progress: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    said = 0.0
    while True:
        st = q.execute("query-dump")
        status = st.get("status", "none")
        if status == "completed":
            return
        if status == "failed":
            raise HarnessError(f"QEMU's dump into {path} failed",
                               "check the free space of that file system")
        done = f"{st.get('completed', 0) >> 20} of {st.get('total', 0) >> 20} MiB"
        if time.monotonic() > deadline:
            raise HarnessError(f"the dump did not finish within {timeout:.0f} s ({done}); "
                               f"QEMU goes on writing {path}",
                               "give a longer --timeout, or a guest with less --memory")
        if time.monotonic() - said >= PROGRESS_S:
            progress(f"  dump: {done} written")
            said = time.monotonic()
        time.sleep(POLL_S)


def read_core(path: Path) -> tuple[vmcore.ElfCore, list[tuple[str, int]]]:
    """The headers and the notes' (name, type) of a vmcore file."""
    with path.open("rb") as f:
        head = f.read(vmcore.HEAD_BYTES)
        try:
            f.seek(0)
            core = vmcore.parse_core(f.read(vmcore.headers_size(head)))
        except ValueError as e:
            raise HarnessError(f"{path} is not a usable ELF core: {e}",
                               "see docs/inspect.md (QEMU's dump-guest-memory)") from None
        notes: list[tuple[str, int]] = []
        for n in core.notes:
            f.seek(n.offset)
            notes += vmcore.parse_notes(f.read(min(n.filesz, 1 << 20)), core.elf_class)
    return core, notes


def dump(q: QmpLine, path: Path, timeout: float,
         progress: Callable[[str], None] = lambda s: None) -> Dumped:
    """Dump the guest into the new file `path` and check it."""
    cpus = len(q.execute("query-cpus-fast"))
    ram = ram_ranges(q)
    t0 = time.monotonic()
    q.execute("dump-guest-memory", {"paging": False, "protocol": f"file:{path}",
                                    "detach": True, "format": "elf"})
    _wait(q, path, timeout, progress)
    core, notes = read_core(path)
    return Dumped(path, time.monotonic() - t0, vmcore.summary(core, notes),
                  vmcore.problems(core, ram, path.stat().st_size, cpus, notes))
