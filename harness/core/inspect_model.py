"""The inspection reports as data (dataclasses), each printable as text (`format()`) and as
JSON (`to_json()`): a VA's walk, the live kmaps, the vmap areas, the layout. Pure: the
reports are filled in by harness/kernel/reports.py from a stopped kernel."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .hexjson import hex_keys
from .layout import PAGE_SIZE, PFN_4G


# the fields that hold a PTE value (pteval_t: 64-bit with PAE) or a physical address:
# "0x..." strings in the JSON (core/hexjson.py); virtual addresses and PFNs stay numbers
HEX_FIELDS = ("value", "pte", "pteval", "live_pte", "phys", "table_phys", "entry_phys")


class Report:
    def to_json(self) -> dict[str, Any]:
        return hex_keys(asdict(self), HEX_FIELDS)  # type: ignore[call-overload,no-any-return]

    def format(self) -> str:
        raise NotImplementedError


def hex_or_dash(v: int | None, width: int = 0) -> str:
    """`v` in hex (zero-padded to `width` digits if given), or "-" for None."""
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
                         f"struct page {hex_or_dash(self.page)}"
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
                         f"{hex_or_dash(s.pfn):>9}  {hex_or_dash(s.page):11}  {s.state}")
        lines.append(f"kmap_local/kmap_atomic slots with a PTE: {len(self.kmap_local)}")
        for k in self.kmap_local:
            lines.append(f"  CPU {k.cpu} slot {k.slot:2}  {k.va:#010x}  {k.pte:0{w}x}  "
                         f"{k.flags:16}  PFN {hex_or_dash(k.pfn):>9}  "
                         f"page {hex_or_dash(k.page)}  {k.holder}")
        lines.append("current task of each CPU: " + ", ".join(
            f"CPU {c}: {d}" for c, d in sorted(self.current.items())))
        lines.append(f"tasks holding kmap_local maps (kmap_ctrl.idx > 0): {len(self.tasks)}")
        for t in self.tasks:
            run = "running" if t.running else "not running: PTEs cleared at sched-out"
            lines.append(f"  pid {t.pid} {t.comm} on CPU {t.cpu} ({run}), "
                         f"kmap_ctrl.idx {t.idx}")
            for e in t.entries:
                lines.append(f"    [{e.index:2}] {e.va:#010x}  pteval {e.pteval:0{w}x}  "
                             f"{e.flags:16}  PFN {hex_or_dash(e.pfn):>9}  {e.state}")
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
                             f"PFN {hex_or_dash(p.pfn):>9}  {where}")
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

