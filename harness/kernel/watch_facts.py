"""What `highmem watch-kernel` reads of the kernel once, through a Target on the stopped
guest: the functions it breaks on, the per-CPU current task pointers, the task_struct and
page_address_htable offsets. Linux 6.1-6.14, i386, CONFIG_HIGHMEM; no gdb or
pygdbmi import.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..core import kernel_watch as kw
from ..core.checkpoint import KernelMasks
from ..core.layout import Layout
from .target import (InspectError, Kernel, SymbolMissing, Target, addr_expr, offset_expr,
                     size_expr, value_expr)
from .tasks import task_offsets

MAP_LOCAL, UNMAP_LOCAL = "__kmap_local_pfn_prot", "kunmap_local_indexed"
UNMAP_HIGH = "kunmap_high"
VMAP, VUNMAP, VM_MAP_RAM, VM_UNMAP_RAM = "vmap", "vunmap", "vm_map_ram", "vm_unmap_ram"
ENTRIES = (MAP_LOCAL, UNMAP_LOCAL, UNMAP_HIGH, VMAP, VUNMAP, VM_MAP_RAM, VM_UNMAP_RAM)


@dataclass
class Facts:
    """Addresses and offsets read once through gdb's DWARF."""

    kernel: kw.WatchKernel
    page_offset: int
    high_memory: int
    current: dict[int, int]      # cpu -> address of its pcpu_hot.current_task
    kmap_ctrl: int               # offsetof(struct task_struct, kmap_ctrl)
    pteval: int                  # offsetof(struct kmap_ctrl, pteval)
    pkmap_count: int             # &pkmap_count
    htable: int                  # &page_address_htable
    slot_size: int               # sizeof(page_address_htable[0])
    pam_list: int                # offsetof(struct page_address_map, list)
    entries: dict[str, int]      # function -> address


def read_facts(target: Target, lay: Layout, masks: KernelMasks) -> Facts:
    """What the watch needs, through a target on the stopped guest (`lay` and `masks`:
    the checker's, read at attach). InspectError when the kernel lacks a symbol."""
    try:
        return _read_facts(Kernel(target), lay, masks)
    except SymbolMissing as e:
        raise InspectError(f"this kernel has no {e}: it cannot be watched",
                           "watch an i386 CONFIG_HIGHMEM Linux 6.1-6.14 kernel built with "
                           "debug info (the harness's default build)") from None


def _read_facts(k: Kernel, lay: Layout, masks: KernelMasks) -> Facts:
    wk = kw.WatchKernel(lay, masks, k.value(value_expr("max_pfn")),
                        k.value(value_expr("mem_map")), k.value(size_expr("struct page")))
    nr = lay.nr_cpus
    online = k.value(value_expr("__cpu_online_mask.bits[0]"))
    offsets = struct.unpack(f"<{nr}I", k.virt(k.value(addr_expr("__per_cpu_offset")), 4 * nr))
    # 6.2 moved current_task into struct pcpu_hot (commit e57ef2ed97c1), as tasks.py reads
    var = k.maybe(addr_expr("pcpu_hot"))
    if var is not None:
        var += k.off("struct pcpu_hot", "current_task")
    else:
        var = k.value(addr_expr("current_task"))            # Linux 6.1
    o = task_offsets(k)
    entries = {fn: k.value(f"(unsigned long)&{fn}") for fn in ENTRIES}
    return Facts(wk, lay.page_offset, lay.high_memory,
                 {c: (var + offsets[c]) & 0xFFFFFFFF for c in range(nr) if online >> c & 1},
                 o["kmap_ctrl"], o["pteval"], k.value(addr_expr("pkmap_count")),
                 k.value(addr_expr("page_address_htable")),
                 k.value(size_expr("page_address_htable[0]")),
                 k.value(offset_expr("struct page_address_map", "list")), entries)
