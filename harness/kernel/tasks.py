"""The tasks of a stopped kernel, read raw through a target: each CPU's current task, every
thread, and each task's kmap_ctrl stack (the kmap_local maps it holds). Linux 6.1-6.14,
i386; no gdb or pygdbmi import (gdb's own Python loads this file too).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .target import MAX_LIST, PTR, InspectError, Kernel, addr_expr, value_expr


@dataclass
class Task:
    """The fields of one `struct task_struct` a report needs (addresses are unsigned long).
    `ptevals`: kmap_ctrl.pteval[0 .. idx), the kmap_local maps it holds."""

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


def task_offsets(k: Kernel) -> dict[str, int]:
    """Offsets in struct task_struct (and kmap_ctrl.pteval in struct kmap_ctrl), from DWARF."""
    ts = "struct task_struct"
    return {"pid": k.off(ts, "pid"), "comm": k.off(ts, "comm"),
            "cpu": k.off(ts, "thread_info.cpu"), "tasks": k.off(ts, "tasks"),
            "thread_node": k.off(ts, "thread_node"), "signal": k.off(ts, "signal"),
            "kmap_ctrl": k.off(ts, "kmap_ctrl"),
            "pteval": k.off("struct kmap_ctrl", "pteval")}


def read_task(k: Kernel, addr: int) -> Task:
    """The task_struct at `addr` (struct task_struct *), in one read of its first bytes."""
    o = task_offsets(k)
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
    return Task(addr, u32(o["pid"]), comm, u32(o["cpu"]), idx, ptevals,
                u32(o["tasks"]), u32(o["thread_node"]), u32(o["thread_node"] + 4),
                u32(o["signal"]))


def current_tasks(k: Kernel) -> dict[int, int]:
    """{cpu: task_struct address} for each online CPU: per_cpu(pcpu_hot.current_task)."""
    nr = k.layout.nr_cpus
    online = k.value(value_expr("__cpu_online_mask.bits[0]"))
    offsets = struct.unpack(f"<{nr}I", k.virt(k.value(addr_expr("__per_cpu_offset")), nr * PTR))
    # 6.2 moved x86's per-CPU current_task into struct pcpu_hot (commit e57ef2ed97c1, "x86:
    # Put hot per CPU variables into a struct"); 6.1 has the plain per-CPU variable.
    var = k.maybe(addr_expr("pcpu_hot"))
    if var is not None:
        var += k.off("struct pcpu_hot", "current_task")
    else:
        var = k.value(addr_expr("current_task"))            # Linux 6.1
    return {c: k.u32((var + offsets[c]) & 0xFFFFFFFF) for c in range(nr) if online >> c & 1}


def all_tasks(k: Kernel) -> Iterator[Task]:
    """Every thread: processes on init_task.tasks, their threads on signal->thread_head.
    Idle tasks but CPU 0's are on neither."""
    # signal->thread_head/task->thread_node came in 3.14 (commit 0c740d0afc3b, "introduce
    # for_each_thread() to replace the buggy while_each_thread()"); since 6.7 they are the
    # only thread list (commit 8e1f385104ac, "kill task_struct->thread_group"). One walk
    # holds for 6.1-6.14.
    o = task_offsets(k)
    head = k.value(addr_expr("init_task")) + o["tasks"]
    thread_head = k.off("struct signal_struct", "thread_head")
    leader = read_task(k, head - o["tasks"])
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
                    read_task(k, node - o["thread_node"])
                yield t
                node = t.thread_next
        if leader.tasks_next == head:
            return
        leader = read_task(k, leader.tasks_next - o["tasks"])
    raise InspectError("init_task.tasks does not end", "the kernel's task list is corrupt")


def tasks(k: Kernel) -> tuple[dict[int, int], list[Task]]:
    """({task address: cpu} of the running tasks, every task once: the running ones first
    (idle tasks of CPUs > 0 are on no list), then the task list)."""
    running = {addr: cpu for cpu, addr in current_tasks(k).items()}
    out, seen = [], set()
    for t in [read_task(k, a) for a in running] + list(all_tasks(k)):
        if t.addr not in seen:
            seen.add(t.addr)
            out.append(t)
    return running, out
