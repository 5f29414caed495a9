"""Live-mapping inspection (issue 5): walk, list and explain the temporary mappings of a
stopped guest: one VA's full walk (`pte_report`), every live kmap (`kmaps_report`: PKMAP
slots, kmap_local/kmap_atomic slots, the tasks' kmap_ctrl stacks), the vmap areas
(`vmaps_report`) and the address-space layout (`layout_report`).

Everything works over a *target* (the `Target` protocol): `int_value(expr)` evaluates a C
expression with vmlinux's DWARF, `read_phys` reads guest physical memory (QEMU's `xp`: no
wrap at 4 GiB), `read_virt` kernel virtual memory as the stopped CPU sees it, `symbol(addr)`
names code, and `cr3`/`cr4`/`cpu` describe the selected CPU. Two implementations:
`MiTarget` in inspect_cli.py (over harness.gdbmi.Gdb: CLI and pytest) and `GdbTarget` in
gdb_commands.py (inside an interactive gdb). Page tables are walked by harness.pagewalk
over physical memory, PAE or 2-level as CR4.PAE says; kernel structures are read as raw
bytes at the offsets gdb gives, so a report costs tens of round trips, not thousands. No
gdb or pygdbmi import here: gdb's own Python loads this file too.

Kernels: Linux 6.1-6.14, i386, CONFIG_HIGHMEM (HIGHMEM64G/PAE or HIGHMEM4G), FLATMEM
(`mem_map`). Busy vmap areas: 6.12 keeps them per vmap node (`vmap_nodes[i].busy.head`,
the nodes came in 6.9; on 32-bit the node array is never allocated, `vmap_nodes` is folded
away and gdb only sees the static `single` in mm/vmalloc.c), 6.1 in `vmap_area_list`.
The current task: `pcpu_hot.current_task` (6.2+) or the per-cpu `current_task` (6.1).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .errors import GdbError, HarnessError
from .layout import PAGE_SIZE, VMALLOC_OFFSET, Layout, LayoutInputs, compute_layout
from .pagewalk import Walk, walk
from .pte import decode_entry, format_flags

CR4_PAE = 1 << 5
PTR = 4                       # sizeof(void *) and sizeof(unsigned long) on i386
PFN_4G = 0x100000
PMD_MASK_2LEVEL = ~((1 << 22) - 1) & 0xFFFFFFFF   # PMD folded into the 4 MiB PGD
MAX_LIST = 100_000            # a corrupt kernel list must not make us loop forever
VM_FLAGS = ((0x1, "IOREMAP"), (0x2, "ALLOC"), (0x4, "MAP"), (0x8, "USERMAP"),
            (0x10, "DMA_COHERENT"), (0x20, "UNINITIALIZED"), (0x40, "NO_GUARD"),
            (0x200, "MAP_PUT_PAGES"), (0x1000, "SPARSE"))   # include/linux/vmalloc.h 6.12
VM_MAP, VM_NO_GUARD = 0x4, 0x40
XP_LINE = re.compile(r"^([0-9a-fA-F]+):\s+((?:0x[0-9a-fA-F]+\s*)+)$")
SYMBOL_LINE = re.compile(r"^(\S+)(?: \+ (\d+))? in section")


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


def parse_xp(text: str, size: int) -> bytes:
    """The bytes of QEMU's `xp /Ngx ADDR` output (lines `ADDR: 0x... 0x...`)."""
    out = bytearray()
    for line in text.splitlines():
        m = XP_LINE.match(line.strip())
        if m:
            for w in m.group(2).split():
                out += int(w, 16).to_bytes(8, "little")
    if len(out) < size:
        raise GdbError(f"monitor xp returned {text[:120]!r}", "is the guest stopped?")
    return bytes(out[:size])


def parse_symbol(text: str) -> str | None:
    """gdb's `info symbol` answer as `name+off`, or None ("No symbol matches")."""
    m = SYMBOL_LINE.match(text.strip())
    if not m:
        return None
    return m.group(1) + (f"+{int(m.group(2)):#x}" if m.group(2) else "")


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


