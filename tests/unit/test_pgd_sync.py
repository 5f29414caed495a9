"""Every process's page directory against init_mm's (core/pgd_sync.py), on hand-built
tables: a shared kernel PMD, a copied one, a copy missing the entry (the missed sync of
4819e15f740e's shape), and 2-level directories whose kernel PDE was not copied."""

from harness.core.pgd_sync import Pgd, judge_pgds, region_vas
from tests.unit.fakemem import FakePhysMem

VA = 0xFFFBB000
PAGE_OFFSET = 0xC0000000
PTE = 0x800000023F000163


def pae_dir(mem: FakePhysMem, pgd: int, pmd: int, pte_page: int | None) -> None:
    mem.write_u64(pgd + 8 * (VA >> 30), pmd | 1)
    if pte_page is not None:
        mem.write_u64(pmd + 8 * ((VA >> 21) & 0x1FF), pte_page | 0x63)


def test_a_copied_pmd_with_the_same_entries_agrees_and_a_missing_entry_names_the_task():
    mem = FakePhysMem()
    pae_dir(mem, 0x1000, 0x2000, 0x3000)            # swapper_pg_dir
    mem.write_u64(0x3000 + 8 * ((VA >> 12) & 0x1FF), PTE)
    pae_dir(mem, 0x5000, 0x2000, None)              # shares the kernel PMD
    pae_dir(mem, 0x6000, 0x7000, 0x3000)            # its own PMD, the same entry
    pae_dir(mem, 0x8000, 0x9000, None)              # its own PMD, the entry not synced
    pgds = [Pgd(1, "init", 0x5000), Pgd(2, "sh", 0x6000), Pgd(77, "stale", 0x8000)]
    found = judge_pgds([VA, VA + 0x1000], 0x1000, pgds, mem.read, pae=True,
                       page_offset=PAGE_OFFSET)
    assert len(found) == 1
    va, text = found[0]
    assert va == VA and text.startswith("PGD: task 77 (stale) maps 0xfffbb000 as")
    assert "PMD not present" in text and "phys 0x23f000000" in text


def test_two_level_directories_compare_the_kernel_pde():
    mem = FakePhysMem()
    for pgd in (0x1000, 0x4000):
        mem.write_u32(pgd + 4 * (VA >> 22), 0x3000 | 0x63)
    mem.write_u32(0x3000 + 4 * ((VA >> 12) & 0x3FF), 0x5000163)
    found = judge_pgds([VA], 0x1000, [Pgd(5, "a", 0x4000), Pgd(6, "b", 0x6000)], mem.read,
                       pae=False, page_offset=PAGE_OFFSET)
    assert [t.split(" maps")[0] for _, t in found] == ["PGD: task 6 (b)"]


def test_one_va_per_region_and_no_user_va():
    vas = [0xF8000000 + i * 0x1000 for i in range(1024)] + [0x08048000]
    assert region_vas(vas, PAGE_OFFSET, pae=True) == [0xF8000000, 0xF8200000]
    assert region_vas(vas, PAGE_OFFSET, pae=False) == [0xF8000000]
