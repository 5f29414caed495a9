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
from .layout import Layout, LayoutInputs, compute_layout
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


class PhysPages:
    """Physical memory of one stop, read a 4 KiB page at a time through `xp` and kept:
    a range checkpoint walks many PTEs of the same PTE page."""

    def __init__(self, gdb: Gdb) -> None:
        self.gdb = gdb
        self.pages: dict[int, bytes] = {}

    def read(self, addr: int, size: int) -> bytes:
        out = b""
        while size > 0:
            base, off = addr & ~0xFFF, addr & 0xFFF
            if base not in self.pages:
                self.pages[base] = self.gdb.read_phys(base, 4096)
            n = min(size, 4096 - off)
            out += self.pages[base][off:off + n]
            addr, size = addr + n, size - n
        return out


def read_layout(gdb: Gdb, page_offset: int) -> Layout:
    """The live kernel's layout inputs, through gdb and vmlinux's DWARF."""
    v = gdb.int_value
    return compute_layout(LayoutInputs(
        page_offset=page_offset,
        high_memory=v("(unsigned long)high_memory"),
        fixaddr_top=v("(unsigned long)__FIXADDR_TOP"),
        fix_kmap_begin=v("(int)FIX_KMAP_BEGIN"),
        fix_kmap_end=v("(int)FIX_KMAP_END"),
        end_of_fixed_addresses=v("(int)__end_of_fixed_addresses"),
        km_max_idx=v("sizeof(((struct task_struct *)0)->kmap_ctrl.pteval) / sizeof(pte_t)"),
        nr_cpus=v("sizeof(__per_cpu_offset) / sizeof(__per_cpu_offset[0])"),
        cpu_entry_area_size=v("sizeof(struct cpu_entry_area)"),
        last_pkmap=v("sizeof(pkmap_count) / sizeof(pkmap_count[0])"),
    ))


class Checker:
    """Judges checkpoints for one attached gdb session."""

    def __init__(self, gdb: Gdb, page_offset: int = 0xC0000000) -> None:
        self.gdb = gdb
        self.page_offset = page_offset
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
            self.layout = read_layout(self.gdb, self.page_offset)
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
        cr3 = self.gdb.int_value("(unsigned long)$cr3")
        phys = PhysPages(self.gdb)
        if e.kind in ("range", "range_unmapped"):
            raw = self.gdb.read_virt(e.entries, e.count * cp.RANGE_ENTRY.size) if e.count else b""
            targets = cp.parse_range(raw, e.count)
            kind = "mapped" if e.kind == "range" else "unmapped"
        else:
            targets, kind = [(e.va, e.pfn)], e.kind
        checks = []
        for i, (va, pfn) in enumerate(targets):
            w = walk(cr3, va, phys.read, pae=masks.pae)
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
