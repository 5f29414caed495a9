"""Reading a stopped i386 kernel through a *target* (the `Target` protocol): C expressions
with vmlinux's DWARF, guest physical memory through QEMU's `xp` (no wrap at 4 GiB), kernel
virtual memory, symbols; and the live layout (PAE or 2-level) built from them. Linux
6.1-6.14, i386, CONFIG_HIGHMEM, FLATMEM. No gdb or pygdbmi import: gdb's own Python loads
this file too (reports.py, kmaps.py, vmaps.py build the reports on it).
"""

from __future__ import annotations

from typing import Protocol

from ..core.errors import HarnessError
from ..core.layout import PAGE_SIZE, Layout, LayoutInputs, compute_layout
from ..core.pagewalk import PteTables, Walk, walk
from ..core.pte import decode_entry, format_flags

CR4_PAE = 1 << 5
PTR = 4                       # sizeof(void *) and sizeof(unsigned long) on i386
MAX_LIST = 100_000            # a corrupt kernel list must not make us loop forever


class SymbolMissing(LookupError):
    """gdb could not evaluate an expression (no such symbol or member in this kernel)."""


class InspectError(HarnessError):
    """The live kernel is not what the inspector understands, or a list is corrupt."""


class Target(Protocol):
    """What a report needs from a debugger stopped on the guest (see the module doc)."""

    cpu: int | None

    def int_value(self, expr: str) -> int: ...
    def read_phys(self, addr: int, size: int) -> bytes: ...
    def read_virt(self, addr: int, size: int) -> bytes: ...
    def symbol(self, addr: int) -> str | None: ...
    @property
    def cr3(self) -> int: ...
    @property
    def cr4(self) -> int: ...


# -- the expressions we ask gdb for (tests build fake targets from these) ---------------

def offset_expr(ctype: str, member: str) -> str:
    return f"(unsigned long)&(({ctype} *)0)->{member}"


def addr_expr(symbol: str) -> str:
    return f"(unsigned long)&{symbol}"


def value_expr(symbol: str) -> str:
    return f"(unsigned long){symbol}"


def size_expr(ctype: str) -> str:
    return f"sizeof({ctype})"


def count_expr(array: str) -> str:
    return f"sizeof({array}) / sizeof({array}[0])"


# -- one stop of the kernel -------------------------------------------------------------

class Kernel:
    """The live kernel at one stop, through a target: expression values and physical pages
    are kept for the stop (every walk of a report shares the same few table pages)."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.ints: dict[str, int] = {}
        self.pages: dict[int, bytes] = {}
        self.pae = bool(target.cr4 & CR4_PAE)
        self.cr3 = target.cr3
        self.cpu = target.cpu
        self.pte_size = 8 if self.pae else 4
        self._layout: Layout | None = None
        self._tables: PteTables | None = None

    def value(self, expr: str) -> int:
        if expr not in self.ints:
            self.ints[expr] = self.t.int_value(expr)
        return self.ints[expr]

    def maybe(self, expr: str) -> int | None:
        try:
            return self.value(expr)
        except SymbolMissing:
            return None

    def off(self, ctype: str, member: str) -> int:
        return self.value(offset_expr(ctype, member))

    def phys(self, addr: int, size: int) -> bytes:
        """Physical memory, a 4 KiB page per target read, kept for the stop."""
        out = b""
        while size > 0:
            base, off = addr & ~0xFFF, addr & 0xFFF
            if base not in self.pages:
                self.pages[base] = self.t.read_phys(base, PAGE_SIZE)
            n = min(size, PAGE_SIZE - off)
            out += self.pages[base][off:off + n]
            addr, size = addr + n, size - n
        return out

    def virt(self, addr: int, size: int) -> bytes:
        return self.t.read_virt(addr, size)

    def u32(self, addr: int) -> int:
        return int.from_bytes(self.virt(addr, 4), "little")

    def walk(self, va: int) -> Walk:
        return walk(self.cr3, va, self.phys, pae=self.pae)

    @property
    def pte_tables(self) -> PteTables:
        """This stop's PTE pages, each read once and unpacked (for judging a range)."""
        if self._tables is None:
            self._tables = PteTables(self.cr3, self.phys, pae=self.pae)
        return self._tables

    def decode(self, value: int) -> tuple[str, int | None]:
        """(flags, pfn) of a PTE value (pte_t); pfn None when the entry is 0."""
        d = decode_entry(value, pae=self.pae)
        return format_flags(d), (d.pfn if value else None)

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = read_layout(self)
        return self._layout

    def lowmem_pfns(self) -> int:
        """highstart_pfn (arch/x86/mm/init_32.c), else max_low_pfn: lowmem ends there."""
        return self.maybe(value_expr("highstart_pfn")) or self.value(value_expr("max_low_pfn"))

    def page_of(self, pfn: int) -> int | None:
        """The `struct page *` of `pfn` (unsigned long): &mem_map[pfn] (FLATMEM, the only
        memory model of i386 HIGHMEM64G/HIGHMEM4G configs here), or None past max_pfn."""
        if pfn >= self.value(value_expr("max_pfn")):
            return None
        return self.value(value_expr("mem_map")) + pfn * self.value(size_expr("struct page"))

    def pfn_of_page(self, page: int) -> int | None:
        """page_to_pfn() of `page` (struct page *), FLATMEM; None if not in mem_map."""
        base, size = self.value(value_expr("mem_map")), self.value(size_expr("struct page"))
        if page < base or (page - base) % size:
            return None
        return (page - base) // size

    def is_highmem(self, pfn: int) -> bool:
        """PageHighMem() for `pfn` (unsigned long): at or above highstart_pfn."""
        return pfn >= self.lowmem_pfns()


def read_layout(k: Kernel) -> Layout:
    """The layout from the live kernel. PAGE_OFFSET too: high_memory is
    __va(highstart_pfn << PAGE_SHIFT) (init_32.c 6.12:646), so it is their difference."""
    high_memory = k.value(value_expr("high_memory"))
    inputs = LayoutInputs(
        page_offset=(high_memory - (k.lowmem_pfns() << 12)) & 0xFFFFFFFF,
        high_memory=high_memory,
        fixaddr_top=k.value(value_expr("__FIXADDR_TOP")),
        fix_kmap_begin=k.value(value_expr("FIX_KMAP_BEGIN")),
        fix_kmap_end=k.value(value_expr("FIX_KMAP_END")),
        end_of_fixed_addresses=k.value(value_expr("__end_of_fixed_addresses")),
        km_max_idx=k.value(count_expr("((struct task_struct *)0)->kmap_ctrl.pteval")),
        nr_cpus=k.value(count_expr("__per_cpu_offset")),
        cpu_entry_area_size=k.value(size_expr("struct cpu_entry_area")),
        last_pkmap=k.value(count_expr("pkmap_count")))
    return compute_layout(inputs, pae=k.pae)
