"""Page-walk stage, pure: software page-table walks for x86-32 over a physical-memory
reader.

``read_phys(addr, size) -> bytes`` returns ``size`` bytes of guest physical
memory (little endian).  Two formats are supported, Linux 6.1-6.14:

* PAE (CONFIG_X86_PAE, HIGHMEM64G): 3 levels of 64-bit entries, VA split
  31-30 / 29-21 / 20-12 / 11-0 (PGDIR_SHIFT 30, PTRS_PER_PGD 4, PMD_SHIFT 21,
  PTRS_PER_PMD 512, PTRS_PER_PTE 512: arch/x86/include/asm/pgtable-3level_types.h).
  The kernel's pgd level is the 4-entry PDPT; pud/p4d are folded.
* 2-level (non-PAE, HIGHMEM4G/NOHIGHMEM): 32-bit entries, VA split
  31-22 / 21-12 / 11-0 (PGDIR_SHIFT 22, PTRS_PER_PGD/PTE 1024:
  pgtable-2level_types.h).

:class:`PteTables` serves the PTEs of many addresses (a checkpoint's range) from PTE pages
read once, with :func:`walk` doing the upper levels once per page.

The walker models what the MMU does with present bits and PS; it does not
check reserved bits (e.g. PDPTE bits 1-2/5-8, which make the CPU fault when
CR3 is loaded) or access rights.

A ``read_phys`` that cannot read an address (it is not RAM: a corrupted entry
pointing at 60 GiB, MMIO, a hole) raises :class:`PhysReadError`.  The walk then
stops there and says so in ``Walk.error`` ("PMD 0x... of VA 0x... points outside
RAM (0x...)"): a finding about the tables, never an error of the reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from .errors import GdbError
from .pte import NONPAE_LARGE_MASK, NONPAE_PFN_MASK, PAE_LARGE_MASK, PAE_PFN_MASK

ReadPhys = Callable[[int, int], bytes]


class PhysReadError(Exception):
    """Raised by a ``read_phys`` for guest physical memory it cannot read (not RAM)."""


class NotRam(PhysReadError, GdbError):
    """What the harness's readers raise outside RAM (the RAM mapping, stages/guest_ram.py;
    QEMU's `xp`, "Cannot access memory"): a PhysReadError for the walker, a GdbError
    (what, fix) for every other caller, as before."""

PAGE_SIZE = 4096
PAE_LARGE_PAGE = 2 << 20
NONPAE_LARGE_PAGE = 4 << 20
_P = 1 << 0
_PS = 1 << 7


@dataclass(frozen=True)
class Level:
    """One table visited: ``PDPTE``/``PMD``/``PTE`` (PAE) or ``PDE``/``PTE``."""

    name: str
    table_phys: int
    index: int
    entry_phys: int
    value: int


@dataclass(frozen=True)
class Walk:
    """Result of translating ``va`` through the tables rooted at ``cr3``.

    ``phys`` is None when the address is not mapped; ``fault`` then names the
    level whose entry lacked _PAGE_PRESENT ("PDPTE not present", "PMD not
    present", "PDE not present", "PTE not present").  ``page_size`` is 4096,
    2 MiB (PAE PMD with PS) or 4 MiB (non-PAE PDE with PS).  ``error``: the
    walk could not read the next table (CR3 or a present entry points outside
    RAM); ``fault`` is then the same text and ``phys`` None — never "unmapped".
    """

    va: int
    cr3: int
    pae: bool
    levels: tuple[Level, ...]
    phys: int | None
    page_size: int
    fault: str | None
    error: str | None = None

    @property
    def pte(self) -> int | None:
        """The leaf entry: the PTE (even if not present) or the large PMD/PDE.

        None when the walk stopped above the last level.
        """
        if not self.levels:
            return None
        last = self.levels[-1]
        if last.name == "PTE":
            return last.value
        if last.value & _P and last.value & _PS and last.name in ("PMD", "PDE"):
            return last.value
        return None


def _check_va(va: int) -> int:
    if not 0 <= va <= 0xFFFFFFFF:
        raise ValueError(f"virtual address {va:#x} is not a 32-bit address")
    return va


def _read_entry(read_phys: ReadPhys, addr: int, size: int) -> int:
    data = read_phys(addr, size)
    if len(data) != size:
        raise ValueError(f"read_phys({addr:#x}, {size}) returned {len(data)} bytes")
    return int.from_bytes(data, "little")


def _level(read_phys: ReadPhys, name: str, table: int, index: int, size: int) -> Level:
    entry_phys = table + index * size
    return Level(name, table, index, entry_phys, _read_entry(read_phys, entry_phys, size))


class _Unreadable(Exception):
    """The next table of a walk cannot be read (internal to the walkers)."""


def _next(read_phys: ReadPhys, levels: list[Level], va: int, cr3: int, name: str,
          table: int, index: int, size: int) -> Level:
    """Read the entry `index` of the `name` table at `table` and append it to `levels`;
    _Unreadable naming the entry (or CR3) that points there when it is not RAM."""
    try:
        level = _level(read_phys, name, table, index, size)
    except PhysReadError:
        if levels:
            up = levels[-1]
            width = 16 if size == 8 else 8
            what = f"{up.name} {up.value:#0{width + 2}x}"
        else:
            what = f"CR3 {cr3:#x}"
        raise _Unreadable(f"{what} of VA {va:#010x} points outside RAM ({table:#x})") from None
    levels.append(level)
    return level


def _unreadable(va: int, cr3: int, pae: bool, levels: list[Level], why: str) -> Walk:
    return Walk(va, cr3, pae, tuple(levels), None, PAGE_SIZE, why, error=why)


def walk_pae(cr3: int, va: int, read_phys: ReadPhys) -> Walk:
    """Walk PAE tables: PDPT at ``cr3 & ~0x1f`` (32-byte aligned, 4 entries).

    A PMD with PS set maps a 2 MiB page: phys = (pmd & 0x000FFFFFFFE00000) |
    (va & 0x1FFFFF).  Otherwise phys = (pte & PTE_PFN_MASK) | (va & 0xfff).
    NX (bit 63) and other high flag bits never reach ``phys``.
    """
    va = _check_va(va)
    levels: list[Level] = []

    def stop(fault: str) -> Walk:
        return Walk(va, cr3, True, tuple(levels), None, PAGE_SIZE, fault)

    try:
        pdpte = _next(read_phys, levels, va, cr3, "PDPTE", cr3 & 0xFFFFFFE0, (va >> 30) & 0x3, 8)
        if not pdpte.value & _P:
            return stop("PDPTE not present")
        pmd = _next(read_phys, levels, va, cr3, "PMD", pdpte.value & PAE_PFN_MASK,
                    (va >> 21) & 0x1FF, 8)
        if not pmd.value & _P:
            return stop("PMD not present")
        if pmd.value & _PS:
            phys = (pmd.value & PAE_LARGE_MASK) | (va & (PAE_LARGE_PAGE - 1))
            return Walk(va, cr3, True, tuple(levels), phys, PAE_LARGE_PAGE, None)
        pte = _next(read_phys, levels, va, cr3, "PTE", pmd.value & PAE_PFN_MASK,
                    (va >> 12) & 0x1FF, 8)
    except _Unreadable as e:
        return _unreadable(va, cr3, True, levels, str(e))
    if not pte.value & _P:
        return stop("PTE not present")
    phys = (pte.value & PAE_PFN_MASK) | (va & (PAGE_SIZE - 1))
    return Walk(va, cr3, True, tuple(levels), phys, PAGE_SIZE, None)


def walk_2level(cr3: int, va: int, read_phys: ReadPhys) -> Walk:
    """Walk non-PAE tables: page directory at ``cr3 & 0xfffff000``.

    A PDE with PS set maps a 4 MiB page: phys = (pde & 0xFFC00000) |
    (va & 0x3FFFFF).  PSE-36 (PDE bits 13-20 giving phys bits 32-39) is
    ignored: a non-PAE Linux kernel keeps all RAM below 4 GiB
    (MAX_NONPAE_PFN, arch/x86/mm/init_32.c) and never sets those bits.
    """
    va = _check_va(va)
    levels: list[Level] = []
    try:
        pde = _next(read_phys, levels, va, cr3, "PDE", cr3 & 0xFFFFF000, (va >> 22) & 0x3FF, 4)
        if not pde.value & _P:
            return Walk(va, cr3, False, tuple(levels), None, PAGE_SIZE, "PDE not present")
        if pde.value & _PS:
            phys = (pde.value & NONPAE_LARGE_MASK) | (va & (NONPAE_LARGE_PAGE - 1))
            return Walk(va, cr3, False, tuple(levels), phys, NONPAE_LARGE_PAGE, None)
        pte = _next(read_phys, levels, va, cr3, "PTE", pde.value & NONPAE_PFN_MASK,
                    (va >> 12) & 0x3FF, 4)
    except _Unreadable as e:
        return _unreadable(va, cr3, False, levels, str(e))
    if not pte.value & _P:
        return Walk(va, cr3, False, tuple(levels), None, PAGE_SIZE, "PTE not present")
    phys = (pte.value & NONPAE_PFN_MASK) | (va & (PAGE_SIZE - 1))
    return Walk(va, cr3, False, tuple(levels), phys, PAGE_SIZE, None)


def walk(cr3: int, va: int, read_phys: ReadPhys, *, pae: bool) -> Walk:
    """Dispatch to :func:`walk_pae` or :func:`walk_2level`."""
    return walk_pae(cr3, va, read_phys) if pae else walk_2level(cr3, va, read_phys)


_UNREAD = ()  # a region whose PTE page was not looked up yet (no PTE page is empty)


class PteTables:
    """The 4 KiB PTEs of many addresses under one CR3, for judging a range: the upper
    levels are walked (by :func:`walk`) once per region one PTE page maps (2 MiB with PAE,
    4 MiB without), and that PTE page is read once and unpacked to its 512 (PAE, u64) or
    1024 (2-level, u32) entries.  ``pte(va)`` is then the value ``walk(cr3, va).levels[-1]``
    would read at the PTE level, without building a :class:`Walk`.
    """

    def __init__(self, cr3: int, read_phys: ReadPhys, *, pae: bool) -> None:
        self.cr3, self.read_phys, self.pae = cr3, read_phys, pae
        self.shift = 21 if pae else 22                   # PMD_SHIFT / PGDIR_SHIFT
        self.index_mask = 0x1FF if pae else 0x3FF         # PTRS_PER_PTE - 1
        self.entries = struct.Struct("<512Q" if pae else "<1024I")
        self.tables: dict[int, tuple[int, ...] | None] = {}

    def table(self, va: int) -> tuple[int, ...] | None:
        """The unpacked PTE page covering ``va``; None when the walk of the region stops
        above the PTE level (an entry not present or pointing outside RAM) or ends in a
        large page."""
        region = va >> self.shift
        if region in self.tables:
            return self.tables[region]
        w = walk(self.cr3, region << self.shift, self.read_phys, pae=self.pae)
        table = None
        if w.error is None and w.levels[-1].name == "PTE":
            raw = self.read_phys(w.levels[-1].table_phys, PAGE_SIZE)
            if len(raw) != PAGE_SIZE:
                raise ValueError(f"read_phys({w.levels[-1].table_phys:#x}, {PAGE_SIZE}) "
                                 f"returned {len(raw)} bytes")
            table = self.entries.unpack(raw)
        self.tables[region] = table
        return table

    def pte(self, va: int) -> int | None:
        """The 4 KiB PTE of ``va`` (present or not); None as for :meth:`table`."""
        table = self.tables.get(va >> self.shift, _UNREAD)
        if table is _UNREAD:
            table = self.table(_check_va(va))
        return None if table is None else table[(va >> 12) & self.index_mask]


def format_walk(w: Walk) -> str:
    """Multi-line human-readable description of a walk (for reports)."""
    width = 16 if w.pae else 8
    lines = [f"va {w.va:#010x} cr3 {w.cr3:#x} ({'PAE' if w.pae else '2-level'})"]
    for lv in w.levels:
        lines.append(f"  {lv.name:<5} table {lv.table_phys:#x}[{lv.index}] "
                     f"@ {lv.entry_phys:#x} = {lv.value:0{width}x}")
    if w.phys is None:
        lines.append(f"  fault: {w.fault}")
    else:
        lines.append(f"  phys {w.phys:#x} (page size {w.page_size:#x})")
    return "\n".join(lines)
