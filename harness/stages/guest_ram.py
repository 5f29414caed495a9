"""Guest physical memory read and written through a host mapping of QEMU's RAM backend
file (a shared file on tmpfs, see stages/qemu.py), at file offsets from QEMU's own memory
map (core/ram_layout.py). Reading a 4 KiB page-table page costs microseconds here, against
a monitor `xp` round trip through gdb's remote protocol.

The guest must be stopped for a consistent view (the checkpoint stops are); the mapping is
shared, so a write (the checkpoint's verdict) is what the guest reads when it resumes.
"""

import mmap
import os
from pathlib import Path

from ..core.ram_layout import RamRegion, file_offset


class GuestRam:
    """A read/write mapping of the guest's RAM file."""

    def __init__(self, path: Path, regions: list[RamRegion]) -> None:
        if not regions:
            raise ValueError(f"no RAM regions for {path}")
        self.regions = regions
        fd = os.open(path, os.O_RDWR)
        try:
            self.map = mmap.mmap(fd, os.fstat(fd).st_size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)

    def read(self, gpa: int, size: int) -> bytes:
        """Guest physical [gpa, gpa + size); ValueError outside RAM."""
        off = file_offset(self.regions, gpa, size)
        return self.map[off:off + size]

    def write(self, gpa: int, data: bytes) -> None:
        off = file_offset(self.regions, gpa, len(data))
        self.map[off:off + len(data)] = data

    def close(self) -> None:
        self.map.close()
