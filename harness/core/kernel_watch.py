"""Judging the kernel's *own* highmem mappings, pure: what `highmem watch-kernel` decides at a
breakpoint on the kernel's unmap paths (stages/kernel_watch.py does the stops and the reads).

Each judge takes the values read at one stop (PTEs, the task's kmap_ctrl, pkmap_count) and
returns mismatch lines in the checkpoint form, `FIELD: what`, FIELD one of P, PFN, RW, NX,
G (compare_pte's), or VA, IDX, PTEVAL, COUNT, PAGE, PTE (this file's). Linux 6.1-6.14,
i386, CONFIG_HIGHMEM, FLATMEM, PAE or 2-level; the code each judge mirrors is cited from
6.12 (mm/highmem.c, mm/vmalloc.c).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from . import pte as ptemod
from .errors import HarnessError
from .checkpoint import MAPPED_FIELDS, KernelMasks
from .layout import PAGE_SIZE, Layout

KINDS = ("kmap_local", "kmap", "vmap", "vm_map_ram")
GOLDEN_RATIO_32 = 0x61C88647   # include/linux/hash.h
PA_HASH_ORDER = 7              # mm/highmem.c 6.12:722
PROT_MASK_PAE = ~ptemod.PAE_PFN_MASK & ((1 << 64) - 1)


@dataclass(frozen=True)
class WatchKernel:
    """What judging needs of the running kernel, read once through gdb's DWARF.

    max_pfn: `max_pfn` (unsigned long); mem_map: `mem_map` (struct page *, FLATMEM);
    page_struct: sizeof(struct page)."""

    layout: Layout
    masks: KernelMasks
    max_pfn: int
    mem_map: int
    page_struct: int

    def pfn_of_page(self, page: int) -> int | None:
        """page_to_pfn(page) for FLATMEM: (page - mem_map) / sizeof(struct page); None if
        `page` (struct page *) is not an element of mem_map[0 .. max_pfn)."""
        off = page - self.mem_map
        if off < 0 or off % self.page_struct or off // self.page_struct >= self.max_pfn:
            return None
        return off // self.page_struct

    def kernel_pte(self, pfn: int, prot: int = ptemod.PAGE_KERNEL_FLAGS) -> int:
        """pfn_pte(pfn, prot) as this kernel writes it (its PTI and NX masks applied)."""
        return ptemod.expected_kernel_pte(pfn, prot, self.masks.default_kernel_pte_mask,
                                          self.masks.supported_pte_mask, pae=self.masks.pae)

    def pfn(self, pte: int) -> int:
        return ptemod.decode_entry(pte, pae=self.masks.pae).pfn

    def slot_va(self, cpu: int, slot: int) -> int:
        """__fix_to_virt(FIX_KMAP_BEGIN + slot + KM_MAX_IDX * cpu): kmap_local_calc_idx()."""
        lay = self.layout
        return lay.fix_to_virt(lay.fix_kmap_begin + slot + lay.km_max_idx * cpu)


def check_watch_options(budget: float, pages: int, execs: int, expect: int,
                        insmod: str | None, module_names: set[str]) -> None:
    """`highmem watch-kernel`'s option values (HarnessError: exit 2 before any boot).
    `module_names`: the modules the image will hold (modules/ and --module-dir)."""
    def bad(what: str, fix: str) -> None:
        raise HarnessError(what, fix)
    if not budget > 0:
        bad(f"--budget {budget:g}: the stops per second must be more than 0",
            "give e.g. --budget 200")
    if pages < 1 or execs < 0 or expect < 0:
        bad(f"--pages {pages} --execs {execs} --expect-mappings {expect}: pages must be at "
            "least 1, the others at least 0", "give e.g. --pages 256 --execs 20")
    if insmod is not None and insmod not in module_names:
        bad(f"--insmod {insmod}: no such module in modules/ or a --module-dir",
            f"give one of: {', '.join(sorted(module_names)) or '(none)'}")


COMPLAINTS = ("WARNING:", "BUG:", "Oops", "general protection fault", "Kernel panic")


def kernel_complaints(dmesg: str) -> list[str]:
    """The kernel log lines of `dmesg` that say the kernel complained (a WARN, BUG or
    oops line: kunmap_local_indexed() WARNs on an unmap out of order, kmap_high BUG()s)."""
    return [line.strip() for line in dmesg.splitlines()
            if any(c in line for c in COMPLAINTS)]


def kernel_to_json(k: WatchKernel) -> dict[str, Any]:
    return {"layout": k.layout.to_json(), "masks": asdict(k.masks), "max_pfn": k.max_pfn,
            "mem_map": k.mem_map, "page_struct": k.page_struct}


def kernel_from_json(d: dict[str, Any]) -> WatchKernel:
    """The WatchKernel of kernel_to_json()'s dict (recorded data for the tests)."""
    return WatchKernel(Layout.from_json(d["layout"]), KernelMasks(**d["masks"]),
                       d["max_pfn"], d["mem_map"], d["page_struct"])


