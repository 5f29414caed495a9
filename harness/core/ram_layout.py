"""Where guest physical memory lies in QEMU's RAM backend file (pure).

With `-machine pc,memory-backend=ID` and `-object memory-backend-file,id=ID,share=on`, the
guest's RAM is one file that the harness maps: reading a page-table page is then a slice
of that mapping, not a monitor round trip. The file is not laid out like guest physical
memory: on `pc` with more than 3.5 GiB, RAM above the PCI hole starts at 4 GiB in the guest
but right after the first 3 GiB in the file (QEMU's `ram-below-4g`/`ram-above-4g`
aliases). The regions are read from QEMU's own `info mtree -f`, never assumed.
"""

import re
from dataclasses import dataclass

# "  0000000100000000-000000023fffffff (prio 0, ram): pc.ram @00000000c0000000"
MTREE_LINE = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio -?\d+, (?:ram|rom)\): "
                        r"(\S+)(?: @([0-9a-f]+))?\s*$")


@dataclass(frozen=True)
class RamRegion:
    """Guest physical [gpa, gpa + size) is the backend file's [offset, offset + size)."""

    gpa: int
    size: int
    offset: int

    @property
    def end(self) -> int:
        return self.gpa + self.size


def parse_mtree(text: str, backend: str) -> list[RamRegion]:
    """The regions of `backend` (the memory-backend id) in `info mtree -f` output, merged
    where they touch, sorted by guest address (the flat view lists each address space:
    duplicates are dropped)."""
    seen: set[tuple[int, int, int]] = set()
    for line in text.splitlines():
        m = MTREE_LINE.match(line)
        if m is None or m.group(3) != backend:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        seen.add((start, end + 1 - start, int(m.group(4) or m.group(1), 16)))
    merged: list[RamRegion] = []
    for gpa, size, off in sorted(seen):
        last = merged[-1] if merged else None
        if last and last.end == gpa and last.offset + last.size == off:
            merged[-1] = RamRegion(last.gpa, last.size + size, last.offset)
        elif not last or gpa >= last.end:
            merged.append(RamRegion(gpa, size, off))
    return merged


def file_offset(regions: list[RamRegion], gpa: int, size: int = 1) -> int:
    """The backend file offset of guest physical [gpa, gpa + size); ValueError if that is
    not RAM (a hole, MMIO) or crosses a region's end."""
    for r in regions:
        if r.gpa <= gpa and gpa + size <= r.end:
            return r.offset + (gpa - r.gpa)
    raise ValueError(f"guest physical {gpa:#x}+{size:#x} is not in RAM")
