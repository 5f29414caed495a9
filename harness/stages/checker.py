"""Checkpoint stage, the I/O at a stop: the harness side of hm_checkpoint().

At a hardware breakpoint on hm_checkpoint() (i386 -mregparm=3: EAX = struct hm_expect *),
read EAX, CR3 and CR4 of the CPU that stopped (one MI command), read the expectation and
walk that CPU's page tables through the mapped guest RAM (stages/ram_target.py; without a
shared RAM backend, through QEMU's monitor `xp` as before), cross-check every translation
with QEMU's own walk over QMP (`gva2gpa`, or one `info tlb` for many addresses), judge all
entries, and write the verdict back into the struct so the module's KTAP result carries it.
"""

import gc
import time
from collections.abc import Callable
from typing import Any

from ..core import checkpoint as cp
from ..core import pte as ptemod
from ..core.errors import BootError, GdbError
from ..core.hexjson import hex64, read_int
from ..core.layout import Layout
from ..core.pagewalk import PhysReadError
from ..core.qemu_tlb import parse_gva2gpa, parse_tlb, tlb_translate
from ..core.results import Stop, invalid_expect
from ..core import pgd_sync
from ..kernel.pgds import pgd_facts, process_pgds
from ..kernel.target import CR4_PAE, InspectError, Kernel, SymbolMissing
from .gdbmi import Gdb
from .guest_ram import GuestRam
from .mi_target import MiTarget
from .qmp import Monitor
from .ram_target import RamTarget

FEW_VAS = 4                 # up to this many: gva2gpa each; more: one `info tlb`
MAX_RANGE = 1 << 20         # entries; more is not a range a module can mean (4 GiB of VA)
RANGE_CHUNK = 1024          # entries read per gdb command (the deadline is checked between)
DEADLINE_EVERY = 256        # entries judged between two looks at the clock


class CheckpointTimeout(Exception):
    """Judging a checkpoint ran past the module's deadline (the stop is left judged so far)."""

    def __init__(self, stop: Stop, judged: int, total: int) -> None:
        super().__init__(f"checkpoint {stop.index} '{stop.expect.label}': judged {judged} of "
                         f"{total} PTEs before the module's timeout")
        self.stop = stop