def field_of(mismatch: str) -> str:
    """The FIELD of a `FIELD: what` mismatch line."""
    return mismatch.split(":", 1)[0]


def _ram(k: WatchKernel, pfn: int) -> list[str]:
    if pfn >= k.max_pfn:
        return [f"PFN: {pfn:#x} is at or past max_pfn {k.max_pfn:#x}: not a RAM page"]
    return []


def _against(k: WatchKernel, pte: int, pfn: int, prot: int | None) -> list[str]:
    """The PTE against pfn_pte(pfn, prot); prot None (the map was not seen): PAGE_KERNEL
    (kmap_prot on x86) or PAGE_KERNEL_RO, whichever the PTE's RW bit says, so only P, PFN,
    NX and G are judged then."""
    if prot is None:
        prot = ptemod.PAGE_KERNEL_FLAGS if pte & 0x2 else ptemod.PAGE_KERNEL_RO_FLAGS
    return ptemod.compare_pte(pte, k.kernel_pte(pfn, prot), MAPPED_FIELDS, pae=k.masks.pae)


def judge_kmap_local(k: WatchKernel, cpu: int, vaddr: int, idx: int, saved: int | None,
                     pte: int | None, mapped: tuple[int, int] | None = None) -> list[str]:
    """At the entry of kunmap_local_indexed(vaddr) (mm/highmem.c 6.12:597) on `cpu`, the
    current task's kmap_ctrl.idx `idx` (int) and pteval[idx - 1] `saved` (pte_t; None when
    idx < 1), and `pte`, the live PTE of vaddr's page (None: no PTE level). `mapped`: the
    (pfn, pgprot) __kmap_local_pfn_prot() was called with for this slot, when seen.

    The map being undone is the top of the task's stack: vaddr is the slot of (cpu, idx-1)
    (the kernel WARNs otherwise, 6.12:623; then nothing else is judged); its PTE is
    present, equals the saved pteval (what __kmap_local_sched_in() restores), maps the pfn
    asked for with that protection (P, PFN, RW, NX, G), and the pfn is RAM."""
    if idx < 1 or saved is None:
        return [f"IDX: kmap_ctrl.idx is {idx} at kunmap_local_indexed({vaddr:#x}): no "
                "kmap_local map to undo"]
    out: list[str] = []
    want = k.slot_va(cpu, idx - 1)
    if vaddr & ~(PAGE_SIZE - 1) != want:   # the rest would compare another slot's values
        return [f"VA: unmapping {vaddr:#x} ({k.layout.area_of(vaddr)}), but the top of "
                f"kmap_ctrl (idx {idx}) on CPU {cpu} is the slot at {want:#x} (kmap_local "
                "maps are undone last in, first out)"]
    if pte is None:
        return out + ["PTE: no page table maps the slot"]
    if not pte & 1:
        return out + [f"P: the slot's PTE {pte:#x} is not present while mapped"]
    if pte != saved:
        out.append(f"PTEVAL: the slot's PTE {pte:#x} is not kmap_ctrl.pteval[{idx - 1}] "
                   f"{saved:#x} (what a sched-in restores)")
    pfn, prot = (mapped[0], mapped[1]) if mapped is not None else (k.pfn(saved), None)
    if prot is not None:
        prot &= PROT_MASK_PAE
    return out + _against(k, pte, pfn, prot) + _ram(k, k.pfn(pte))


