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
from .pagewalk import walk

CR4_PAE = 1 << 5
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

    def kernel_masks(self) -> cp.KernelMasks:
        if self.masks is None:
            pae = bool(self.gdb.int_value("(unsigned long)$cr4") & CR4_PAE)
            self.masks = cp.KernelMasks(
                default_kernel_pte_mask=self.gdb.int_value(
                    "(unsigned long long)__default_kernel_pte_mask"),
                supported_pte_mask=self.gdb.int_value("(unsigned long long)__supported_pte_mask"),
                pae=pae)
        return self.masks

    def qemu_translate(self, va: int) -> int | None:
        """QEMU's own walk of the same tables (the monitor's current CPU was set to ours)."""
        m = GPA.search(self.gdb.monitor(f"gva2gpa {va:#x}"))
        return int(m.group(1), 16) if m else None

    def handle_stop(self, stopped: dict[str, object]) -> Stop:
        thread = int(str(stopped.get("thread-id", "1")))
        cpu = thread - 1
        self.gdb.monitor(f"cpu {cpu}")
        masks = self.kernel_masks()
        addr = self.gdb.int_value("(unsigned long)$eax")
        expect = cp.parse_expect(self.gdb.read_virt(addr, cp.EXPECT.size))
        cr3 = self.gdb.int_value("(unsigned long)$cr3")
        if expect.kind == "range":
            raw = self.gdb.read_virt(expect.entries, expect.count * cp.RANGE_ENTRY.size)
            targets = cp.parse_range(raw, expect.count)
        else:
            targets = [(expect.va, expect.pfn)]
        stop = Stop(cpu=cpu, expect=expect)
        kind = "mapped" if expect.kind == "range" else expect.kind
        for i, (va, pfn) in enumerate(targets):
            w = walk(cr3, va, self.gdb.read_phys, pae=masks.pae)
            label = expect.label if len(targets) == 1 else f"{expect.label}[{i}]"
            stop.checks.append(cp.judge_entry(label, kind, va, pfn, expect.prot_flags, w,
                                              masks, self.qemu_translate(va)))
        verdict = cp.VERDICT_PASS if stop.passed else cp.VERDICT_FAIL
        self.gdb.write_virt(addr + cp.VERDICT_OFFSET, verdict.to_bytes(4, "little"))
        return stop
