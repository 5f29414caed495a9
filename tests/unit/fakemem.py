"""Sparse fake guest physical memory for page-walk tests (no I/O)."""

from __future__ import annotations

PAGE = 4096


class FakePhysMem:
    """Dict of page frame number -> 4 KiB bytearray; unset memory reads as zeros.

    ``read`` has the ``read_phys(addr, size) -> bytes`` signature the walkers
    in harness.pagewalk expect, and may cross page boundaries.
    """

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.reads: list[tuple[int, int]] = []

    def _page(self, pfn: int) -> bytearray:
        return self.pages.setdefault(pfn, bytearray(PAGE))

    def write(self, addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            a = addr + i
            self._page(a // PAGE)[a % PAGE] = byte

    def write_u64(self, addr: int, value: int) -> None:
        self.write(addr, value.to_bytes(8, "little"))

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, value.to_bytes(4, "little"))

    def read(self, addr: int, size: int) -> bytes:
        self.reads.append((addr, size))
        out = bytearray()
        for a in range(addr, addr + size):
            page = self.pages.get(a // PAGE)
            out.append(page[a % PAGE] if page is not None else 0)
        return bytes(out)
