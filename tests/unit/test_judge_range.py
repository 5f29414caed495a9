"""The checkpoint judge's fast path (stages/checker.py over core/pagewalk.PteTables and
core/checkpoint.judge_fast) against the slow path it replaces (one full walk and
judge_entry per address), on generated PAE and 2-level tables: every PteCheck, with every
mismatch message, must be the same; both paths must be taken; and every kind of mismatch
(P, PFN, RW, NX, G, large page, walk stopped, QEMU disagreeing or finding nothing,
unmapped but present) must have been generated.
"""

import random

import pytest

from harness.core import checkpoint as cp
from harness.core import pte as ptemod
from harness.core.layout import Layout
from harness.core.pagewalk import PteTables, walk
from harness.core.qemu_tlb import parse_gva2gpa, parse_tlb, tlb_translate
from harness.core.results import Stop
from harness.kernel.target import CR4_PAE, Kernel
from harness.stages import checker as checker_mod
from harness.stages.checker import Checker, CheckpointTimeout

PAGE = 4096
ALL = (1 << 64) - 1
LAYOUT = Layout(page_offset=0xC0000000, high_memory=0xF75FE000, vmalloc_start=0xF7DFE000,
                vmalloc_end=0xFF5FE000, pkmap_base=0xFF600000, last_pkmap=512,
                cpu_entry_area_base=0xFFA00000, fixaddr_tot_start=0xFFBFF000,
                fixaddr_top=0xFFFFF000, fix_kmap_begin=68, fix_kmap_end=131, km_max_idx=16,
                nr_cpus=4)
ENTRIES_VA = 0xF0000000   # where the fake module's range entries live (read_virt only)
MUTATIONS = ("P", "RW", "NX", "G", "A", "PFN", "zero", "garbage", "target_pfn", "none")


class Mem:
    """Sparse guest physical memory: page frame -> bytearray, zeros elsewhere."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}

    def put(self, addr: int, value: int, size: int) -> None:
        page = self.pages.setdefault(addr >> 12, bytearray(PAGE))
        page[addr & 0xFFF:(addr & 0xFFF) + size] = value.to_bytes(size, "little")

    def get(self, addr: int, size: int) -> int:
        return int.from_bytes(self.read(addr, size), "little")

    def read(self, addr: int, size: int) -> bytes:
        out = b""
        while size:
            n = min(size, PAGE - (addr & 0xFFF))
            page = self.pages.get(addr >> 12, bytes(PAGE))
            out += bytes(page[addr & 0xFFF:(addr & 0xFFF) + n])
            addr, size = addr + n, size - n
        return out


class FakeTarget:
    """What Kernel reads at a stop: CR3/CR4, physical memory, the range entries."""

    cpu = 0

    def __init__(self, mem: Mem, cr3: int, pae: bool, entries: bytes) -> None:
        self.mem, self.cr3, self.cr4, self.entries = mem, cr3, CR4_PAE if pae else 0, entries

    def read_phys(self, addr: int, size: int) -> bytes:
        return self.mem.read(addr, size)

    def read_virt(self, addr: int, size: int) -> bytes:
        off = addr - ENTRIES_VA
        assert 0 <= off and off + size <= len(self.entries)
        return self.entries[off:off + size]


class FakeMonitor:
    """QEMU's monitor: `info tlb` and `gva2gpa` answers from a {page: phys} map."""

    def __init__(self, pages: dict[int, int]) -> None:
        self.pages = pages

    def hmp(self, command: str, cpu: int) -> str:
        if command == "info tlb":
            return "".join(f"{va:016x}: {pa | 1 << 63:016x} XG-DA---W\r\n"
                           for va, pa in sorted(self.pages.items()))
        va = int(command.split()[1], 16)
        pa = self.pages.get(va & ~0xFFF)
        return f"gpa: {pa | (va & 0xFFF):#x}\r\n" if pa is not None else "Unmapped\r\n"


