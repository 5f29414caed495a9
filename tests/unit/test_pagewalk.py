"""Tests for harness.pagewalk over fake physical memory.

Table addresses and values are modelled on a 6.12 HIGHMEM64G guest: CR3 from
the pgd_cache slab (0x0018da60), kmap_local slot 0 of CPU 0 at 0xFFFBB000
mapping a highmem page above 4 GiB (pfn 0x23fc10, PAGE_KERNEL with NX).
"""

import pytest

from harness.core.pagewalk import Level, format_walk, walk, walk_2level, walk_pae
from tests.unit.fakemem import FakePhysMem

CR3 = 0x0018DA60
PMD_TABLE = 0x01A4F000
PTE_TABLE = 0x01A52000
KMAP_VA = 0xFFFBB000
KMAP_PTE = 0x800000023FC10163


@pytest.fixture
def pae_mem() -> FakePhysMem:
    mem = FakePhysMem()
    mem.write_u64(CR3 + 3 * 8, PMD_TABLE | 0x001)           # PDPTE[3]: only _PAGE_PRESENT
    mem.write_u64(PMD_TABLE + 511 * 8, PTE_TABLE | 0x063)   # _KERNPG_TABLE
    mem.write_u64(PTE_TABLE + 0x1BB * 8, KMAP_PTE)
    mem.write_u64(PMD_TABLE + 0 * 8, 0x000001E3)            # 2 MiB: 0xC0000000 -> 0
    mem.write_u64(PMD_TABLE + 1 * 8, 0x80000001002001E3)    # 2 MiB above 4 GiB, NX
    return mem


def test_present_4k_page(pae_mem):
    w = walk_pae(CR3, KMAP_VA + 0x123, pae_mem.read)
    assert w.fault is None
    assert w.phys == 0x23FC10123
    assert w.page_size == 4096
    assert w.pte == KMAP_PTE
    assert [lv.name for lv in w.levels] == ["PDPTE", "PMD", "PTE"]
    assert w.levels[0] == Level("PDPTE", CR3, 3, CR3 + 24, PMD_TABLE | 1)
    assert w.levels[1] == Level("PMD", PMD_TABLE, 511, PMD_TABLE + 511 * 8, PTE_TABLE | 0x63)
    assert w.levels[2] == Level("PTE", PTE_TABLE, 0x1BB, PTE_TABLE + 0x1BB * 8, KMAP_PTE)
    assert all(size == 8 for _, size in pae_mem.reads)


def test_pfn_above_4g_and_nx_not_in_phys(pae_mem):
    w = walk_pae(CR3, KMAP_VA, pae_mem.read)
    assert w.phys == 0x23FC10000
    assert w.phys < 1 << 36  # bit 63 (NX) must not leak into the address


def test_pdpte_not_present(pae_mem):
    w = walk_pae(CR3, 0x08048000, pae_mem.read)
    assert w.phys is None and w.fault == "PDPTE not present"
    assert len(w.levels) == 1 and w.levels[0].index == 0
    assert w.pte is None


def test_pmd_not_present(pae_mem):
    w = walk_pae(CR3, 0xC0400000, pae_mem.read)
    assert w.fault == "PMD not present" and w.phys is None
    assert w.levels[-1].index == 2
    assert w.pte is None


def test_pte_not_present_cleared_slot(pae_mem):
    w = walk_pae(CR3, KMAP_VA - 0x1000, pae_mem.read)   # next kmap_local slot, pte_clear()ed
    assert w.fault == "PTE not present" and w.phys is None
    assert w.pte == 0
    assert w.levels[-1].index == 0x1BA


def test_pte_not_present_but_nonzero(pae_mem):
    pae_mem.write_u64(PTE_TABLE + 0x1BA * 8, 0x23FC10162)  # P cleared
    w = walk_pae(CR3, KMAP_VA - 0x1000, pae_mem.read)
    assert w.fault == "PTE not present" and w.pte == 0x23FC10162