class Checker:
    """Judges checkpoints for one attached gdb session."""

    def __init__(self, gdb: Gdb, ram: GuestRam | None = None,
                 monitor: Monitor | None = None) -> None:
        self.gdb, self.ram, self.monitor = gdb, ram, monitor
        self.masks: cp.KernelMasks | None = None
        self.layout: Layout | None = None
        self.last: tuple[int, bytes] | None = None  # the previous stop (repeat detection)
        self.count_addr = 0       # hm_checkpoint's call count (0: unknown)
        self.seen: dict[int, tuple[int, int]] = {}  # cpu -> (struct, count) of its last stop
        self.pkmap_count: int | None = None  # &pkmap_count
        self.pgd: dict[str, int] | None = None  # pgd_facts(): offsets, init_task, swapper_pg_dir
        # is QEMU still running (set per guest): a long judge looks, as at its deadline
        self.target_alive: Callable[[], bool] = lambda: True

    def watch(self, deadline: float) -> bool:
        """Between entries of a long judge: True past `deadline`; GdbExited if gdb died,
        GdbError if QEMU exited (the RAM mapping would still read: the judge would go on
        over a guest that is gone)."""
        if isinstance(self.gdb, Gdb):
            self.gdb.check_alive()
        if not self.target_alive():
            raise GdbError("QEMU exited while a checkpoint was judged",
                           "read console.log in the run directory")
        return time.monotonic() > deadline

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

    def pkmap_count_addr(self) -> int:
        if self.pkmap_count is None:
            self.pkmap_count = self.gdb.int_value("(unsigned long)&pkmap_count")
        return self.pkmap_count

    def facts(self) -> dict[str, object]:
        """What this checker read of the kernel through gdb's DWARF (masks, layout, symbol
        addresses): kept with a snapshot, so a restored guest needs no DWARF at all."""
        m = self.kernel_masks()  # pteval_t masks: "0x..." strings (core/hexjson.py)
        masks = {"default_kernel_pte_mask": hex64(m.default_kernel_pte_mask),
                 "supported_pte_mask": hex64(m.supported_pte_mask), "pae": m.pae}
        return {"masks": masks, "layout": self.kernel_layout().to_json(),
                "pkmap_count": self.pkmap_count_addr(), "pgd": self.pgd_facts_of()}

    def load_facts(self, facts: dict[str, Any]) -> None:
        """The facts() of the same kernel in the same state (a restored snapshot)."""
        m = facts["masks"]  # numbers in a snapshot saved before the hex strings
        self.masks = cp.KernelMasks(read_int(m["default_kernel_pte_mask"]) or 0,
                                    read_int(m["supported_pte_mask"]) or 0,
                                    bool(m.get("pae", True)))
        self.layout = Layout.from_json(facts["layout"])
        self.pkmap_count = int(facts["pkmap_count"])
        pgd = facts.get("pgd")  # a snapshot from before the page-directory check: read again
        self.pgd = {k: int(v) for k, v in pgd.items()} if isinstance(pgd, dict) else None

    def qemu_translations(self, cpu: int, vas: list[int], pae: bool) -> dict[int, int | None]:
        """QEMU's own walk of the same tables on CPU `cpu`, for every VA of the stop."""
        if self.monitor is None:  # through gdb's monitor, one VA at a time
            self.gdb.monitor(f"cpu {cpu}")
            return {va: parse_gva2gpa(self.gdb.monitor(f"gva2gpa {va:#x}")) for va in vas}
        try:
            if len(vas) <= FEW_VAS:
                return {va: parse_gva2gpa(self.monitor.hmp(f"gva2gpa {va:#x}", cpu))
                        for va in vas}
            tlb = parse_tlb(self.monitor.hmp("info tlb", cpu))
        except BootError as e:
            raise GdbError(f"QEMU's monitor did not answer: {e.what}", e.fix) from None
        return {va: tlb_translate(tlb, va, pae) for va in vas}

    def stop_target(self, cpu: int) -> tuple[MiTarget, int]:
        """The target of this stop and EAX (the struct's address): registers in one MI
        command and memory through the RAM mapping when there is one."""
        if self.ram is None:
            return MiTarget(self.gdb, cpu), self.gdb.int_value("(unsigned long)$eax")
        regs = self.gdb.registers(("eax", "cr3", "cr4"))
        return RamTarget(self.gdb, self.ram, cpu, regs["cr3"], regs["cr4"]), regs["eax"]

    def handle_stop(self, stopped: dict[str, object], index: int,
                    deadline: float = float("inf")) -> Stop | None:
        """Judge the checkpoint the guest stopped at; None for a repeated stop.

        Under TCG the hardware breakpoint sometimes fires a second time right after the
        resume (same CPU, same struct, about 1 stop in 40). That is told by the stop, not by
        the struct: hm_checkpoint() counts its calls after the breakpoint, so a stop whose
        CPU, struct address and count equal that CPU's previous stop is the same call. Every
        new call is judged and its verdict written, whatever the struct's verdict field
        held (a module cannot preset it). A struct that cannot be read or parsed is a Stop
        with `error` set: the module gets no verdict (it stays 0) and goes on. Raises
        CheckpointTimeout past `deadline`.
        """
        cpu = int(str(stopped.get("thread-id", "1"))) - 1
        target, addr = self.stop_target(cpu)
        count = self.call_count(target)
        if count is not None:
            if self.seen.get(cpu) == (addr, count):
                return None
            self.seen[cpu] = (addr, count)
        try:
            raw = target.read_virt(addr, cp.EXPECT.size)
        except GdbError:
            return self._invalid(cpu, addr, index, b"", f"cannot read a struct hm_expect at "
                                 f"{addr:#x} (not mapped)", count is not None)
        try:
            expect = cp.parse_expect(raw)
            if expect.kind in ("range", "range_unmapped") and expect.count > MAX_RANGE:
                raise cp.ExpectError(f"a range of {expect.count} entries (at most {MAX_RANGE})")
        except cp.ExpectError as e:
            return self._invalid(cpu, addr, index, raw, str(e), count is not None)
        if count is None and int.from_bytes(raw[cp.VERDICT_OFFSET:cp.VERDICT_OFFSET + 4],
                                            "little") != 0:
            return None  # no call count to tell a re-fire by: the old rule, verdict set
        self.last = None
        self.kernel_masks()
        stop = Stop(cpu=cpu, expect=expect, index=index)
        collecting = gc.isenabled()
        gc.disable()  # a range allocates ~5 objects per entry: no collection per 700 of them
        try:
            self.judge(expect, stop, deadline, Kernel(target))
        finally:
            if collecting:
                gc.enable()
            verdict = (cp.VERDICT_PASS if stop.passed else cp.VERDICT_FAIL).to_bytes(4, "little")
            if isinstance(target, RamTarget):
                target.write_virt(addr + cp.VERDICT_OFFSET, verdict)
            else:
                self.gdb.write_virt(addr + cp.VERDICT_OFFSET, verdict)
        return stop

    def call_count(self, target: Any) -> int | None:
        """hm_checkpoint's call count at this stop; None when it is not known."""
        if not self.count_addr:
            return None
        try:
            return int.from_bytes(target.read_virt(self.count_addr, 4), "little")
        except GdbError:
            return None

    def _invalid(self, cpu: int, addr: int, index: int, raw: bytes, why: str,
                 counted: bool = False) -> Stop | None:
        if not counted and self.last == (addr, raw):  # the same bad struct, stopped at twice
            return None
        self.last = (addr, raw)
        return Stop(cpu=cpu, expect=invalid_expect(addr, index), error=why, index=index)

    def _range(self, e: cp.Expect, kernel: Kernel, deadline: float) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for first in range(0, e.count, RANGE_CHUNK):
            n = min(RANGE_CHUNK, e.count - first)
            raw = kernel.virt(e.entries + first * cp.RANGE_ENTRY.size, n * cp.RANGE_ENTRY.size)
            out += cp.parse_range(raw, n)
            if self.watch(deadline):
                break
        return out

    def judge(self, e: cp.Expect, stop: Stop, deadline: float, kernel: Kernel) -> None:
        """Append to `stop.checks` one PTE assertion per address of the checkpoint; `kernel`
        reads this stop's CPU (CR3, table pages read once). An address whose PTE is exactly
        the expected one and QEMU agrees is judged from its PTE page (`judge_fast`); any
        other gets the full walk and `judge_entry`, which names what differs."""
        masks, layout = self.kernel_masks(), self.kernel_layout()
        if e.kind in ("range", "range_unmapped"):
            try:
                targets = self._range(e, kernel, deadline)
            except GdbError:
                stop.error = (f"cannot read the {e.count} range entries at {e.entries:#x} "
                              "(not mapped)")
                return
            kind = "mapped" if e.kind == "range" else "unmapped"
        else:
            targets, kind = [(e.va, e.pfn)], e.kind
        qemu = self.qemu_translations(stop.cpu, [va for va, _ in targets], kernel.pae)
        any_prot, prot, pae = e.prot == cp.PROT_ANY, e.prot_flags, masks.pae
        kernel_masks = (masks.default_kernel_pte_mask, masks.supported_pte_mask)
        tables, single = kernel.pte_tables, len(targets) == 1
        total = e.count if e.count else len(targets)
        for i, (va, pfn) in enumerate(targets):
            if not i % DEADLINE_EVERY and self.watch(deadline):
                raise CheckpointTimeout(stop, i, total)
            label = e.label if single else f"{e.label}[{i}]"
            c = None
            if not any_prot:  # the common case without a Walk or a decode (judge_fast)
                expected = ptemod.expected_kernel_pte(pfn, prot, *kernel_masks, pae=pae)
                c = cp.judge_fast(label, kind, va, expected, tables.pte(va), qemu[va], pae)
            if c is None:
                c = cp.judge_entry(label, kind, va, pfn, prot, kernel.walk(va), masks, qemu[va],
                                   any_prot=any_prot)
            if e.where:
                c.mismatches += cp.judge_where(e, va, pfn, layout)
            if e.flags & cp.CHECK_CONTENT:
                phys = (pfn << 12) + cp.content_offset(e.flags, e.aux)
                try:
                    got = int.from_bytes(kernel.phys(phys, 8), "little")
                    c.mismatches += cp.judge_content(e.content, got, phys)
                except PhysReadError:
                    c.mismatches.append(f"content: PFN {pfn:#x} is outside RAM "
                                        f"({phys:#x}): its page cannot be read")
            if e.flags & cp.CHECK_PKMAP_COUNT:
                nr = (va - layout.pkmap_base) // 4096
                got = int.from_bytes(kernel.virt(self.pkmap_count_addr() + 4 * nr, 4),
                                     "little", signed=True)
                c.mismatches += cp.judge_pkmap_count(e.aux, got)
            stop.checks.append(c)
        self.judge_pgds(stop, [va for va, _ in targets], kernel, layout)

    def judge_pgds(self, stop: Stop, vas: list[int], kernel: Kernel, layout: Layout) -> None:
        """Every process's page directory maps the stop's kernel VAs as init_mm does
        (core/pgd_sync.py): a mismatch is added to the check of the region's first VA."""
        facts = self.pgd_facts_of()
        if not facts or not stop.checks:
            return
        try:
            pgds = process_pgds(kernel, facts, layout.page_offset)
            found = pgd_sync.judge_pgds(vas, facts["swapper_pg_dir"] - layout.page_offset,
                                        pgds, kernel.phys, pae=kernel.pae,
                                        page_offset=layout.page_offset)
        except (GdbError, InspectError) as e:
            found = [(stop.checks[0].va, f"PGD: the task list could not be read: {e}")]
        by_va: dict[int, Any] = {}
        for c in stop.checks:
            by_va.setdefault(c.va, c)
        for va, text in found:
            by_va.get(va, stop.checks[0]).mismatches.append(text)

    def pgd_facts_of(self) -> dict[str, int]:
        """The offsets and symbols the page-directory walk needs ({} when this kernel's
        DWARF lacks one: the check is then not made, and facts() says so)."""
        if self.pgd is None and self.gdb is None:  # a checker judging recorded stops
            return {}
        if self.pgd is None:
            try:
                self.pgd = pgd_facts(Kernel(MiTarget(self.gdb)))
            except (SymbolMissing, GdbError):
                self.pgd = {}
        return self.pgd
