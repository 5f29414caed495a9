"""The page directories of every process of a stopped kernel (for core/pgd_sync.py): the
thread-group leaders on init_task.tasks, each `mm->pgd` as a physical address (a pgd is
lowmem: its address minus PAGE_OFFSET). Kernel threads have no mm and are skipped. i386,
Linux 6.1-6.14; no gdb import (gdb's own Python loads this file too).
"""

from __future__ import annotations

from ..core.pgd_sync import Pgd
from .target import MAX_LIST, InspectError, Kernel, addr_expr


def pgd_facts(k: Kernel) -> dict[str, int]:
    """What the walk needs from DWARF and the symbol table (constant for a kernel build)."""
    ts = "struct task_struct"
    return {"tasks": k.off(ts, "tasks"), "mm": k.off(ts, "mm"), "pid": k.off(ts, "pid"),
            "comm": k.off(ts, "comm"), "pgd": k.off("struct mm_struct", "pgd"),
            "init_task": k.value(addr_expr("init_task")),
            "swapper_pg_dir": k.value(addr_expr("swapper_pg_dir"))}


def process_pgds(k: Kernel, f: dict[str, int], page_offset: int) -> list[Pgd]:
    """Every process's page directory, once each (threads share their leader's mm)."""
    head = f["init_task"] + f["tasks"]
    out: list[Pgd] = []
    seen: set[int] = set()
    node = k.u32(head)
    for _ in range(MAX_LIST):
        if node == head:
            return out
        task = node - f["tasks"]
        mm = k.u32(task + f["mm"])
        if mm:
            phys = k.u32(mm + f["pgd"]) - page_offset
            if phys not in seen:
                seen.add(phys)
                comm = k.virt(task + f["comm"], 16).split(b"\0")[0].decode(errors="replace")
                out.append(Pgd(k.u32(task + f["pid"]), comm, phys))
        node = k.u32(node)
    raise InspectError("init_task.tasks does not end", "the kernel's task list is corrupt")