def hash_ptr(ptr: int, bits: int = PA_HASH_ORDER) -> int:
    """hash_ptr() on a 32-bit kernel: hash_32(ptr, bits), include/linux/hash.h."""
    return ((ptr * GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - bits)


def judge_kmap_high(k: WatchKernel, page: int, va: int | None, pte: int | None,
                    count: int | None) -> list[str]:
    """At the entry of kunmap_high(page) (mm/highmem.c 6.12:360): `va` is page_address(page)
    (void *; None when its hash bucket has no entry for the page), `pte` the PTE at va,
    `count` pkmap_count[PKMAP_NR(va)] (int). The page is a struct page of mem_map; va is a
    PKMAP slot; its PTE maps exactly the page's pfn with PAGE_KERNEL (kmap_prot); the
    count is >= 2 (mapped, and this caller's use: kunmap_high BUG()s on 0)."""
    pfn = k.pfn_of_page(page)
    if pfn is None:
        return [f"PAGE: {page:#x} is not a struct page of mem_map[0 .. max_pfn)"]
    if va is None:
        return [f"VA: page_address() finds no mapping of page {page:#x} (pfn {pfn:#x})"]
    out: list[str] = []
    if not k.layout.in_pkmap(va):
        out.append(f"VA: page_address() of page {page:#x} is {va:#x} "
                   f"({k.layout.area_of(va)}), not a PKMAP slot")
    if pte is None:
        return out + ["PTE: no page table maps the slot"]
    if not pte & 1:
        return out + [f"P: the slot's PTE {pte:#x} is not present while kmap()ed"]
    out += _against(k, pte, pfn, ptemod.PAGE_KERNEL_FLAGS) + _ram(k, pfn)
    if count is not None and count < 2:
        out.append(f"COUNT: pkmap_count[{(va - k.layout.pkmap_base) // PAGE_SIZE}] is "
                   f"{count} at kunmap_high: a mapped slot with a user has >= 2")
    return out


def judge_area(k: WatchKernel, va: int, pfns: list[int], ptes: list[int | None],
               prot: int = ptemod.PAGE_KERNEL_FLAGS) -> list[str]:
    """At the entry of vunmap(va) / vm_unmap_ram(va, count) (mm/vmalloc.c): page i of the
    area is mapped at va + i * PAGE_SIZE by `ptes[i]`, which maps `pfns[i]` (the pages
    vmap()/vm_map_ram() were given) with `prot` (PAGE_KERNEL for vm_map_ram): P, PFN,
    RW, NX, G; the area lies in vmalloc space."""
    out: list[str] = []
    if not k.layout.in_vmalloc(va):
        out.append(f"VA: {va:#x} ({k.layout.area_of(va)}) is not in vmalloc space")
    for i, (pfn, pte) in enumerate(zip(pfns, ptes)):
        at = va + i * PAGE_SIZE
        if pte is None or not pte & 1:
            out.append(f"P: page {i} at {at:#x}: PTE {pte if pte is None else hex(pte)} "
                       "not present while mapped")
            continue
        out += [f"{m.split(':', 1)[0]}: page {i} at {at:#x}:{m.split(':', 1)[1]}"
                for m in _against(k, pte, pfn, prot & PROT_MASK_PAE)]
        out += _ram(k, pfn)
    return out


def judge_cleared(va: int, pte: int | None) -> list[str]:
    """After an unmap returned (kunmap_local_indexed's pte_clear(), vunmap's
    vunmap_range_noflush()): the PTE at va is 0 (the TLB flush may be lazy, the PTE not)."""
    if pte not in (None, 0):
        return [f"PTE: expected 0 after unmap at {va:#x}, got {pte:#x}"]
    return []


def free_kmap_local_slots(k: WatchKernel, cpu: int, idx: int) -> list[int]:
    """The slots of `cpu` no task may hold while its current task's kmap_ctrl.idx is
    `idx`: idx .. KM_MAX_IDX-1. Their PTEs are 0 at any stop: a map pushes idx before
    its set_pte, an unmap clears the PTE before its pop, sched-out clears and sched-in
    restores only below idx, and an interrupt's maps push on the same idx."""
    return list(range(max(0, idx), k.layout.km_max_idx))


@dataclass(frozen=True)
class Finding:
    """One mismatch at one stop: the kind of mapping, when (`live` at the unmap's entry,
    `after unmap`, or `free slot`), the CPU, the address, the field, and the caller (the
    unmap's return address) decoded."""

    kind: str
    when: str
    cpu: int
    va: int
    field: str
    text: str
    caller: int = 0
    where: str = ""

    def line(self) -> str:
        at = f" from {self.where or hex(self.caller)}" if self.caller else ""
        return f"{self.kind} {self.when} CPU{self.cpu} {self.va:#010x}{at}: {self.text}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "when": self.when, "cpu": self.cpu, "va": self.va,
                "field": self.field, "text": self.text, "caller": self.caller,
                "where": self.where}


