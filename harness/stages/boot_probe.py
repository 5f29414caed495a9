"""When a kernel does not boot: boot it again with gdb attached from the first instruction
and check, by the same PTE rules as a checkpoint, what kmap_local does while booting — the
kernel maps pages with kmap_local_page() long before any test module (unpacking the
initramfs), so a broken kmap_local path often kills the boot. The first maps and unmaps are
judged: after `__kmap_local_pfn_prot(pfn, prot)` returns VA, the PTE at VA must map pfn
with prot (P, PFN, RW, NX, G); after `kunmap_local_indexed(VA)` returns, that PTE must be 0.
A boot crash then names the field that differs, not only the frame that fell over.

i386 -mregparm=3 (Linux 6.1-6.14): pfn and vaddr arrive in EAX; `pgprot_t` (a 64-bit
struct with PAE) in EDX (low half) and ECX (high half), as seen on 6.12 with gcc 12.
Hardware breakpoints (4 on x86): the two entries, and one return address per CPU in flight.
"""

import time
from dataclasses import dataclass, field
from typing import Any

import pexpect

from ..core import checkpoint as cp
from ..core import pte as ptemod
from ..core.errors import GdbError, HarnessError
from ..kernel.target import Kernel
from .gdbmi import Gdb
from .mi_target import MiTarget
from .qemu import READY, Qemu

MAP_FN, UNMAP_FN = "__kmap_local_pfn_prot", "kunmap_local_indexed"


@dataclass
class _Probe:
    gdb: Gdb
    entries: dict[int, str] = field(default_factory=dict)      # address -> function
    entry_bkpts: list[str] = field(default_factory=list)
    pending: dict[int, tuple[str, int, str, tuple[int, ...]]] = field(default_factory=dict)
    mapped: set[int] = field(default_factory=set)
    supported: int | None = None
    checked: int = 0
    found: list[str] = field(default_factory=list)


def _u(gdb: Gdb, addr: int, size: int) -> int:
    return int.from_bytes(gdb.read_virt(addr, size), "little")


# kunmap_local() calls kunmap_local_indexed() for lowmem pages too (nothing was mapped:
# most calls while booting); gdb tests this itself and reports only the others (each
# report costs two MI round trips)
UNMAP_ONLY_HIGH = "(unsigned long)$eax >= (unsigned long)high_memory"


def _break(gdb: Gdb, where: str, condition: str | None = None) -> str:
    """A hardware breakpoint (with a condition gdb evaluates, if it can; else none)."""
    if condition is not None:
        try:
            r, _ = gdb.cmd(f'-break-insert -h -c "{condition}" {where}')
            return str(r["payload"]["bkpt"]["number"])
        except GdbError:
            pass
    r, _ = gdb.cmd(f"-break-insert -h {where}")
    return str(r["payload"]["bkpt"]["number"])


# how many maps (with their unmaps) are judged: each costs ~0.15 s under TCG (stops, page
# table reads through the monitor), and a broken kmap_local path shows in the first ones
LIMIT = 16


def probe_boot(qemu: Qemu, gdb: Gdb, limit: int = LIMIT, timeout: float = 60.0) -> list[str]:
    """Boot `qemu` (made with `-S`, gdb not yet attached) under `gdb`; judge the first
    `limit` kmap_local maps and unmaps. Returns the mismatch lines (empty: all agreed)."""
    qemu.child = qemu._spawn("tcg")
    wait = time.monotonic() + 20
    while not qemu.gdb_socket.exists() and time.monotonic() < wait and qemu.alive():
        time.sleep(0.05)  # QEMU makes its gdbstub socket right after it starts
    gdb.attach(qemu.gdb_socket)
    p = _Probe(gdb)
    for fn in (MAP_FN, UNMAP_FN):
        addr = gdb.int_value(f"(unsigned long)&{fn}")
        p.entries[addr] = fn
        p.entry_bkpts.append(_break(gdb, f"*{addr:#x}", UNMAP_ONLY_HIGH if fn == UNMAP_FN
                                    else None))
    gdb.resume()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not p.found:
        if not _drain(qemu):
            break
        stopped = gdb.wait_stopped(0.1)
        if stopped is None:
            continue
        _serve(p, stopped)
        if p.checked >= limit and not p.pending:
            break  # judged enough: the rest of the boot is not watched (it would only run)
        if p.checked >= limit and p.entry_bkpts:
            for n in p.entry_bkpts:  # no new maps; the unmaps in flight are still judged
                gdb.cmd(f"-break-delete {n}")
            p.entry_bkpts = []
        gdb.resume()
    return p.found


