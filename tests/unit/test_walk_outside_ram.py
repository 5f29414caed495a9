"""A page-table entry that points outside RAM is a finding of the checkpoint, never an
error of the reader (issue 19: a PMD or PDPTE pointing at 60 GiB made the walker's read
error escape as `hang: gdb stopped answering`, the checkpoint and the KTAP lost).

The walker over a fake reader that, like the RAM mapping (stages/guest_ram.py), raises for
addresses that are not RAM; then the whole stop (stages/checker.py over a RamTarget on a
real mapped file, a fake gdb for the registers): the checkpoint fails naming the entry,
its verdict is written back, and the module goes on.
"""

from pathlib import Path

import pytest

from harness.core import checkpoint as cp
from harness.core.layout import Layout
from harness.core.pagewalk import PhysReadError, PteTables, walk, walk_2level, walk_pae
from harness.core.ram_layout import RamRegion
from harness.kernel.target import CR4_PAE, Kernel
from harness.stages.checker import Checker
from harness.stages.guest_ram import GuestRam
from harness.stages.ram_target import NotRam, RamTarget
from tests.unit.fakemem import FakePhysMem

HOLE = (3 << 30, 4 << 30)         # pc with 8 GiB: RAM [0, 3 GiB) and [4 GiB, 9 GiB)
RAM_END = 9 << 30
FAR = 60 << 30                    # 60 GiB physical: no RAM there
CR3 = 0x1000
VA = 0xFFFBB000                   # first kmap_local slot of CPU 0
PFN = 0x23F400
MASKS = cp.KernelMasks(default_kernel_pte_mask=(1 << 64) - 1,
                       supported_pte_mask=(1 << 64) - 1, pae=True)


class LimitedMem(FakePhysMem):
    """Fake physical memory whose reads outside RAM raise, as the RAM mapping's do."""

    def read(self, addr: int, size: int) -> bytes:
        if addr + size > RAM_END or HOLE[0] <= addr < HOLE[1]:
            raise PhysReadError(f"guest physical {addr:#x}+{size:#x} is not in RAM")
        return super().read(addr, size)


def pae_tables(pdpte: int = 0x2000 | 1, pmd: int = 0x3000 | 0x63) -> LimitedMem:
    mem = LimitedMem()
    mem.write_u64(CR3 + 8 * (VA >> 30), pdpte)
    mem.write_u64(0x2000 + 8 * ((VA >> 21) & 0x1FF), pmd)
    mem.write_u64(0x3000 + 8 * ((VA >> 12) & 0x1FF), 0x8000000000000163 | PFN << 12)
    return mem


def test_a_good_walk_is_unchanged():
    w = walk_pae(CR3, VA, pae_tables().read)
    assert w.error is None and w.phys == PFN << 12


def test_pmd_pointing_outside_ram_names_the_pmd_the_va_and_the_address():
    w = walk_pae(CR3, VA, pae_tables(pmd=FAR | 0x63).read)
    assert w.error == (f"PMD 0x{FAR | 0x63:016x} of VA 0xfffbb000 points outside RAM "
                       f"({FAR:#x})")
    assert w.phys is None and w.fault == w.error and w.pte is None
    assert [lv.name for lv in w.levels] == ["PDPTE", "PMD"]


def test_pdpte_pointing_outside_ram():
    w = walk_pae(CR3, VA, pae_tables(pdpte=FAR | 1).read)
    assert w.error == f"PDPTE 0x{FAR | 1:016x} of VA 0xfffbb000 points outside RAM ({FAR:#x})"
    assert [lv.name for lv in w.levels] == ["PDPTE"]


def test_cr3_outside_ram():
    w = walk(0xE0000020, VA, pae_tables().read, pae=True)
    assert w.error == "CR3 0xe0000020 of VA 0xfffbb000 points outside RAM (0xe0000020)"
    assert w.levels == ()


def test_2level_pde_pointing_outside_ram():
    mem = LimitedMem()
    mem.write_u32(CR3 + 4 * (VA >> 22), 0xFFC00000 | 0x63)   # a table in the PCI hole
    w = walk_2level(CR3, VA, mem.read)
    assert w.error == "PDE 0xffc00063 of VA 0xfffbb000 points outside RAM (0xffc00000)"


def test_pte_tables_report_no_table_for_such_a_region():
    tables = PteTables(CR3, pae_tables(pmd=FAR | 0x63).read, pae=True)
    assert tables.pte(VA) is None
    tables = PteTables(0xE0000000, pae_tables().read, pae=True)   # nor even the PDPT
    assert tables.pte(VA) is None


@pytest.mark.parametrize("kind", ["mapped", "unmapped"])
def test_judge_entry_fails_both_kinds_naming_the_entry(kind):
    w = walk_pae(CR3, VA, pae_tables(pmd=FAR | 0x63).read)
    c = cp.judge_entry("x", kind, VA, PFN, cp.PROTS[1][1], w, MASKS, None)
    assert not c.passed
    assert c.mismatches == [f"tables: PMD 0x{FAR | 0x63:016x} of VA 0xfffbb000 points "
                            f"outside RAM ({FAR:#x})"]


def test_any_other_reader_error_still_escapes():
    """Only 'not RAM' is a finding: a reader that fails otherwise (gdb gone) is an error."""
    def broken(addr: int, size: int) -> bytes:
        raise OSError("gdb is not running")

    with pytest.raises(OSError):
        walk_pae(CR3, VA, broken)


# -- the whole stop, over a real RAM mapping ---------------------------------------------

