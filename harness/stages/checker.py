"""Checkpoint stage, the I/O at a stop: the harness side of hm_checkpoint().

At a hardware breakpoint on hm_checkpoint() (i386 -mregparm=3: EAX = struct hm_expect *),
read the expectation, read CR3/CR4 of the CPU that stopped, walk its page tables with
physical reads through QEMU's monitor, cross-check with QEMU's gva2gpa, judge, and write the
verdict back into the struct so the module's KTAP result carries it.
"""

import re
import time

from ..core import checkpoint as cp
from ..core.errors import GdbError
from ..core.layout import Layout
from ..core.results import Stop, invalid_expect
from ..kernel.target import CR4_PAE, Kernel
from .gdbmi import Gdb
from .mi_target import MiTarget

GPA = re.compile(r"gpa:\s*(0x[0-9a-fA-F]+)")
MAX_RANGE = 1 << 20         # entries; more is not a range a module can mean (4 GiB of VA)
RANGE_CHUNK = 1024          # entries read per gdb command (the deadline is checked between)


class CheckpointTimeout(Exception):
    """Judging a checkpoint ran past the module's deadline (the stop is left judged so far)."""

    def __init__(self, stop: Stop, judged: int, total: int) -> None:
        super().__init__(f"checkpoint {stop.index} '{stop.expect.label}': judged {judged} of "
                         f"{total} PTEs before the module's timeout")
        self.stop = stop


class Checker:
    """Judges checkpoints for one attached gdb session."""

    def __init__(self, gdb: Gdb) -> None:
        self.gdb = gdb
        self.masks: cp.KernelMasks | None = None
        self.layout: Layout | None = None
        self.last: tuple[int, bytes] | None = None  # the previous stop (repeat detection)

    def kernel_masks(self) -> cp.KernelMasks:
        if self.masks is None:
            pae = bool(self.gdb.int_value("(unsigned long)$cr4") & CR4_PAE)
            self.masks = cp.KernelMasks(
                default_kernel_pte_mask=self.gdb.int_value(
                    "(unsigned long long)__default_kernel_pte_mask"),
                supported_pte_mask=self.gdb.int_value("(unsigned long long)__supported_pte_mask"),
                pae=pae)
        return self.masks

    def kernel_layout(self) -> Layout:
        if self.layout is None:
            self.layout = Kernel(MiTarget(self.gdb)).layout
        return self.layout

    def qemu_translate(self, va: int) -> int | None:
        """QEMU's own walk of the same tables (the monitor's current CPU was set to ours)."""
        m = GPA.search(self.gdb.monitor(f"gva2gpa {va:#x}"))
        return int(m.group(1), 16) if m else None

    def handle_stop(self, stopped: dict[str, object], index: int,
                    deadline: float = float("inf")) -> Stop | None:
        """Judge the checkpoint the guest stopped at; None for a repeated stop.

        Under TCG the hardware breakpoint sometimes fires a second time right after the
        resume (same CPU, same struct, about 1 stop in 40): the verdict is then already
        written (modules start it at 0), and the stop is resumed without judging again.
        A struct that cannot be read or parsed is a Stop with `error` set: the module
        gets no verdict (it stays 0) and goes on. Raises CheckpointTimeout past `deadline`.
        """
        cpu = int(str(stopped.get("thread-id", "1"))) - 1
        addr = self.gdb.int_value("(unsigned long)$eax")
        try:
            raw = self.gdb.read_virt(addr, cp.EXPECT.size)
        except GdbError:
            return self._invalid(cpu, addr, index, b"", f"cannot read a struct hm_expect at "
                                 f"{addr:#x} (not mapped)")
        try:
            expect = cp.parse_expect(raw)
            if expect.kind in ("range", "range_unmapped") and expect.count > MAX_RANGE:
                raise cp.ExpectError(f"a range of {expect.count} entries (at most {MAX_RANGE})")
        except cp.ExpectError as e:
            return self._invalid(cpu, addr, index, raw, str(e))
        if int.from_bytes(raw[cp.VERDICT_OFFSET:cp.VERDICT_OFFSET + 4], "little") != 0:
            return None
        self.last = None
        self.gdb.monitor(f"cpu {cpu}")
        self.kernel_masks()
        stop = Stop(cpu=cpu, expect=expect, index=index)
        try:
            self.judge(expect, stop, deadline)
        finally:
            verdict = cp.VERDICT_PASS if stop.passed else cp.VERDICT_FAIL
            self.gdb.write_virt(addr + cp.VERDICT_OFFSET, verdict.to_bytes(4, "little"))
        return stop

    def _invalid(self, cpu: int, addr: int, index: int, raw: bytes, why: str) -> Stop | None:
        if self.last == (addr, raw):  # the same bad struct, stopped at twice
            return None
        self.last = (addr, raw)
        return Stop(cpu=cpu, expect=invalid_expect(addr, index), error=why, index=index)

    def _range(self, e: cp.Expect, deadline: float) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for first in range(0, e.count, RANGE_CHUNK):
            n = min(RANGE_CHUNK, e.count - first)
            raw = self.gdb.read_virt(e.entries + first * cp.RANGE_ENTRY.size,
                                     n * cp.RANGE_ENTRY.size)
            out += cp.parse_range(raw, n)
            if time.monotonic() > deadline:
                break
        return out

    def judge(self, e: cp.Expect, stop: Stop, deadline: float = float("inf")) -> None:
        """Append to `stop.checks` one PTE assertion per address of the checkpoint."""
        masks, layout = self.kernel_masks(), self.kernel_layout()
        kernel = Kernel(MiTarget(self.gdb))  # this stop's CPU: CR3, and table pages read once
        if e.kind in ("range", "range_unmapped"):
            try:
                targets = self._range(e, deadline)
            except GdbError:
                stop.error = (f"cannot read the {e.count} range entries at {e.entries:#x} "
                              "(not mapped)")
                return
            kind = "mapped" if e.kind == "range" else "unmapped"
        else:
            targets, kind = [(e.va, e.pfn)], e.kind
        for i, (va, pfn) in enumerate(targets):
            if time.monotonic() > deadline:
                raise CheckpointTimeout(stop, i, e.count if e.count else len(targets))
            w = kernel.walk(va)
            label = e.label if len(targets) == 1 else f"{e.label}[{i}]"
            c = cp.judge_entry(label, kind, va, pfn, e.prot_flags, w, masks,
                               self.qemu_translate(va), any_prot=e.prot == cp.PROT_ANY)
            c.mismatches += cp.judge_where(e, va, pfn, layout)
            if e.flags & cp.CHECK_CONTENT:
                got = int.from_bytes(self.gdb.read_phys(pfn << 12, 8), "little")
                c.mismatches += cp.judge_content(e.content, got, pfn << 12)
            if e.flags & cp.CHECK_PKMAP_COUNT:
                nr = (va - layout.pkmap_base) // 4096
                got = self.gdb.int_value(f"pkmap_count[{nr}]")
                c.mismatches += cp.judge_pkmap_count(e.aux, got)
            stop.checks.append(c)