class Case:
    """Generated page tables, a checkpoint over them, and QEMU's view of them."""

    def __init__(self, seed: int, pae: bool) -> None:
        rng = self.rng = random.Random(seed)
        self.pae, self.mem = pae, Mem()
        self.size = 8 if pae else 4
        self.region = (2 if pae else 4) << 20
        self.per_table = 512 if pae else 1024
        self.cr3 = 0x1000 + (0x20 * rng.randrange(4) if pae else 0)
        self.masks = cp.KernelMasks(
            default_kernel_pte_mask=rng.choice((ALL, ALL & ~(1 << 8))),     # PTI: no G
            supported_pte_mask=rng.choice((ALL, ALL & ~(1 << 63))),        # no CPU NX
            pae=pae)
        self.kind = rng.choice(("range", "range", "range_unmapped", "mapped", "unmapped",
                                "stale"))
        self.prot = rng.choice((1, 1, 1, 2, 0, cp.PROT_ANY))
        self.next_table = 0x10
        self.regions = self.build_regions()
        self.targets = self.build_targets()
        self.qemu_pages = self.build_qemu()

    def alloc(self) -> int:
        self.next_table += 1
        return self.next_table << 12

    def build_regions(self) -> list[int]:
        """Six consecutive regions in vmalloc: a PTE page (mostly), not present, large."""
        first = 0xF8000000 // self.region
        top = self.alloc()  # the PMD table under PDPTE[3] (PAE)
        if self.pae:
            self.mem.put(self.cr3 + 3 * 8, top | 1, 8)
            if self.rng.random() < 0.05:
                self.mem.put(self.cr3 + 3 * 8, 0, 8)         # PDPTE not present
        bases = []
        for r in range(first, first + 6):
            slot = top + (r % 512) * 8 if self.pae else (self.cr3 & ~0xFFF) + r * 4
            what = self.rng.choices(("table", "absent", "large"), (8, 1, 1))[0]
            if what == "table":
                self.mem.put(slot, self.alloc() | 0x63, self.size)
            elif what == "large":
                self.mem.put(slot, (0x40000000 + (r % 64) * self.region) | 0x1E3, self.size)
            bases.append(r * self.region)
        return bases

    def expected(self, pfn: int) -> int:
        prot = cp.PROTS[self.prot][1]
        return ptemod.expected_kernel_pte(pfn, prot, self.masks.default_kernel_pte_mask,
                                          self.masks.supported_pte_mask, pae=self.pae)

    def pte_slot(self, va: int) -> int | None:
        w = walk(self.cr3, va, self.mem.read, pae=self.pae)
        return w.levels[-1].entry_phys if w.levels[-1].name == "PTE" else None

    def build_targets(self) -> list[tuple[int, int]]:
        n = 1 if self.kind in ("mapped", "unmapped", "stale") else self.rng.choice((3, 60, 300))
        out = []
        for _ in range(n):
            va = self.rng.choice(self.regions) + self.rng.randrange(self.per_table) * PAGE
            pfn = self.rng.randrange(1, 1 << (24 if self.pae else 20))
            slot = self.pte_slot(va)
            if slot is not None:
                old = self.mem.get(slot, self.size)
                if old and self.rng.random() < 0.5:  # a VA listed twice: one PTE for both
                    pfn = ptemod.decode_entry(old, pae=self.pae).pfn
                else:
                    unmapped = self.kind in ("range_unmapped", "unmapped")
                    self.mem.put(slot, self.mutate(0 if unmapped else self.expected(pfn)),
                                 self.size)
            roll = self.rng.random()
            if roll < 0.05:
                pfn += 1  # the module expects another page than the PTE maps
            elif roll < 0.08:
                pfn += 1 << (40 if self.pae else 20)  # beyond the frame bits of a PTE
            out.append((va, pfn))
        return out

    def mutate(self, value: int) -> int:
        what = self.rng.choices(MUTATIONS, (1, 1, 1, 1, 1, 1, 1, 1, 1, 14))[0]
        bit = {"P": 0, "RW": 1, "NX": 63, "G": 8, "A": 5}.get(what)
        if bit is not None:
            value ^= 1 << bit
        elif what == "PFN":
            value += PAGE
        elif what == "zero":
            value = 0
        elif what == "garbage":
            value = self.rng.getrandbits(64)
        return value & (ALL if self.pae else 0xFFFFFFFF)

    def build_qemu(self) -> dict[int, int]:
        """QEMU's translation of each page: ours, mostly; sometimes none or another page."""
        pages = {}
        frame = ptemod.PAE_PFN_MASK if self.pae else ptemod.NONPAE_PFN_MASK
        for va, _ in self.targets:
            w = walk(self.cr3, va & ~0xFFF, self.mem.read, pae=self.pae)
            phys, roll = w.phys, self.rng.random()
            if roll < 0.04:
                phys = None
            elif roll < 0.08:
                phys = self.rng.randrange(1 << 20) << 12
            elif phys is None and roll < 0.2:  # QEMU maps what our walk finds not present
                phys = (w.pte or 0x5000) & frame
            if phys is not None:
                pages[va & ~0xFFF] = phys
        return pages

    def expect(self) -> cp.Expect:
        where = self.rng.choice((0, cp.WHERE_VMALLOC << 28, cp.WHERE_PKMAP << 28))
        va, pfn = self.targets[0]
        return cp.Expect(kind=self.kind, prot=self.prot, va=va, pfn=pfn,
                         count=len(self.targets) if self.kind.startswith("range") else 0,
                         entries=ENTRIES_VA, label="gen", where=where)

    def checker(self) -> tuple[Checker, Kernel]:
        entries = b"".join(cp.RANGE_ENTRY.pack(va, 0, pfn) for va, pfn in self.targets)
        c = Checker(None, None, FakeMonitor(self.qemu_pages))  # type: ignore[arg-type]
        c.masks, c.layout = self.masks, LAYOUT
        return c, Kernel(FakeTarget(self.mem, self.cr3, self.pae, entries))

    def slow(self, e: cp.Expect, cpu: int) -> list[cp.PteCheck]:
        """The judge before the fast path: one walk and judge_entry per address."""
        monitor = FakeMonitor(self.qemu_pages)
        tlb = parse_tlb(monitor.hmp("info tlb", cpu))
        out = []
        kind = {"range": "mapped", "range_unmapped": "unmapped"}.get(e.kind, e.kind)
        for i, (va, pfn) in enumerate(self.targets):
            if len(self.targets) <= checker_mod.FEW_VAS:
                qemu = parse_gva2gpa(monitor.hmp(f"gva2gpa {va:#x}", cpu))
            else:
                qemu = tlb_translate(tlb, va, self.pae)
            label = e.label if len(self.targets) == 1 else f"{e.label}[{i}]"
            c = cp.judge_entry(label, kind, va, pfn, e.prot_flags,
                               walk(self.cr3, va, self.mem.read, pae=self.pae), self.masks,
                               qemu, any_prot=e.prot == cp.PROT_ANY)
            c.mismatches += cp.judge_where(e, va, pfn, LAYOUT)
            out.append(c)
        return out