@dataclass
class Tally:
    """What a watch judged: mappings per kind (live, after unmap), stops, callers."""

    live: Counter[str] = field(default_factory=Counter)
    cleared: Counter[str] = field(default_factory=Counter)
    callers: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    stops: int = 0
    paused: int = 0           # times the stop budget switched the entry breakpoints off
    unseen: Counter[str] = field(default_factory=Counter)  # unmaps of maps made unwatched
    unreadable: int = 0       # stops whose memory could not be read (not judged)

    @property
    def judged(self) -> int:
        return sum(self.live.values())

    def add(self, kind: str, when: str, cpu: int, va: int, mismatches: list[str],
            caller: int = 0, where: str = "") -> None:
        if when == "live":
            self.live[kind] += 1
        elif when == "after unmap":
            self.cleared[kind] += 1
        if when == "live" and where:
            self.callers[f"{kind} {where.split('+')[0]}"] += 1
        self.findings += [Finding(kind, when, cpu, va, field_of(m), m, caller, where)
                          for m in mismatches]


def format_tally(t: Tally, seconds: float, budget: float) -> str:
    """The watch's report: per kind judged live and after unmap, stops per second against
    the budget, the busiest callers, every finding."""
    lines = [f"  {'kind':<12}{'live':>8}{'after unmap':>13}{'unseen map':>12}"]
    for kind in KINDS:
        lines.append(f"  {kind:<12}{t.live[kind]:>8}{t.cleared[kind]:>13}{t.unseen[kind]:>12}")
    rate = t.stops / seconds if seconds > 0 else 0.0
    lines.append(f"Stops: {t.stops} in {seconds:.1f} s ({rate:.0f}/s; budget "
                 f"{budget:g}/s, reached {t.paused} times; {t.unreadable} unreadable)")
    if t.callers:
        lines.append("Callers (unmap's return address):")
        lines += [f"  {n:>7}  {c}" for c, n in t.callers.most_common(12)]
    lines.append(f"Findings: {len(t.findings)}")
    lines += [f"  {f.line()}" for f in t.findings[:200]]
    return "\n".join(lines)


class SymbolTable:
    """Address -> `function+0xoff` from System.map's text symbols (T/t/W/w); past
    vmlinux's `_etext` (a module's text): `module`."""

    def __init__(self, system_map: str) -> None:
        pairs = []
        for line in system_map.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TtWw":
                try:
                    pairs.append((int(parts[0], 16), parts[2]))
                except ValueError:
                    continue
        pairs.sort()
        self.addrs = [a for a, _ in pairs]
        self.names = [n for _, n in pairs]
        self.etext = next((a for a, n in pairs if n == "_etext"), None)

    def name(self, addr: int) -> str:
        if self.etext is not None and addr >= self.etext:
            return f"{addr:#x} (module)"
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            return ""
        return f"{self.names[i]}+{addr - self.addrs[i]:#x}"