def compute_layout_2level(i: LayoutInputs) -> Layout:
    """compute_layout() for a non-PAE kernel (HIGHMEM4G): the same pgtable_32_areas.h
    formulas with PMD_MASK = the 4 MiB PGD mask (the PMD level is folded)."""
    fixaddr_tot_start = i.fixaddr_top - (i.end_of_fixed_addresses << 12)
    cea_pages = i.nr_cpus * -(-i.cpu_entry_area_size // PAGE_SIZE)
    cea_base = (fixaddr_tot_start - PAGE_SIZE * (cea_pages + 1)) & PMD_MASK_2LEVEL
    pkmap_base = (((cea_base - PAGE_SIZE) & PMD_MASK_2LEVEL) - PAGE_SIZE) & PMD_MASK_2LEVEL
    return Layout(
        page_offset=i.page_offset, high_memory=i.high_memory,
        vmalloc_start=i.high_memory + VMALLOC_OFFSET, vmalloc_end=pkmap_base - 2 * PAGE_SIZE,
        pkmap_base=pkmap_base, last_pkmap=i.last_pkmap, cpu_entry_area_base=cea_base,
        fixaddr_tot_start=fixaddr_tot_start, fixaddr_top=i.fixaddr_top,
        fix_kmap_begin=i.fix_kmap_begin, fix_kmap_end=i.fix_kmap_end,
        km_max_idx=i.km_max_idx, nr_cpus=i.nr_cpus)


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
    return compute_layout(inputs) if k.pae else compute_layout_2level(inputs)


# -- report types -----------------------------------------------------------------------

class Report:
    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def format(self) -> str:
        raise NotImplementedError


def _hex(v: int | None, width: int = 0) -> str:
    return "-" if v is None else f"{v:#0{width + 2}x}" if width else f"{v:#x}"


@dataclass
class LevelInfo:
    name: str
    table_phys: int
    index: int
    entry_phys: int
    value: int
    flags: str
    present: bool
    protnone: bool


@dataclass
class PteReport(Report):
    va: int
    area: str
    cpu: int | None
    cr3: int
    pae: bool
    levels: list[LevelInfo]
    present: bool
    fault: str | None
    phys: int | None
    pfn: int | None
    page: int | None
    page_size: int
    highmem: bool | None
    protnone: bool
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        w = 16 if self.pae else 8
        cpu = "" if self.cpu is None else f"CPU {self.cpu}, "
        lines = [f"VA {self.va:#010x}: {self.area}",
                 f"  CR3    {self.cr3:#010x} ({cpu}{'PAE' if self.pae else '2-level'})"]
        for lv in self.levels:
            lines.append(f"  {lv.name:<6} [{lv.index:3}] @ {lv.entry_phys:#011x} = "
                         f"{lv.value:0{w}x}  {lv.flags}")
        if self.present:
            where = "highmem" if self.highmem else "lowmem"
            if self.pfn is not None and self.pfn >= PFN_4G:
                where += ", above 4 GiB"
            lines.append(f"  phys   {self.phys:#x}  PFN {self.pfn:#x} ({where})  "
                         f"struct page {_hex(self.page)}"
                         + (f"  [{self.page_size >> 20} MiB page]" if self.page_size > PAGE_SIZE
                            else ""))
        else:
            extra = f" (PROTNONE, PFN {self.pfn:#x})" if self.protnone else ""
            lines.append(f"  not mapped: {self.fault}{extra}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class PkmapSlot:
    nr: int
    va: int
    count: int
    pte: int
    flags: str
    pfn: int | None
    page: int | None
    stale: bool
    state: str


@dataclass
class KmapCtrlEntry:
    index: int
    va: int
    pteval: int
    flags: str
    pfn: int | None
    live_pte: int
    state: str


@dataclass
class TaskKmaps:
    task: int
    pid: int
    comm: str
    cpu: int
    running: bool
    idx: int
    entries: list[KmapCtrlEntry]


@dataclass
class KmapLocalSlot:
    cpu: int
    slot: int
    va: int
    pte: int
    flags: str
    pfn: int | None
    page: int | None
    holder: str


@dataclass
class KmapsReport(Report):
    pae: bool
    pkmap_base: int
    last_pkmap: int
    pkmap: list[PkmapSlot]
    kmap_local: list[KmapLocalSlot]
    current: dict[int, str]
    tasks: list[TaskKmaps]

    def format(self) -> str:
        w = 16 if self.pae else 8
        head = f"PKMAP ({self.last_pkmap} slots at {self.pkmap_base:#x}): {len(self.pkmap)} in use"
        lines = [head]
        if self.pkmap:
            lines.append(f"  {'slot':>4}  {'VA':10}  {'count':>5}  {'PTE':{w}}  {'flags':16}  "
                         f"{'PFN':>9}  {'struct page':11}  state")
        for s in self.pkmap:
            lines.append(f"  {s.nr:4}  {s.va:#010x}  {s.count:5}  {s.pte:0{w}x}  {s.flags:16}  "
                         f"{_hex(s.pfn):>9}  {_hex(s.page):11}  {s.state}")
        lines.append(f"kmap_local/kmap_atomic slots with a PTE: {len(self.kmap_local)}")
        for k in self.kmap_local:
            lines.append(f"  CPU {k.cpu} slot {k.slot:2}  {k.va:#010x}  {k.pte:0{w}x}  "
                         f"{k.flags:16}  PFN {_hex(k.pfn):>9}  page {_hex(k.page)}  {k.holder}")
        lines.append("current task of each CPU: " + ", ".join(
            f"CPU {c}: {d}" for c, d in sorted(self.current.items())))
        lines.append(f"tasks holding kmap_local maps (kmap_ctrl.idx > 0): {len(self.tasks)}")
        for t in self.tasks:
            run = "running" if t.running else "not running: PTEs cleared at sched-out"
            lines.append(f"  pid {t.pid} {t.comm} on CPU {t.cpu} ({run}), "
                         f"kmap_ctrl.idx {t.idx}")
            for e in t.entries:
                lines.append(f"    [{e.index:2}] {e.va:#010x}  pteval {e.pteval:0{w}x}  "
                             f"{e.flags:16}  PFN {_hex(e.pfn):>9}  {e.state}")
        return "\n".join(lines)


@dataclass
class VmapPage:
    index: int
    va: int
    pte: int
    flags: str
    pfn: int | None
    highmem: bool
    above_4g: bool


@dataclass
class VmapArea:
    start: int
    end: int
    size: int
    flags: str
    caller: str
    pages_array: bool
    pages: list[VmapPage]
    notes: list[str] = field(default_factory=list)


@dataclass
class VmapsReport(Report):
    busy: int
    kinds: dict[str, int]
    areas: list[VmapArea]

    def format(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        lines = [f"vmap areas: {self.busy} busy ({kinds}); VM_MAP areas: {len(self.areas)}"]
        for a in self.areas:
            high = sum(p.highmem for p in a.pages)
            lines.append(f"  {a.start:#010x}-{a.end:#010x} {len(a.pages)} pages ({high} highmem)"
                         f"  {a.flags}  caller {a.caller}"
                         + ("" if a.pages_array else "  (no pages array: PFNs from the PTEs)"))
            for p in a.pages:
                where = ("highmem above 4 GiB" if p.above_4g else "highmem") if p.highmem \
                    else "lowmem"
                lines.append(f"    [{p.index:3}] {p.va:#010x}  {p.flags:16}  "
                             f"PFN {_hex(p.pfn):>9}  {where}")
            lines += [f"    note: {n}" for n in a.notes]
        return "\n".join(lines)


@dataclass
class LayoutReport(Report):
    pae: bool
    layout: dict[str, int | bool]
    fixaddr_start: int
    kmap_local_first: int
    kmap_local_last: int
    mem_map: int
    struct_page_size: int
    max_pfn: int
    highstart_pfn: int
    checks: list[str]

    def format(self) -> str:
        lo = self.layout
        rows = [("PAGE_OFFSET", lo["page_offset"]), ("high_memory", lo["high_memory"]),
                ("VMALLOC_START", lo["vmalloc_start"]), ("VMALLOC_END", lo["vmalloc_end"]),
                ("PKMAP_BASE", lo["pkmap_base"]), ("CPU_ENTRY_AREA_BASE",
                                                   lo["cpu_entry_area_base"]),
                ("FIXADDR_TOT_START", lo["fixaddr_tot_start"]),
                ("FIXADDR_START", self.fixaddr_start), ("FIXADDR_TOP", lo["fixaddr_top"])]
        lines = [f"page tables: {'PAE (3 levels, 64-bit entries)' if self.pae else '2-level'}"]
        lines += [f"  {n:<20} {int(v):#010x}" for n, v in rows]
        debug = "on" if lo["debug_kmap_local"] else "off"
        lines += [f"  {'LAST_PKMAP':<20} {lo['last_pkmap']}",
                  f"  {'FIX_KMAP_BEGIN':<20} {lo['fix_kmap_begin']} -> "
                  + f"{self.kmap_local_first:#010x}",
                  f"  {'FIX_KMAP_END':<20} {lo['fix_kmap_end']} -> {self.kmap_local_last:#010x}",
                  f"  {'KM_MAX_IDX':<20} {lo['km_max_idx']} (DEBUG_KMAP_LOCAL {debug}), "
                  + f"NR_CPUS {lo['nr_cpus']}",
                  f"  {'mem_map':<20} {self.mem_map:#010x} (struct page: "
                  + f"{self.struct_page_size} bytes), max_pfn {self.max_pfn:#x}, "
                  + f"highstart_pfn {self.highstart_pfn:#x}"]
        lines += [f"  check: {c}" for c in self.checks]
        return "\n".join(lines)


# -- the reports ------------------------------------------------------------------------

def _level_info(lv: Any, pae: bool) -> LevelInfo:
    kind = "pte" if lv.name == "PTE" else ("pde" if lv.name == "PDE" else "pmd")
    d = decode_entry(lv.value, pae=pae, level=kind)
    return LevelInfo(lv.name, lv.table_phys, lv.index, lv.entry_phys, lv.value,
                     format_flags(d), d.present, d.protnone)


def _decode(k: Kernel, value: int) -> tuple[str, int | None]:
    """(flags, pfn) of a PTE value; pfn None when the entry is 0."""
    d = decode_entry(value, pae=k.pae)
    return format_flags(d), (d.pfn if value else None)


def pte_report(target: Target, va: int) -> PteReport:
    """The full walk of `va` (unsigned long) through the selected CPU's CR3."""
    k = Kernel(target)
    if not 0 <= va <= 0xFFFFFFFF:
        raise InspectError(f"{va:#x} is not a 32-bit virtual address",
                           "give an address below 0x100000000")
    w = k.walk(va)
    levels = [_level_info(lv, k.pae) for lv in w.levels]
    leaf = w.pte
    pfn = w.phys >> 12 if w.phys is not None else None
    protnone = bool(levels and levels[-1].protnone)
    if pfn is None and leaf:
        pfn = decode_entry(leaf, pae=k.pae).pfn
    return PteReport(
        va=va, area=k.layout.area_of(va), cpu=k.cpu, cr3=k.cr3, pae=k.pae, levels=levels,
        present=w.phys is not None, fault=w.fault, phys=w.phys, pfn=pfn,
        page=k.page_of(pfn) if pfn is not None else None, page_size=w.page_size,
        highmem=k.is_highmem(pfn) if pfn is not None else None, protnone=protnone,
        notes=_area_notes(k, va))


def _area_notes(k: Kernel, va: int) -> list[str]:
    """PKMAP: its pkmap_count. kmap_local: which task's kmap_ctrl holds the slot."""
    lay = k.layout
    if lay.in_pkmap(va):
        nr = (va - lay.pkmap_base) // PAGE_SIZE
        count = k.value(f"(int)pkmap_count[{nr}]")
        return [f"pkmap_count[{nr}] = {count}: {_pkmap_state(count, True)}"]
    slot = lay.kmap_local_slot(va)
    if slot is None:
        return []
    cpu, i = slot
    running, tasks = _tasks(k)
    notes = [f"held by pid {t.pid} {t.comm}: kmap_ctrl.pteval[{i}] = {t.ptevals[i]:#x}, "
             + ("running on CPU " + str(cpu) if t.addr in running
                else "not running, so its PTE is cleared until it is scheduled in")
             for t in tasks if t.cpu == cpu and len(t.ptevals) > i]
    return notes or [f"no task's kmap_ctrl holds slot {i} of CPU {cpu}"]


def _pkmap_state(count: int, present: bool) -> str:
    if count == 0:
        return "free" if not present else "inconsistent: count 0 but the PTE is set"
    if not present:
        return f"inconsistent: count {count} but no present PTE"
    if count == 1:
        return "stale: kunmap()ed, PTE kept until flush_all_zero_pkmaps()"
    return f"mapped, {count - 1} user{'s' if count > 2 else ''}"


def _pkmap_slots(k: Kernel) -> list[PkmapSlot]:
    lay = k.layout
    n = lay.last_pkmap
    counts = struct.unpack(f"<{n}i", k.virt(k.value(addr_expr("pkmap_count")), 4 * n))
    out = []
    for nr, count in enumerate(counts):
        va = lay.pkmap_va(nr)
        pte = k.walk(va).pte or 0
        if count == 0 and pte == 0:
            continue
        flags, pfn = _decode(k, pte)
        present = bool(pte & 1)
        out.append(PkmapSlot(nr, va, count, pte, flags, pfn,
                             k.page_of(pfn) if pfn is not None else None,
                             stale=count == 1 and present, state=_pkmap_state(count, present)))
    return out


@dataclass
class _Task:
    addr: int
    pid: int
    comm: str
    cpu: int
    idx: int
    ptevals: list[int]
    tasks_next: int
    thread_next: int
    thread_prev: int
    signal: int


def _task_offsets(k: Kernel) -> dict[str, int]:
    ts = "struct task_struct"
    return {"pid": k.off(ts, "pid"), "comm": k.off(ts, "comm"),
            "cpu": k.off(ts, "thread_info.cpu"), "tasks": k.off(ts, "tasks"),
            "thread_node": k.off(ts, "thread_node"), "signal": k.off(ts, "signal"),
            "kmap_ctrl": k.off(ts, "kmap_ctrl"),
            "pteval": k.off("struct kmap_ctrl", "pteval")}


def _read_task(k: Kernel, addr: int) -> _Task:
    o = _task_offsets(k)
    km = k.layout.km_max_idx
    end = max(o["comm"] + 16, o["kmap_ctrl"] + o["pteval"] + km * k.pte_size,
              o["thread_node"] + 8, *(o[f] + 4 for f in ("pid", "cpu", "tasks", "signal")))
    raw = k.virt(addr, end)

    def u32(off: int) -> int:
        return int.from_bytes(raw[off:off + 4], "little")

    idx = struct.unpack_from("<i", raw, o["kmap_ctrl"])[0]
    base = o["kmap_ctrl"] + o["pteval"]
    ptevals = [int.from_bytes(raw[base + i * k.pte_size:base + (i + 1) * k.pte_size], "little")
               for i in range(max(0, min(idx, km)))]
    comm = raw[o["comm"]:o["comm"] + 16].split(b"\0")[0].decode(errors="replace")
    return _Task(addr, u32(o["pid"]), comm, u32(o["cpu"]), idx, ptevals,
                 u32(o["tasks"]), u32(o["thread_node"]), u32(o["thread_node"] + 4),
                 u32(o["signal"]))


def _current_tasks(k: Kernel) -> dict[int, int]:
    """{cpu: task_struct address} for each online CPU: per_cpu(pcpu_hot.current_task)."""
    nr = k.layout.nr_cpus
    online = k.value(value_expr("__cpu_online_mask.bits[0]"))
    offsets = struct.unpack(f"<{nr}I", k.virt(k.value(addr_expr("__per_cpu_offset")), nr * PTR))
    var = k.maybe(addr_expr("pcpu_hot"))
    if var is not None:
        var += k.off("struct pcpu_hot", "current_task")
    else:
        var = k.value(addr_expr("current_task"))            # Linux 6.1
    return {c: k.u32((var + offsets[c]) & 0xFFFFFFFF) for c in range(nr) if online >> c & 1}


def _all_tasks(k: Kernel) -> Iterator[_Task]:
    """Every thread: processes on init_task.tasks, their threads on signal->thread_head
    (6.6+: for_each_thread() walks thread_node). Idle tasks but CPU 0's are on neither."""
    o = _task_offsets(k)
    head = k.value(addr_expr("init_task")) + o["tasks"]
    thread_head = k.off("struct signal_struct", "thread_head")
    leader = _read_task(k, head - o["tasks"])
    for _ in range(MAX_LIST):
        sentinel = leader.signal + thread_head
        if leader.thread_next == sentinel and leader.thread_prev == sentinel:
            yield leader                                   # the only thread
        else:
            node = k.u32(sentinel)
            for _ in range(MAX_LIST):
                if node == sentinel:
                    break
                t = leader if node - o["thread_node"] == leader.addr else \
                    _read_task(k, node - o["thread_node"])
                yield t
                node = t.thread_next
        if leader.tasks_next == head:
            return
        leader = _read_task(k, leader.tasks_next - o["tasks"])
    raise InspectError("init_task.tasks does not end", "the kernel's task list is corrupt")


def _tasks(k: Kernel) -> tuple[dict[int, int], list[_Task]]:
    """({task address: cpu} of the running tasks, every task once: the running ones first
    (idle tasks of CPUs > 0 are on no list), then the task list)."""
    running = {addr: cpu for cpu, addr in _current_tasks(k).items()}
    out, seen = [], set()
    for t in [_read_task(k, a) for a in running] + list(_all_tasks(k)):
        if t.addr not in seen:
            seen.add(t.addr)
            out.append(t)
    return running, out


def _kmap_ctrl_entries(k: Kernel, t: _Task, running: bool) -> list[KmapCtrlEntry]:
    lay = k.layout
    out = []
    for i, pteval in enumerate(t.ptevals):
        va = lay.fix_to_virt(lay.fix_kmap_begin + i + lay.km_max_idx * t.cpu)
        live = k.walk(va).pte or 0
        flags, pfn = _decode(k, pteval)
        if lay.debug_kmap_local and i % 2 == 0:
            state = "guard slot (DEBUG_KMAP_LOCAL)"
        elif live == pteval:
            state = "PTE present" if running else "PTE present (not cleared?)"
        elif live == 0 and not running:
            state = "PTE cleared while not running; restored at sched-in"
        else:
            state = f"live PTE {live:#x} differs from the saved pteval"
        out.append(KmapCtrlEntry(i, va, pteval, flags, pfn, live, state))
    return out


def kmaps_report(target: Target) -> KmapsReport:
    """Every live kmap: PKMAP slots in use (stale count-1 ones marked), kmap_local and
    kmap_atomic slots with a PTE, each CPU's current task, and every task whose kmap_ctrl
    holds maps (a task that is not running has them only in kmap_ctrl.pteval[])."""
    k = Kernel(target)
    lay = k.layout
    running, all_tasks = _tasks(k)
    tasks: list[TaskKmaps] = []
    current: dict[int, str] = {}
    for t in all_tasks:
        if t.addr in running:
            current[running[t.addr]] = f"pid {t.pid} {t.comm} (kmap_ctrl.idx {t.idx})"
        if t.idx > 0:
            on = t.addr in running
            tasks.append(TaskKmaps(t.addr, t.pid, t.comm, t.cpu, on, t.idx,
                                   _kmap_ctrl_entries(k, t, on)))
    local = []
    for idx in range(lay.fix_kmap_begin, lay.fix_kmap_end + 1):
        va = lay.fix_to_virt(idx)
        pte = k.walk(va).pte or 0
        if not pte:
            continue
        cpu, slot = divmod(idx - lay.fix_kmap_begin, lay.km_max_idx)
        holder = next((f"pid {t.pid} {t.comm} kmap_ctrl[{slot}]" for t in tasks
                       if t.running and t.cpu == cpu and slot < len(t.entries)
                       and t.entries[slot].pteval == pte), "no running task's kmap_ctrl has it")
        flags, pfn = _decode(k, pte)
        local.append(KmapLocalSlot(cpu, slot, va, pte, flags, pfn,
                                   k.page_of(pfn) if pfn is not None else None, holder))
    return KmapsReport(k.pae, lay.pkmap_base, lay.last_pkmap, _pkmap_slots(k), local,
                       current, tasks)


def _busy_heads(k: Kernel) -> list[int]:
    """The list heads of busy vmap areas: vmap_nodes[i].busy.head (6.9+), else the 6.1
    global vmap_area_list."""
    nodes = k.maybe(value_expr("vmap_nodes"))
    if nodes is None:
        nodes = k.maybe(addr_expr("'vmalloc.c'::single"))
    if nodes is None:
        return [k.value(addr_expr("vmap_area_list"))]
    n = k.maybe(value_expr("nr_vmap_nodes")) or 1
    size, head = k.value(size_expr("struct vmap_node")), k.off("struct vmap_node", "busy.head")
    return [nodes + i * size + head for i in range(n)]


def _iter_structs(k: Kernel, head: int, member: int, size: int) -> Iterator[tuple[int, bytes]]:
    """(address, raw bytes) of each struct on the list at `head` (list_head at `member`)."""
    node = k.u32(head)
    for _ in range(MAX_LIST):
        if node == head:
            return
        if node == 0:
            raise InspectError(f"the list at {head:#x} has a NULL link",
                               "the kernel's list is corrupt or changing: stop the guest")
        raw = k.virt(node - member, size)
        yield node - member, raw
        node = int.from_bytes(raw[member:member + 4], "little")
    raise InspectError(f"the list at {head:#x} does not end", "the kernel's list is corrupt")


def _vm_flags(flags: int) -> str:
    return "|".join(f"VM_{n}" for bit, n in VM_FLAGS if flags & bit) or "0"


def _kind(vm_flags: int | None, va_flags: int) -> str:
    if vm_flags is None:
        return "vm_map_ram" if va_flags else "no vm_struct"
    for bit, name in ((VM_MAP, "vmap"), (0x2, "vmalloc"), (0x1, "ioremap")):
        if vm_flags & bit:
            return name
    return "other"


def vmaps_report(target: Target) -> VmapsReport:
    """The busy vmap areas, and for each VM_MAP one its pages: PTE, PFN, highmem or not.
    vmap() keeps vm_struct->pages only with VM_MAP_PUT_PAGES (mm/vmalloc.c 6.12:3530), so
    PFNs come from the PTEs, and are compared with the pages array when there is one."""
    k = Kernel(target)
    va_t, vm_t = "struct vmap_area", "struct vm_struct"
    va_size, va_list = k.value(size_expr(va_t)), k.off(va_t, "list")
    va_vm, va_flags = k.off(va_t, "vm"), k.off(va_t, "flags")
    vm_size = k.value(size_expr(vm_t))
    vo = {m: k.off(vm_t, m) for m in ("addr", "size", "flags", "pages", "nr_pages", "caller")}
    kinds: dict[str, int] = {}
    areas, busy = [], 0
    for head in _busy_heads(k):
        for _, raw in _iter_structs(k, head, va_list, va_size):
            busy += 1
            vm = int.from_bytes(raw[va_vm:va_vm + 4], "little")
            flags = int.from_bytes(raw[va_flags:va_flags + 4], "little")
            vmraw = k.virt(vm, vm_size) if vm else b""
            f = {m: int.from_bytes(vmraw[o:o + 4], "little") for m, o in vo.items()} if vm else {}
            kind = _kind(f.get("flags"), flags)
            kinds[kind] = kinds.get(kind, 0) + 1
            if vm and f["flags"] & VM_MAP:
                areas.append(_vmap_area(k, f))
    return VmapsReport(busy, kinds, sorted(areas, key=lambda a: a.start))


def _vmap_area(k: Kernel, f: dict[str, int]) -> VmapArea:
    guard = 0 if f["flags"] & VM_NO_GUARD else PAGE_SIZE
    n = max(0, (f["size"] - guard) // PAGE_SIZE)
    pages, notes = [], []
    array: list[int] = []
    if f["pages"]:
        count = min(f["nr_pages"], n)
        array = list(struct.unpack(f"<{count}I", k.virt(f["pages"], count * PTR)))
    for i in range(n):
        va = f["addr"] + i * PAGE_SIZE
        pte = k.walk(va).pte or 0
        flags, pfn = _decode(k, pte)
        if pfn is not None and not pte & 1:
            pfn = None
        pages.append(VmapPage(i, va, pte, flags, pfn, pfn is not None and k.is_highmem(pfn),
                              pfn is not None and pfn >= PFN_4G))
        if i < len(array) and k.pfn_of_page(array[i]) != pfn:
            notes.append(f"page {i}: pages[] says PFN {_hex(k.pfn_of_page(array[i]))}, "
                         f"the PTE {_hex(pfn)}")
    caller = k.t.symbol(f["caller"]) or f"{f['caller']:#x}"
    return VmapArea(f["addr"], f["addr"] + f["size"], f["size"], _vm_flags(f["flags"]),
                    caller, bool(f["pages"]), pages, notes)


def layout_report(target: Target) -> LayoutReport:
    """The layout computed from the live kernel, checked against the kernel's own pointers
    to the PKMAP and kmap_local PTEs (pkmap_page_table, __kmap_pte)."""
    k = Kernel(target)
    lay = k.layout
    checks = []
    for name, va in (("pkmap_page_table", lay.pkmap_base),
                     ("__kmap_pte", lay.fix_to_virt(lay.fix_kmap_begin))):
        ptr = k.maybe(value_expr(name))
        w = k.walk(va)
        if not ptr or w.levels[-1].name != "PTE":
            checks.append(f"{name}: not set yet" if not ptr else f"{name}: no PTE table")
            continue
        got = ptr - lay.page_offset
        ok = got == w.levels[-1].entry_phys
        checks.append(f"{name} = {ptr:#x} -> phys {got:#x}: "
                      + ("the PTE of " if ok else "NOT the PTE of ") + f"{va:#x} (walked: "
                      f"{w.levels[-1].entry_phys:#x})")
    permanent = k.value(value_expr("__end_of_permanent_fixed_addresses"))
    return LayoutReport(
        pae=k.pae, layout=lay.to_json(), fixaddr_start=lay.fix_to_virt(permanent),
        kmap_local_first=lay.fix_to_virt(lay.fix_kmap_begin),
        kmap_local_last=lay.fix_to_virt(lay.fix_kmap_end),
        mem_map=k.value(value_expr("mem_map")), struct_page_size=k.value(size_expr("struct page")),
        max_pfn=k.value(value_expr("max_pfn")), highstart_pfn=k.lowmem_pfns(), checks=checks)