def _first_words(checks: list[cp.PteCheck]) -> set[str]:
    return {m.split(",")[0].split(" 0x")[0] for c in checks for m in c.mismatches}


@pytest.mark.parametrize("pae", [True, False], ids=["pae", "2level"])
def test_fast_path_gives_the_slow_paths_checks(pae, monkeypatch):
    fast = slow = 0
    real_fast = cp.judge_fast

    def counting(*args: object) -> cp.PteCheck | None:
        nonlocal fast, slow
        c = real_fast(*args)  # type: ignore[arg-type]
        fast, slow = fast + (c is not None), slow + (c is None)
        return c

    monkeypatch.setattr(cp, "judge_fast", counting)
    seen: set[str] = set()
    for seed in range(60):
        case = Case(seed, pae)
        e = case.expect()
        stop = Stop(cpu=0, expect=e)
        checker, kernel = case.checker()
        checker.judge(e, stop, float("inf"), kernel)
        want = case.slow(e, 0)
        assert stop.checks == want, f"seed {seed}"
        seen |= _first_words(want)
    assert fast > 500 and slow > 500, (fast, slow)
    expected = {"P: expected set", "PFN: expected", "RW: expected set", "G: expected set",
                f"PTE: walk stopped: {'PMD' if pae else 'PDE'} not present",
                f"PTE: a {2048 if pae else 4096} KiB large page", "QEMU: gva2gpa gives",
                "QEMU: gva2gpa finds no mapping where our walk does",
                "PTE: expected 0 after unmap", "QEMU: gva2gpa still translates to",
                "VA: expected in PKMAP [0xff600000", "RW: expected clear", "G: expected clear"}
    if pae:
        expected |= {"NX: expected set", "NX: expected clear",
                     "PTE: walk stopped: PDPTE not present"}
    assert expected <= seen, expected - seen


@pytest.mark.parametrize("pae", [True, False], ids=["pae", "2level"])
def test_pte_tables_read_what_the_walk_reads(pae):
    for seed in range(40):
        case = Case(seed, pae)
        tables = PteTables(case.cr3, case.mem.read, pae=pae)
        ends = [va for base in case.regions for va in (base, base + case.region - PAGE)]
        for va in ends + [va + 0x123 for va, _ in case.targets]:
            w = walk(case.cr3, va, case.mem.read, pae=pae)
            want = w.levels[-1].value if w.levels[-1].name == "PTE" else None
            assert tables.pte(va) == want, (seed, hex(va))