RAM_FILE_SIZE = 1 << 20           # a 1 MiB "guest": RAM is [0, 1 MiB)
STRUCT_VA = 0xFFC00000            # where the module's struct hm_expect lives
STRUCT_PHYS = 0x8000
LAYOUT = Layout(page_offset=0xC0000000, high_memory=0xF75FE000, vmalloc_start=0xF7DFE000,
                vmalloc_end=0xFF5FE000, pkmap_base=0xFF600000, last_pkmap=512,
                cpu_entry_area_base=0xFFA00000, fixaddr_tot_start=0xFFBFF000,
                fixaddr_top=0xFFFFF000, fix_kmap_begin=68, fix_kmap_end=131, km_max_idx=16,
                nr_cpus=4)


class FakeGdb:
    """The registers of the stop; nothing else may go to gdb (the RAM mapping serves)."""

    def registers(self, names: tuple[str, ...]) -> dict[str, int]:
        return {"eax": STRUCT_VA, "cr3": CR3, "cr4": CR4_PAE}


class FakeMonitor:
    def hmp(self, command: str, cpu: int) -> str:
        return "Unmapped\r\n"


def _u64(ram: GuestRam, addr: int, value: int) -> None:
    ram.write(addr, value.to_bytes(8, "little"))


@pytest.fixture
def ram(tmp_path: Path):
    f = tmp_path / "ram"
    f.write_bytes(bytes(RAM_FILE_SIZE))
    r = GuestRam(f, [RamRegion(0, RAM_FILE_SIZE, 0)])
    yield r
    r.close()


def _stop(ram: GuestRam, kind: int, flags: int = 0, pfn: int = PFN) -> tuple[Checker, object]:
    _u64(ram, CR3 + 24, 0x2000 | 1)                                   # PDPTE[3]
    _u64(ram, 0x2000 + 8 * ((STRUCT_VA >> 21) & 0x1FF), 0x3000 | 0x63)
    _u64(ram, 0x3000 + 8 * ((STRUCT_VA >> 12) & 0x1FF), STRUCT_PHYS | 0x63)
    _u64(ram, 0x2000 + 8 * ((VA >> 21) & 0x1FF), FAR | 0x63)           # the corrupted PMD
    ram.write(STRUCT_PHYS, cp.EXPECT.pack(cp.MAGIC, cp.VERSION, kind, 1, VA, pfn, 0, 0, 0,
                                          0, 0, flags, 0, b"slot: mapped"))
    checker = Checker(FakeGdb(), ram, FakeMonitor())  # type: ignore[arg-type]
    checker.masks, checker.layout, checker.pgd = MASKS, LAYOUT, {}  # no task-list check
    return checker, checker.handle_stop({"thread-id": "1"}, 1)


@pytest.mark.parametrize("kind", [1, 2], ids=["mapped", "unmapped"])
def test_a_stop_over_a_pmd_outside_ram_is_a_failed_checkpoint_with_its_verdict(ram, kind):
    _, stop = _stop(ram, kind)
    assert stop is not None and stop.error is None and not stop.passed
    assert stop.checks[0].mismatches == [
        f"tables: PMD 0x{FAR | 0x63:016x} of VA 0xfffbb000 points outside RAM ({FAR:#x})"]
    verdict = int.from_bytes(ram.read(STRUCT_PHYS + cp.VERDICT_OFFSET, 4), "little")
    assert verdict == cp.VERDICT_FAIL      # the module's KTAP case carries it: it goes on


def test_the_reader_of_the_mapping_raises_not_ram(ram):
    _u64(ram, CR3 + 24, FAR | 1)
    target = RamTarget(FakeGdb(), ram, 0, CR3, CR4_PAE)  # type: ignore[arg-type]
    with pytest.raises(NotRam):
        target.read_phys(FAR, 8)
    assert Kernel(target).walk(VA).error == (f"PDPTE 0x{FAR | 1:016x} of VA 0xfffbb000 "
                                             f"points outside RAM ({FAR:#x})")


def test_a_content_check_of_a_pfn_outside_ram_is_a_mismatch(ram):
    _u64(ram, 0x2000 + 8 * ((VA >> 21) & 0x1FF), 0x4000 | 0x63)
    far_pfn = FAR >> 12
    _u64(ram, 0x4000 + 8 * ((VA >> 12) & 0x1FF), 0x8000000000000163 | FAR)
    checker = Checker(FakeGdb(), ram, FakeMonitor())  # type: ignore[arg-type]
    checker.masks, checker.layout, checker.pgd = MASKS, LAYOUT, {}
    e = cp.Expect(kind="mapped", prot=1, va=VA, pfn=far_pfn, count=0, entries=0, label="x",
                  flags=cp.CHECK_CONTENT, content=0x1234)
    from harness.core.results import Stop
    stop = Stop(cpu=0, expect=e)
    checker.judge(e, stop, float("inf"),
                  Kernel(RamTarget(FakeGdb(), ram, 0, CR3, CR4_PAE)))  # type: ignore[arg-type]
    assert any(m.startswith(f"content: PFN {far_pfn:#x} is outside RAM")
               for m in stop.checks[0].mismatches)


def test_qemus_xp_outside_ram_is_not_ram_too():
    """Without a shared RAM file the walker reads through the monitor's `xp`: QEMU 7.2's
    answer for 60 GiB is "Cannot access memory" (checked by hand on a paused QEMU)."""
    from harness.core.errors import GdbError
    from harness.core.gdb_text import parse_xp

    with pytest.raises(NotRam) as e:
        parse_xp("0000000f00000000: Cannot access memory\r\n", 8)
    assert isinstance(e.value, PhysReadError) and isinstance(e.value, GdbError)
    with pytest.raises(GdbError) as other:       # an empty answer is not "not RAM"
        parse_xp("", 8)
    assert not isinstance(other.value, PhysReadError)
