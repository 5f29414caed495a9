"""`vmaps_report`: the busy vmap areas of a stopped kernel, and for each VM_MAP one (vmap())
its pages: PTE, PFN, highmem or not. Linux 6.1-6.14, i386; no gdb or pygdbmi import.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ..core.inspect_model import VmapArea, VmapPage, VmapsReport, hex_or_dash
from ..core.layout import PAGE_SIZE, PFN_4G
from .target import (
    MAX_LIST,
    PTR,
    InspectError,
    Kernel,
    Target,
    addr_expr,
    offset_expr,
    size_expr,
    value_expr,
)

# struct vm_struct flags, include/linux/vmalloc.h. The values are 6.12's; those we test on
# (IOREMAP, ALLOC, MAP, NO_GUARD) are the same in 6.1-6.14. VM_SPARSE came in 6.9 (commit
# e6f798225a31, "mm: Introduce VM_SPARSE kind and vm_area_[un]map_pages()").
VM_FLAGS = ((0x1, "IOREMAP"), (0x2, "ALLOC"), (0x4, "MAP"), (0x8, "USERMAP"),
            (0x10, "DMA_COHERENT"), (0x20, "UNINITIALIZED"), (0x40, "NO_GUARD"),
            (0x200, "MAP_PUT_PAGES"), (0x1000, "SPARSE"))
VM_IOREMAP, VM_ALLOC, VM_MAP, VM_NO_GUARD = 0x1, 0x2, 0x4, 0x40


def busy_heads(k: Kernel) -> list[int]:
    """The list heads (struct list_head *) of the busy vmap areas."""
    # 6.9 split the busy areas per vmap node, vmap_nodes[i].busy.head (commit d093602919ad,
    # "mm: vmalloc: remove global vmap_area_root rb-tree") and dropped the global
    # vmap_area_list (commit 55c49fee57af, "mm/vmalloc: remove vmap_area_list"). On 32-bit
    # the node array is never allocated: vmap_nodes stays &single, and gdb may see only the
    # static `single` of mm/vmalloc.c (the pointer folded away).
    nodes = k.maybe(value_expr("vmap_nodes"))
    if nodes is None:
        nodes = k.maybe(addr_expr("'vmalloc.c'::single"))
    if nodes is None:                                      # 6.1-6.8
        return [k.value(addr_expr("vmap_area_list"))]
    n = k.maybe(value_expr("nr_vmap_nodes")) or 1
    size, head = k.value(size_expr("struct vmap_node")), k.off("struct vmap_node", "busy.head")
    return [nodes + i * size + head for i in range(n)]


def iter_structs(k: Kernel, head: int, member: int, size: int) -> Iterator[tuple[int, bytes]]:
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


def vm_flags_text(flags: int) -> str:
    """vm_struct.flags (unsigned long) as `VM_MAP|VM_NO_GUARD`, or "0"."""
    return "|".join(f"VM_{n}" for bit, n in VM_FLAGS if flags & bit) or "0"


def area_kind(vm_flags: int | None, va_flags: int) -> str:
    """What made a vmap area: vmap, vmalloc, ioremap, vm_map_ram (no vm_struct), other."""
    if vm_flags is None:
        return "vm_map_ram" if va_flags else "no vm_struct"
    for bit, name in ((VM_MAP, "vmap"), (VM_ALLOC, "vmalloc"), (VM_IOREMAP, "ioremap")):
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
    va_vm = k.off(va_t, "vm")
    # vmap_area.flags (marks vm_map_ram areas) came in v6.3 ("mm/vmalloc.c: add flags to
    # mark vm_map_ram area", Baoquan He); 6.1 has none: an area without a vm_struct there is
    # "no vm_struct", vm_map_ram or not.
    va_flags = k.maybe(offset_expr(va_t, "flags"))
    vm_size = k.value(size_expr(vm_t))
    vo = {m: k.off(vm_t, m) for m in ("addr", "size", "flags", "pages", "nr_pages", "caller")}
    kinds: dict[str, int] = {}
    areas, busy = [], 0
    for head in busy_heads(k):
        for _, raw in iter_structs(k, head, va_list, va_size):
            busy += 1
            vm = int.from_bytes(raw[va_vm:va_vm + 4], "little")
            flags = 0 if va_flags is None else \
                int.from_bytes(raw[va_flags:va_flags + 4], "little")
            vmraw = k.virt(vm, vm_size) if vm else b""
            f = {m: int.from_bytes(vmraw[o:o + 4], "little") for m, o in vo.items()} if vm else {}
            kind = area_kind(f.get("flags"), flags)
            kinds[kind] = kinds.get(kind, 0) + 1
            if vm and f["flags"] & VM_MAP:
                areas.append(vmap_area(k, f))
    return VmapsReport(busy, kinds, sorted(areas, key=lambda a: a.start))


def vmap_area(k: Kernel, f: dict[str, int]) -> VmapArea:
    """One VM_MAP area from its vm_struct fields `f`: each page's PTE and PFN."""
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
        flags, pfn = k.decode(pte)
        if pfn is not None and not pte & 1:
            pfn = None
        pages.append(VmapPage(i, va, pte, flags, pfn, pfn is not None and k.is_highmem(pfn),
                              pfn is not None and pfn >= PFN_4G))
        if i < len(array) and k.pfn_of_page(array[i]) != pfn:
            notes.append(f"page {i}: pages[] says PFN {hex_or_dash(k.pfn_of_page(array[i]))}, "
                         f"the PTE {hex_or_dash(pfn)}")
    caller = k.t.symbol(f["caller"]) or f"{f['caller']:#x}"
    return VmapArea(f["addr"], f["addr"] + f["size"], f["size"], vm_flags_text(f["flags"]),
                    caller, bool(f["pages"]), pages, notes)