def test_pte_tables_read_each_pte_page_once():
    case = Case(3, True)
    reads: list[tuple[int, int]] = []

    def read(addr: int, size: int) -> bytes:
        reads.append((addr, size))
        return case.mem.read(addr, size)

    tables = PteTables(case.cr3, read, pae=True)
    for va in range(case.regions[0], case.regions[0] + case.region, PAGE):
        tables.pte(va)
    assert len([r for r in reads if r[1] == PAGE]) <= 1 and len(reads) <= 4


def test_judge_fast_declines_all_but_the_plain_pass():
    pfn, va = 0x23F400, 0xF8084000
    ok = 0x8000000000000163 | pfn << 12
    phys = pfn << 12
    c = cp.judge_fast("x", "mapped", va, ok, ok, phys, True)
    assert c == cp.PteCheck("x", "mapped", va, ok, ok, "P RW A D G NX", pfn, [], phys, phys)
    assert cp.judge_fast("x", "mapped", va, ok, ok ^ 2, phys, True) is None     # RW differs
    assert cp.judge_fast("x", "mapped", va, ok, ok, phys + PAGE, True) is None  # QEMU differs
    assert cp.judge_fast("x", "mapped", va, ok, None, None, True) is None       # walk stopped
    assert cp.judge_fast("x", "mapped", va, 0, 0, None, True) is None           # not present
    assert cp.judge_fast("x", "unmapped", va, 0, 0, None, True) == cp.PteCheck(
        "x", "unmapped", va, 0, 0, "-", 0, [], None, None)
    assert cp.judge_fast("x", "unmapped", va, 0, 0, phys, True) is None
    assert cp.judge_fast("x", "unmapped", va, 0, None, None, True) is None


def _range_case() -> Case:
    for seed in range(200):
        case = Case(seed, True)
        if case.kind == "range" and len(case.targets) == 300:
            return case
    raise AssertionError("no 300-entry range generated")


def test_timeout_keeps_the_checks_judged_so_far(monkeypatch):
    """The clock is read every DEADLINE_EVERY entries; past the deadline the stop keeps
    exactly the entries judged before that look, and the error says how many."""
    case = _range_case()
    e = case.expect()
    clock = iter(range(10))
    monkeypatch.setattr(checker_mod.time, "monotonic", lambda: next(clock))
    checker, kernel = case.checker()
    stop = Stop(cpu=0, expect=e)
    with pytest.raises(CheckpointTimeout) as err:
        checker.judge(e, stop, 1.5, kernel)  # _range reads the clock once, the loop twice
    every = checker_mod.DEADLINE_EVERY
    assert len(stop.checks) == every
    assert f"judged {every} of 300 PTEs" in str(err.value)
    assert stop.checks == case.slow(e, 0)[:every]


def test_report_json_keeps_every_check(tmp_path):
    """report.json writes each PTE assertion on one line; parsed, it is what the indenting
    encoder wrote (PteCheck.to_json: dataclasses.asdict's fields, the PTE values and physical
    addresses as 0x strings, plus `passed`)."""
    import dataclasses
    import json

    from harness.core import report
    from harness.core.hexjson import hex64, unsafe_numbers
    from harness.core.phases import Phases
    from harness.core.results import ModuleResult, RunResult
    from harness.core.suite import ModuleSpec

    case = _range_case()
    e = case.expect()
    checker, kernel = case.checker()
    stop = Stop(cpu=0, expect=e, index=1)
    checker.judge(e, stop, float("inf"), kernel)
    empty = Stop(cpu=1, expect=e, index=2)
    module = ModuleResult(spec=ModuleSpec(name="m"), stops=[stop, empty])
    result = RunResult(run_dir=tmp_path, modules=[module], meminfo={}, phases=Phases())
    data = json.loads(report.report_json(result))
    checks = data["modules"][0]["checkpoints"][0]["checks"]
    hexed = ("expected", "actual", "qemu_phys", "walk_phys")
    assert checks == [dict(dataclasses.asdict(c), passed=c.passed,
                           **{k: hex64(getattr(c, k)) for k in hexed}) for c in stop.checks]
    assert not unsafe_numbers(data)
    assert data["modules"][0]["checkpoints"][1]["checks"] == []
    assert data == json.loads(json.dumps(report._report_data(
        result, lambda cs: [c.to_json() for c in cs]), indent=2))