def _drain(qemu: Qemu) -> bool:
    """Read what the guest printed (a full pty would stall it); False at the ready marker
    or when QEMU is gone."""
    assert qemu.child is not None
    while True:
        try:
            text = qemu.child.read_nonblocking(65536, timeout=0)
        except pexpect.TIMEOUT:
            return True
        except pexpect.EOF:
            return False
        if READY in text:
            return False


def _serve(p: _Probe, stopped: dict[str, Any]) -> None:
    thread = int(str(stopped.get("thread-id", "1")))
    frame = stopped.get("frame") or {}
    pc = int(str(frame.get("addr", "0")), 16)
    gdb = p.gdb
    regs = gdb.registers(("eax", "ecx", "edx", "esp"))
    if pc in p.entries and thread not in p.pending:
        if p.entries[pc] == UNMAP_FN and regs["eax"] & ~0xFFF not in p.mapped:
            return  # a lowmem page_address() unmapped: nothing was mapped, nothing to judge
        ret = _u(gdb, regs["esp"], 4)
        args: tuple[int, ...] = (regs["eax"],)
        if p.entries[pc] == MAP_FN:  # pgprot_t: EDX low half, ECX high half (seen)
            args += (regs["edx"] | regs["ecx"] << 32,)
        try:
            p.pending[thread] = (p.entries[pc], ret, _break(gdb, f"*{ret:#x}"), args)
        except GdbError:
            pass  # no debug register left: this call goes unchecked
        return
    call = p.pending.get(thread)
    if call is None or pc != call[1]:
        return  # another CPU passing the same return address
    del p.pending[thread]
    gdb.cmd(f"-break-delete {call[2]}")
    p.checked += 1
    _judge(p, thread - 1, call[0], call[3], regs["eax"])


def _judge(p: _Probe, cpu: int, fn: str, args: tuple[int, ...], ret: int) -> None:
    kernel = Kernel(MiTarget(p.gdb, cpu))
    if p.supported is None:
        p.supported = p.gdb.int_value("(unsigned long long)__supported_pte_mask")
    masks = cp.KernelMasks(default_kernel_pte_mask=(1 << 64) - 1,
                           supported_pte_mask=p.supported, pae=kernel.pae)
    if fn == MAP_FN:
        pfn, prot = args
        va = ret & 0xFFFFFFFF
        w = kernel.walk(va)
        c = cp.judge_entry("boot", "mapped", va, pfn, prot & ~ptemod.PAE_PFN_MASK, w, masks,
                           w.phys)
        p.mapped.add(va & ~0xFFF)
        if not c.passed:
            p.found.append(f"boot check: {MAP_FN}(pfn {pfn:#x}) returned {va:#x} on CPU{cpu}: "
                           + "; ".join(c.mismatches))
        return
    va = args[0] & ~0xFFF
    p.mapped.discard(va)
    w = kernel.walk(va)
    if w.pte not in (None, 0):
        p.found.append(f"boot check: {UNMAP_FN}({va:#x}) on CPU{cpu}: PTE: expected 0 after "
                       f"unmap, got {w.pte:#x}")


def safe_probe(qemu: Qemu, gdb: Gdb) -> list[str]:
    """probe_boot, with any harness error turned into "no finding" (it is a diagnosis of
    a boot that already failed: it must not fail the run itself)."""
    try:
        return probe_boot(qemu, gdb)
    except (HarnessError, OSError, ValueError, KeyError):
        return []
