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

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .inspect_model import (
    KmapCtrlEntry,
    KmapLocalSlot,
    KmapsReport,
    LayoutReport,
    LevelInfo,
    PkmapSlot,
    PteReport,
    TaskKmaps,
    VmapArea,
    VmapPage,
    VmapsReport,
    _hex,
)
from .kernel_target import (
    MAX_LIST,
    VM_NO_GUARD,
    PFN_4G,
    PTR,
    VM_FLAGS,
    VM_MAP,
    InspectError,
    Kernel,
    Target,
    addr_expr,
    size_expr,
    value_expr,
)
from .layout import PAGE_SIZE
from .pte import decode_entry, format_flags

# re-exported: callers use inspect.* for the reports and the target reading
from .inspect_model import Report  # noqa: E402,F401
from .kernel_target import (  # noqa: E402,F401
    CR4_PAE, SYMBOL_LINE, XP_LINE, SymbolMissing,
    count_expr, offset_expr, parse_symbol, parse_xp, read_layout)
from .layout import LayoutInputs  # noqa: E402,F401


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

