"""`kmaps_report`: every live kmap of a stopped kernel — the PKMAP slots in use (kmap()),
the kmap_local/kmap_atomic fixmap slots with a PTE, and each task's kmap_ctrl stack. Linux
6.1-6.14, i386, CONFIG_HIGHMEM (PAE or 2-level); no gdb or pygdbmi import.
"""

from __future__ import annotations

import struct

from ..core.inspect_model import KmapCtrlEntry, KmapLocalSlot, KmapsReport, PkmapSlot, TaskKmaps
from .target import Kernel, Target, addr_expr
from .tasks import Task, tasks


def pkmap_state(count: int, present: bool) -> str:
    """What pkmap_count[nr] (int) says of a PKMAP slot whose PTE is `present` or not
    (mm/highmem.c: 0 free, 1 unmapped but not yet flushed, n > 1 mapped by n - 1 users)."""
    if count == 0:
        return "free" if not present else "inconsistent: count 0 but the PTE is set"
    if not present:
        return f"inconsistent: count {count} but no present PTE"
    if count == 1:
        return "stale: kunmap()ed, PTE kept until flush_all_zero_pkmaps()"
    return f"mapped, {count - 1} user{'s' if count > 2 else ''}"


def pkmap_slots(k: Kernel) -> list[PkmapSlot]:
    """The PKMAP slots with a count or a PTE (pkmap_count[] read in one go)."""
    lay = k.layout
    n = lay.last_pkmap
    counts = struct.unpack(f"<{n}i", k.virt(k.value(addr_expr("pkmap_count")), 4 * n))
    out = []
    for nr, count in enumerate(counts):
        va = lay.pkmap_va(nr)
        pte = k.walk(va).pte or 0
        if count == 0 and pte == 0:
            continue
        flags, pfn = k.decode(pte)
        present = bool(pte & 1)
        out.append(PkmapSlot(nr, va, count, pte, flags, pfn,
                             k.page_of(pfn) if pfn is not None else None,
                             stale=count == 1 and present, state=pkmap_state(count, present)))
    return out


def kmap_ctrl_entries(k: Kernel, t: Task, running: bool) -> list[KmapCtrlEntry]:
    """A task's kmap_ctrl.pteval[] against the live PTEs of its CPU's slots: a task that is
    not running has its PTEs cleared (__kmap_local_sched_out) until it is scheduled in."""
    lay = k.layout
    out = []
    for i, pteval in enumerate(t.ptevals):
        va = lay.fix_to_virt(lay.fix_kmap_begin + i + lay.km_max_idx * t.cpu)
        live = k.walk(va).pte or 0
        flags, pfn = k.decode(pteval)
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
    running, all_tasks = tasks(k)
    holders: list[TaskKmaps] = []
    current: dict[int, str] = {}
    for t in all_tasks:
        if t.addr in running:
            current[running[t.addr]] = f"pid {t.pid} {t.comm} (kmap_ctrl.idx {t.idx})"
        if t.idx > 0:
            on = t.addr in running
            holders.append(TaskKmaps(t.addr, t.pid, t.comm, t.cpu, on, t.idx,
                                     kmap_ctrl_entries(k, t, on)))
    local = []
    for idx in range(lay.fix_kmap_begin, lay.fix_kmap_end + 1):
        va = lay.fix_to_virt(idx)
        pte = k.walk(va).pte or 0
        if not pte:
            continue
        cpu, slot = divmod(idx - lay.fix_kmap_begin, lay.km_max_idx)
        holder = next((f"pid {t.pid} {t.comm} kmap_ctrl[{slot}]" for t in holders
                       if t.running and t.cpu == cpu and slot < len(t.entries)
                       and t.entries[slot].pteval == pte), "no running task's kmap_ctrl has it")
        flags, pfn = k.decode(pte)
        local.append(KmapLocalSlot(cpu, slot, va, pte, flags, pfn,
                                   k.page_of(pfn) if pfn is not None else None, holder))
    return KmapsReport(k.pae, lay.pkmap_base, lay.last_pkmap, pkmap_slots(k), local,
                       current, holders)
