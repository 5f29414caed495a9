"""The kernel's own highmem mappings, judged while live: gdb software breakpoints (QEMU's
gdbstub takes any number under TCG) on the kernel's map and unmap paths, and at each stop
the state read straight from the guest's RAM file (stages/guest_ram.py), judged by
core/kernel_watch.py.

Breakpoints (Linux 6.12, i386 -mregparm=3: the first arguments in EAX, EDX, ECX):
- `__kmap_local_pfn_prot(pfn, prot)` entry: the (pfn, pgprot_t in EDX:ECX) the next slot of
  the current task gets is remembered, keyed by (task, slot);
- `kunmap_local_indexed(vaddr)` entry, only for kmap_local addresses (gdb tests EAX
  itself: kunmap_local() of a lowmem page calls it too): the top of the task's kmap_ctrl;
- `kunmap_high(page)` entry: page_address(page) through the page_address_htable hash;
- `vmap(pages, count, flags, prot)` / `vm_map_ram(pages, count, node)` entries and a
  breakpoint on their return address: the area's pages; `vunmap(addr)` /
  `vm_unmap_ram(addr, count)` entries: every PTE of the area, and their return: all 0.
At every stop the stopped CPU's free kmap_local slots (at and above the current task's
kmap_ctrl.idx) must have no PTE: that is where an unmapped slot is judged cleared.

A budget of stops per second: past it the entry breakpoints are switched off for the
rest of that second (what was remembered of maps is dropped then: an unmap of a map made
while off is judged without it).
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import kernel_watch as kw
from ..core.errors import GdbError, HarnessError
from ..core.layout import PAGE_SIZE
from ..core.pagewalk import walk
from ..core.pte import PAGE_KERNEL_FLAGS
from ..kernel.target import CR4_PAE
from ..kernel.watch_facts import MAP_LOCAL, UNMAP_HIGH, UNMAP_LOCAL, VM_MAP_RAM, \
    VM_UNMAP_RAM, VMAP, VUNMAP, Facts
from .gdbmi import Gdb
from .guest_ram import GuestRam

MAX_AREA_PAGES = 1 << 16   # a vmap() of more pages than this is not read (256 MiB)
# each stop's frame without its arguments' DWARF (entry values) or a source line, and the
# breakpoints left in QEMU while stopped (no z0/Z0 packets per stop for each of them)
GDB_QUIET = ("print frame-arguments none", "print entry-values no",
             "print frame-info location", "breakpoint always-inserted on")
PANIC = "Kernel panic - not syncing"
RECORD = 32               # judges' inputs kept per kind (watch-stops.json)
REGS = ("eax", "ecx", "edx", "esp", "cr3", "cr4")


class WatchError(HarnessError):
    """The guest cannot be watched (no shared RAM file)."""


@dataclass
class _Call:
    """A map or unmap in flight: what its return breakpoint is for."""

    kind: str
    unmap: bool
    va: int
    pfns: list[int]
    prot: int
    caller: int
    where: str


@dataclass
class Watch:
    """One watch of one attached guest (see the module doc)."""

    gdb: Gdb
    ram: GuestRam
    facts: Facts
    name_of: Callable[[int], str]
    budget: float = 200.0
    map_entries: bool = True  # False: no stop at __kmap_local_pfn_prot (half the stops)
    tally: kw.Tally = field(default_factory=kw.Tally)
    entry_bkpts: dict[int, str] = field(default_factory=dict)     # address -> number
    ret_bkpts: dict[int, tuple[str, int]] = field(default_factory=dict)  # addr -> (nr, refs)
    calls: dict[tuple[int, int], _Call] = field(default_factory=dict)  # (pc, esp) at return
    maps: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    areas: dict[int, tuple[str, list[int], int]] = field(default_factory=dict)
    unmapped: dict[int, set[int]] = field(default_factory=dict)   # cpu -> slot VAs to judge
    reported: set[tuple[int, int]] = field(default_factory=set)   # (va, pte) found stale
    recent: deque[float] = field(default_factory=deque)
    recorded: list[dict[str, Any]] = field(default_factory=list)  # the first judges' inputs
    panic: str = ""           # the console's panic line, if the guest panicked
    paused_until: float = 0.0

    # -- memory ------------------------------------------------------------------------

    def low(self, va: int, size: int) -> bytes:
        """Kernel lowmem (task_struct, per-CPU data, .data): the direct map's phys."""
        f = self.facts
        if not f.page_offset <= va < f.high_memory:
            raise GdbError(f"{va:#x} is not lowmem", "report this as a harness bug")
        return self.ram.read(va - f.page_offset, size)

    def u32(self, va: int) -> int:
        return int.from_bytes(self.low(va, 4), "little")

    def pte(self, cr3: int, pae: bool, va: int) -> int | None:
        try:
            return walk(cr3, va, self.ram.read, pae=pae).pte
        except ValueError:   # a table outside RAM: as good as none
            return None

    def task_kmaps(self, task: int, pae: bool) -> tuple[int, list[int]]:
        """(kmap_ctrl.idx, pteval[0 .. idx)) of the task_struct at `task`."""
        f, size = self.facts, 8 if pae else 4
        base = task + f.kmap_ctrl
        idx = struct.unpack("<i", self.low(base, 4))[0]
        n = max(0, min(idx, f.kernel.layout.km_max_idx))
        raw = self.low(base + f.pteval, n * size) if n else b""
        return idx, [int.from_bytes(raw[i * size:(i + 1) * size], "little") for i in range(n)]

    # -- breakpoints -------------------------------------------------------------------

    def __post_init__(self) -> None:
        self.by_addr = {a: f for f, a in self.facts.entries.items()}

    def arm(self) -> None:
        """The entry breakpoints (the guest stopped)."""
        for setting in GDB_QUIET:
            self.gdb.cmd(f"-gdb-set {setting}")
        lay = self.facts.kernel.layout
        lo = lay.fix_to_virt(lay.fix_kmap_end)
        hi = lay.fix_to_virt(lay.fix_kmap_begin) + PAGE_SIZE
        for fn, addr in self.facts.entries.items():
            if fn == MAP_LOCAL and not self.map_entries:
                continue
            cond = f"(unsigned long)$eax >= {lo:#x} && (unsigned long)$eax < {hi:#x}" \
                if fn == UNMAP_LOCAL else None
            self.entry_bkpts[addr] = self._insert(addr, cond)

    def _insert(self, addr: int, cond: str | None = None) -> str:
        c = f'-c "{cond}" ' if cond else ""
        r, _ = self.gdb.cmd(f"-break-insert {c}*{addr:#x}")
        return str(r["payload"]["bkpt"]["number"])

    def _ret_bkpt(self, addr: int) -> None:
        nr, refs = self.ret_bkpts.get(addr, ("", 0))
        self.ret_bkpts[addr] = (nr or self._insert(addr), refs + 1)

    def _ret_done(self, addr: int) -> None:
        nr, refs = self.ret_bkpts[addr]
        if refs > 1:
            self.ret_bkpts[addr] = (nr, refs - 1)
            return
        del self.ret_bkpts[addr]
        if addr not in self.entry_bkpts:
            self.gdb.cmd(f"-break-delete {nr}")

    def disarm(self) -> None:
        nrs = list(self.entry_bkpts.values()) + [nr for nr, _ in self.ret_bkpts.values()]
        if nrs:
            self.gdb.cmd("-break-delete " + " ".join(nrs))
        self.entry_bkpts.clear()
        self.ret_bkpts.clear()
        self.calls.clear()

    # -- the budget --------------------------------------------------------------------

    def _count_stop(self, now: float) -> None:
        self.tally.stops += 1
        self.recent.append(now)
        while self.recent and self.recent[0] < now - 1.0:
            self.recent.popleft()
        if len(self.recent) > self.budget and not self.paused_until:
            self.gdb.cmd("-break-disable " + " ".join(self.entry_bkpts.values()))
            self.paused_until = now + 1.0
            self.tally.paused += 1
            self.maps.clear()     # maps made while off are not seen: forget the others too
            self.areas.clear()

    def _unpause(self) -> None:
        self.gdb.cmd("-break-enable " + " ".join(self.entry_bkpts.values()))
        self.paused_until = 0.0
        self.recent.clear()

    # -- the stop loop -----------------------------------------------------------------

    def serve(self, busy: Callable[[], bool], deadline: float,
              drain: Callable[[], str] = lambda: "") -> None:
        """Judge stops until busy() is False (the workload ended) or `deadline`. drain()
        reads the guest's console (QEMU blocks on a full one); a panic there ends it."""
        self.gdb.resume()
        tail = ""
        while busy() and time.monotonic() < deadline:
            tail = (tail + drain())[-4096:]
            if PANIC in tail:   # a failed test, not a harness error: the caller reports it
                self.panic = tail[tail.index(PANIC):].splitlines()[0]
                return
            stopped = self.gdb.wait_stopped(0.2)
            now = time.monotonic()
            if stopped is None:
                if self.paused_until and now >= self.paused_until:
                    stopped = self.gdb.interrupt()
                    self._unpause()
                    self.on_stop(stopped, count=False)
                    self.gdb.resume()
                if self.gdb.target_gone:
                    raise GdbError("the guest went away while watched",
                                   "read console.log in the run directory")
                continue
            self._count_stop(now)
            self.on_stop(stopped)
            self.gdb.resume()

    def finish(self) -> None:
        """Stop the guest, judge every CPU's free slots, remove the breakpoints."""
        if self.gdb.running:
            self.gdb.interrupt()
        regs = self.gdb.registers(REGS)
        for cpu in self.facts.current:
            self.sweep(cpu, regs["cr3"], bool(regs["cr4"] & CR4_PAE))
        self.disarm()

    def on_stop(self, stopped: dict[str, Any], count: bool = True) -> None:
        cpu = int(str(stopped.get("thread-id", "1"))) - 1
        pc = int(str((stopped.get("frame") or {}).get("addr", "0")), 16)
        regs = self.gdb.registers(REGS)
        cr3, pae = regs["cr3"], bool(regs["cr4"] & CR4_PAE)
        self.sweep(cpu, cr3, pae)   # first: the slots unmapped at earlier stops
        call = self.calls.pop((pc, regs["esp"]), None)
        if call is not None:
            self._returned(call, cpu, cr3, pae, regs["eax"])
            self._ret_done(pc)
        elif count:
            fn = self.by_addr.get(pc)
            if fn is not None:
                self._entry(fn, cpu, regs, cr3, pae)

    def _entry(self, fn: str, cpu: int, regs: dict[str, int], cr3: int, pae: bool) -> None:
        """One entry breakpoint; memory that cannot be read (a stack or page array not
        mapped where the walk looks) makes the stop `unreadable`, not the watch fail."""
        try:
            self._judge_entry(fn, cpu, regs, cr3, pae)
        except (GdbError, ValueError, struct.error):
            self.tally.unreadable += 1

    def _judge_entry(self, fn: str, cpu: int, regs: dict[str, int], cr3: int,
                     pae: bool) -> None:
        f, k = self.facts, self.facts.kernel
        eax, esp = regs["eax"], regs["esp"]
        caller = int.from_bytes(self.virt(cr3, pae, esp, 4), "little")
        if cpu not in f.current:
            return
        if fn == MAP_LOCAL:
            task = self.u32(f.current[cpu])
            idx, _ = self.task_kmaps(task, pae)
            prot = regs["edx"] | (regs["ecx"] << 32 if pae else 0)
            self.maps[(task, idx + k.layout.km_incr - 1)] = (eax, prot)
        elif fn == UNMAP_LOCAL:
            task = self.u32(f.current[cpu])
            idx, ptevals = self.task_kmaps(task, pae)
            va = eax & ~(PAGE_SIZE - 1)
            mapped = self.maps.pop((task, idx - 1), None)
            if mapped is None:
                self.tally.unseen["kmap_local"] += 1
            saved = ptevals[idx - 1] if 0 < idx <= len(ptevals) else None
            pte = self.pte(cr3, pae, va)
            found = kw.judge_kmap_local(k, cpu, eax, idx, saved, pte, mapped)
            self.record("kmap_local", cpu=cpu, vaddr=eax, idx=idx, saved=saved, pte=pte,
                        mapped=mapped)
            self.tally.add("kmap_local", "live", cpu, va, found, caller, self.name_of(caller))
            self.unmapped.setdefault(cpu, set()).add(va)
        elif fn == UNMAP_HIGH:
            pva = self.page_address(eax)
            pte = self.pte(cr3, pae, pva) if pva is not None else None
            count = None
            if pva is not None and k.layout.in_pkmap(pva):
                nr = (pva - k.layout.pkmap_base) // PAGE_SIZE
                count = struct.unpack("<i", self.low(f.pkmap_count + 4 * nr, 4))[0]
            found = kw.judge_kmap_high(k, eax, pva, pte, count)
            self.record("kmap", page=eax, va=pva, pte=pte, count=count)
            self.tally.add("kmap", "live", cpu, pva or 0, found, caller, self.name_of(caller))
        elif fn in (VMAP, VM_MAP_RAM):
            count = regs["edx"]
            if not 0 < count <= MAX_AREA_PAGES:
                return
            pages = struct.unpack(f"<{count}I", self.virt(cr3, pae, eax, 4 * count))
            found_pfns = [k.pfn_of_page(p) for p in pages]
            if any(p is None for p in found_pfns):
                return                     # vmap() refuses these itself (or oopses)
            pfns = [p for p in found_pfns if p is not None]
            prot = PAGE_KERNEL_FLAGS
            if fn == VMAP:                 # pgprot_t, the fourth argument: on the stack
                prot = int.from_bytes(self.virt(cr3, pae, esp + 4, 8 if pae else 4), "little")
            kind = "vmap" if fn == VMAP else "vm_map_ram"
            self._await(caller, esp, _Call(kind, False, 0, pfns,
                                           prot, caller, self.name_of(caller)))
        elif fn in (VUNMAP, VM_UNMAP_RAM):
            kind = "vmap" if fn == VUNMAP else "vm_map_ram"
            area = self.areas.pop(eax, None)
            if area is None or area[0] != kind:
                self.tally.unseen[kind] += 1
                return
            _, pfns, prot = area
            ptes = [self.pte(cr3, pae, eax + i * PAGE_SIZE) for i in range(len(pfns))]
            self.record(kind, va=eax, pfns=pfns, ptes=ptes, prot=prot)
            where = self.name_of(caller)
            self.tally.add(kind, "live", cpu, eax, kw.judge_area(k, eax, pfns, ptes, prot),
                           caller, where)
            self._await(caller, esp, _Call(kind, True, eax, pfns, prot, caller, where))

    def record(self, kind: str, **inputs: Any) -> None:
        """Keep the inputs of the first RECORD judges of each kind (golden data)."""
        if len(self.recorded) < len(kw.KINDS) * RECORD and \
                sum(r["kind"] == kind for r in self.recorded) < RECORD:
            self.recorded.append({"kind": kind, **inputs})

    def _await(self, ret: int, esp: int, call: _Call) -> None:
        """A breakpoint on `ret` for this call: it returns there with ESP 4 higher, on
        its own stack (its task's: on whatever CPU it then runs, vmap() may sleep)."""
        try:
            self._ret_bkpt(ret)
        except GdbError:
            return
        self.calls[(ret, esp + 4)] = call

    def _returned(self, call: _Call, cpu: int, cr3: int, pae: bool, eax: int) -> None:
        if not call.unmap:
            if eax:
                self.areas[eax] = (call.kind, call.pfns, call.prot)
            return
        found: list[str] = []
        for i in range(len(call.pfns)):
            va = call.va + i * PAGE_SIZE
            found += kw.judge_cleared(va, self.pte(cr3, pae, va))
        self.tally.add(call.kind, "after unmap", cpu, call.va, found, call.caller, call.where)

    def virt(self, cr3: int, pae: bool, va: int, size: int) -> bytes:
        """Kernel virtual memory of this CPU (lowmem directly, else by a walk per page)."""
        f = self.facts
        if f.page_offset <= va and va + size <= f.high_memory:
            return self.low(va, size)
        out = b""
        while size > 0:
            n = min(size, PAGE_SIZE - (va & 0xFFF))
            w = walk(cr3, va, self.ram.read, pae=pae)
            if w.phys is None:
                raise GdbError(f"{va:#x} is not mapped", "report this as a harness bug")
            out += self.ram.read(w.phys, n)
            va, size = va + n, size - n
        return out

    def page_address(self, page: int) -> int | None:
        """page_address(page) of a highmem page: its entry in page_address_htable
        (mm/highmem.c 6.12:743-775; struct page_address_map {page; virtual; list})."""
        f = self.facts
        head = f.htable + kw.hash_ptr(page) * f.slot_size
        node = self.u32(head)
        for _ in range(1024):
            if node == head or node == 0:
                return None
            pam = node - f.pam_list
            if self.u32(pam) == page:
                return self.u32(pam + 4)
            node = self.u32(node)
        return None

    def sweep(self, cpu: int, cr3: int, pae: bool) -> None:
        """The free kmap_local slots of `cpu` have no PTE; those unmapped since its last
        stop are counted judged after unmap."""
        f, k = self.facts, self.facts.kernel
        if cpu not in f.current:
            return
        idx, _ = self.task_kmaps(self.u32(f.current[cpu]), pae)
        free = {k.slot_va(cpu, s) for s in kw.free_kmap_local_slots(k, cpu, idx)}
        pending = self.unmapped.pop(cpu, set())
        for va in free:
            pte = self.pte(cr3, pae, va)
            found = kw.judge_cleared(va, pte)
            if va in pending:
                self.tally.add("kmap_local", "after unmap", cpu, va, found)
            elif found and (va, pte or 0) not in self.reported:
                self.reported.add((va, pte or 0))
                self.tally.add("kmap_local", "free slot", cpu, va, found)
        # a pending slot not free now was mapped again: it is judged at its own unmap
