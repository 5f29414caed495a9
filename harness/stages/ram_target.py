"""The kernel-reading Target at one checkpoint stop, over the guest's RAM mapping: physical
reads are slices of the mapped RAM file (stages/guest_ram.py), virtual reads a walk of the
stopped CPU's tables through the same mapping, CR3/CR4 the values read with the stop's
registers. Only C expressions (symbols, struct offsets: read once per run) still go to
gdb. The guest must be stopped.
"""

from ..core.errors import GdbError
from ..core.pagewalk import NotRam, walk
from ..kernel.target import CR4_PAE
from .gdbmi import Gdb
from .guest_ram import GuestRam
from .mi_target import MiTarget


class RamTarget(MiTarget):
    """MiTarget whose memory comes from the RAM mapping (see the module doc)."""

    def __init__(self, gdb: Gdb, ram: GuestRam, cpu: int, cr3: int, cr4: int) -> None:
        super().__init__(gdb, cpu)
        self.ram, self._cr3, self._cr4 = ram, cr3, cr4

    @property
    def cr3(self) -> int:
        return self._cr3

    @property
    def cr4(self) -> int:
        return self._cr4

    def read_phys(self, addr: int, size: int) -> bytes:
        try:
            return self.ram.read(addr, size)
        except ValueError as e:
            raise NotRam(str(e), "the address is not guest RAM") from None

    def phys_of(self, va: int) -> int:
        """The physical address of kernel virtual `va` on this CPU; GdbError if unmapped."""
        w = walk(self._cr3, va, self.read_phys, pae=bool(self._cr4 & CR4_PAE))
        if w.phys is None:
            raise GdbError(f"{va:#x} is not mapped ({w.fault or 'no PTE'})",
                           "the address is not mapped in the stopped CPU's page tables")
        return w.phys

    def read_virt(self, addr: int, size: int) -> bytes:
        out = b""
        while size > 0:
            n = min(size, 0x1000 - (addr & 0xFFF))
            out += self.read_phys(self.phys_of(addr), n)
            addr, size = addr + n, size - n
        return out

    def write_virt(self, addr: int, data: bytes) -> None:
        """Within one page (the verdict's 4 bytes)."""
        if (addr & 0xFFF) + len(data) > 0x1000:
            raise GdbError(f"write across a page at {addr:#x}", "write within one page")
        self.ram.write(self.phys_of(addr), data)