def test_2m_page(pae_mem):
    w = walk_pae(CR3, 0xC0123456, pae_mem.read)
    assert w.phys == 0x123456 and w.page_size == 2 << 20
    assert [lv.name for lv in w.levels] == ["PDPTE", "PMD"]
    assert w.pte == 0x1E3


def test_2m_page_above_4g_with_nx(pae_mem):
    w = walk_pae(CR3, 0xC0200000 + 0x1FFFFF, pae_mem.read)
    assert w.phys == 0x1003FFFFF


@pytest.mark.parametrize("low_bits", [0x08, 0x10, 0x18, 0x1F])
def test_cr3_low_bits_ignored(pae_mem, low_bits):
    w = walk_pae(CR3 | low_bits, KMAP_VA, pae_mem.read)
    assert w.phys == 0x23FC10000
    assert w.levels[0].table_phys == CR3
    assert w.cr3 == CR3 | low_bits


def test_va_must_be_32bit(pae_mem):
    with pytest.raises(ValueError):
        walk_pae(CR3, 1 << 32, pae_mem.read)
    with pytest.raises(ValueError):
        walk_pae(CR3, -1, pae_mem.read)


def test_short_read_rejected():
    with pytest.raises(ValueError):
        walk_pae(CR3, KMAP_VA, lambda addr, size: b"\x01")


PD = 0x01C8F000
PT = 0x01A52000


@pytest.fixture
def mem2() -> FakePhysMem:
    mem = FakePhysMem()
    mem.write_u32(PD + 0x3FF * 4, PT | 0x063)
    mem.write_u32(PT + 0x3BB * 4, 0x3FC10163)
    mem.write_u32(PD + 0x301 * 4, 0x004001E3)              # 4 MiB page at 0xC0400000
    mem.write_u32(PD + 0x302 * 4, 0x008001E3 | (1 << 13))  # PSE-36 bit set: ignored
    return mem


def test_2level_4k(mem2):
    w = walk_2level(PD | 0x18, KMAP_VA + 0xABC, mem2.read)
    assert w.phys == 0x3FC10ABC and w.page_size == 4096 and not w.pae
    assert [(lv.name, lv.index) for lv in w.levels] == [("PDE", 0x3FF), ("PTE", 0x3BB)]
    assert w.levels[1].entry_phys == PT + 0x3BB * 4
    assert w.pte == 0x3FC10163
    assert all(size == 4 for _, size in mem2.reads)


def test_2level_4m(mem2):
    w = walk_2level(PD, 0xC0400000 + 0x3FFFFF, mem2.read)
    assert w.phys == 0x7FFFFF and w.page_size == 4 << 20
    assert w.pte == 0x004001E3


def test_2level_4m_pse36_bits_ignored(mem2):
    assert walk_2level(PD, 0xC0800010, mem2.read).phys == 0x800010


def test_2level_faults(mem2):
    w = walk_2level(PD, 0x08048000, mem2.read)
    assert w.fault == "PDE not present" and w.pte is None
    w = walk_2level(PD, KMAP_VA - 0x1000, mem2.read)
    assert w.fault == "PTE not present" and w.pte == 0


def test_dispatch(pae_mem, mem2):
    assert walk(CR3, KMAP_VA, pae_mem.read, pae=True).phys == 0x23FC10000
    assert walk(PD, KMAP_VA, mem2.read, pae=False).phys == 0x3FC10000


def test_format_walk(pae_mem):
    text = format_walk(walk_pae(CR3, KMAP_VA, pae_mem.read))
    assert "PTE" in text and "800000023fc10163" in text and "phys 0x23fc10000" in text
    assert "fault: PMD not present" in format_walk(walk_pae(CR3, 0xC0400000, pae_mem.read))


def test_fakemem_reads_across_pages_and_zero_fill():
    mem = FakePhysMem()
    mem.write_u64(0x1FFC, 0x1122334455667788)
    assert mem.read(0x1FFC, 8) == (0x1122334455667788).to_bytes(8, "little")
    assert mem.read(0x5000, 4) == b"\0\0\0\0"
