"""Stage 9, page walk at a stop: the harness side of hm_checkpoint().

At a hardware breakpoint on hm_checkpoint() (i386 -mregparm=3: EAX = struct hm_expect *),
read the expectation, read CR3/CR4 of the CPU that stopped, walk its page tables with
physical reads through QEMU's monitor, cross-check with QEMU's gva2gpa, judge, and write the
verdict back into the struct so the module's KTAP result carries it.
"""

import re
from dataclasses import dataclass, field

from . import checkpoint as cp
from .gdbmi import Gdb
from .kernel_target import CR4_PAE, Kernel
from .layout import Layout
from .mi_target import MiTarget

GPA = re.compile(r"gpa:\s*(0x[0-9a-fA-F]+)")


@dataclass
class Stop:
    """One checkpoint stop: its expectation and the PTE assertions judged there."""

    cpu: int
    expect: cp.Expect
    checks: list[cp.PteCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


class Checker:
    """Judges checkpoints for one attached gdb session."""

    def __init__(self, gdb: Gdb) -> None:
        self.gdb = gdb
        self.masks: cp.KernelMasks | None = None
        self.layout: Layout | None = None

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

    def handle_stop(self, stopped: dict[str, object]) -> Stop | None:
        """Judge the checkpoint the guest stopped at; None for a repeated stop.

        Under TCG the hardware breakpoint sometimes fires a second time right after the
        resume (same CPU, same struct, about 1 stop in 40): the verdict is then already
        written (modules start it at 0), and the stop is resumed without judging again.
        """
        thread = int(str(stopped.get("thread-id", "1")))
        cpu = thread - 1
        addr = self.gdb.int_value("(unsigned long)$eax")
        raw = self.gdb.read_virt(addr, cp.EXPECT.size)
        if int.from_bytes(raw[cp.VERDICT_OFFSET:cp.VERDICT_OFFSET + 4], "little") != 0:
            return None
        self.gdb.monitor(f"cpu {cpu}")
        self.kernel_masks()
        expect = cp.parse_expect(raw)
        stop = Stop(cpu=cpu, expect=expect)
        stop.checks = self.judge(expect)
        verdict = cp.VERDICT_PASS if stop.passed else cp.VERDICT_FAIL
        self.gdb.write_virt(addr + cp.VERDICT_OFFSET, verdict.to_bytes(4, "little"))
        return stop

    def judge(self, e: cp.Expect) -> list[cp.PteCheck]:
        masks, layout = self.kernel_masks(), self.kernel_layout()
        kernel = Kernel(MiTarget(self.gdb))  # this stop's CPU: CR3, and table pages read once
        if e.kind in ("range", "range_unmapped"):
            raw = self.gdb.read_virt(e.entries, e.count * cp.RANGE_ENTRY.size) if e.count else b""
            targets = cp.parse_range(raw, e.count)
            kind = "mapped" if e.kind == "range" else "unmapped"
        else:
            targets, kind = [(e.va, e.pfn)], e.kind
        checks = []
        for i, (va, pfn) in enumerate(targets):
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
            checks.append(c)
        return checks
