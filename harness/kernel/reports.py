"""Live-mapping inspection: walk, list and explain the temporary mappings of a stopped
guest — one VA's full walk (`pte_report`), every live kmap (`kmaps_report`: PKMAP slots,
kmap_local/kmap_atomic slots, the tasks' kmap_ctrl stacks, in kmaps.py), the vmap areas
(`vmaps_report`, in vmaps.py) and the address-space layout (`layout_report`). The four are
importable from here; their data types are harness/core/inspect_model.py's.

Everything works over a *target* (the `Target` protocol of target.py): `int_value(expr)`
evaluates a C expression with vmlinux's DWARF, `read_phys` reads guest physical memory
(QEMU's `xp`: no wrap at 4 GiB), `read_virt` kernel virtual memory as the stopped CPU sees
it, `symbol(addr)` names code, and `cr3`/`cr4`/`cpu` describe the selected CPU. Two
implementations: `MiTarget` (stages/mi_target.py, over the harness's MI gdb: CLI and
pytest) and `GdbTarget` (frontends/gdb_commands.py, inside an interactive gdb). Page tables
are walked by core/pagewalk.py over physical memory, PAE or 2-level as CR4.PAE says; kernel
structures are read as raw bytes at the offsets gdb gives, so a report costs tens of round
trips, not thousands. No gdb or pygdbmi import: gdb's own Python loads this file too.

Kernels: Linux 6.1 and later (7.2 tested), i386, CONFIG_HIGHMEM (HIGHMEM64G/PAE up to 6.14,
HIGHMEM4G with or without PAE), FLATMEM
(`mem_map`). Where the kernel changed within that range, the code that reads it names the
commit and version (tasks.py: the current task; vmaps.py: the busy vmap lists).
"""

from __future__ import annotations

from typing import Any

from ..core.inspect_model import LayoutReport, LevelInfo, PteReport, Report
from ..core.layout import PAGE_SIZE
from ..core.pte import decode_entry, format_flags
from .kmaps import kmaps_report, pkmap_state
from .target import InspectError, Kernel, SymbolMissing, Target, size_expr, value_expr
from .tasks import tasks
from .vmaps import vmaps_report

__all__ = ["Report", "SymbolMissing", "Target", "kmaps_report", "layout_report", "pte_report",
           "vmaps_report"]


def _level_info(lv: Any, pae: bool) -> LevelInfo:
    kind = "pte" if lv.name == "PTE" else ("pde" if lv.name == "PDE" else "pmd")
    d = decode_entry(lv.value, pae=pae, level=kind)
    return LevelInfo(lv.name, lv.table_phys, lv.index, lv.entry_phys, lv.value,
                     format_flags(d), d.present, d.protnone)


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
        return [f"pkmap_count[{nr}] = {count}: {pkmap_state(count, True)}"]
    slot = lay.kmap_local_slot(va)
    if slot is None:
        return []
    cpu, i = slot
    running, all_tasks = tasks(k)
    notes = [f"held by pid {t.pid} {t.comm}: kmap_ctrl.pteval[{i}] = {t.ptevals[i]:#x}, "
             + ("running on CPU " + str(cpu) if t.addr in running
                else "not running, so its PTE is cleared until it is scheduled in")
             for t in all_tasks if t.cpu == cpu and len(t.ptevals) > i]
    return notes or [f"no task's kmap_ctrl holds slot {i} of CPU {cpu}"]


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
