"""Tests for harness.pte (pte_t decoding, Linux 6.12 pgtable_types.h values)."""

import pytest

from harness.core import pte
from harness.core.pte import (
    NONPAE_PFN_MASK,
    PAE_PFN_MASK,
    PTE_BITS,
    PteInfo,
    compare_pte,
    decode_entry,
    expected_kernel_pte,
    format_flags,
)

ALL_ONES_64 = (1 << 64) - 1
NO_NX = ALL_ONES_64 & ~pte._PAGE_NX
NO_G = ALL_ONES_64 & ~pte._PAGE_GLOBAL


def test_constants_match_kernel_headers():
    assert pte.__PAGE_KERNEL == 0x8000000000000163
    assert pte.PAGE_KERNEL_FLAGS == 0x8000000000000163
    # pgtable_types.h 6.12:227: __PP|0|0|___A|__NX|0|0|___G -- no _PAGE_DIRTY.
    assert pte.__PAGE_KERNEL_RO == 0x8000000000000121
    assert pte.__PAGE_KERNEL_EXEC == 0x163
    assert pte.__PAGE_KERNEL_LARGE == 0x80000000000001E3
    assert pte._KERNPG_TABLE == 0x63
    assert pte._PAGE_PROTNONE == pte._PAGE_GLOBAL == 0x100
    assert PAE_PFN_MASK == 0x000FFFFFFFFFF000
    assert NONPAE_PFN_MASK == 0xFFFFF000


def test_bit_table_is_ascending_and_unique():
    bits = [b for _, b in PTE_BITS]
    assert bits == sorted(bits) and len(set(bits)) == len(bits)
    assert dict(PTE_BITS)["NX"] == 63 and dict(PTE_BITS)["SPECIAL"] == 9


@pytest.mark.parametrize("name,bit", PTE_BITS)
def test_each_bit_decoded_alone(name, bit):
    info = decode_entry(1 << bit, level="pte")
    expected = "PAT" if bit == 7 else name
    assert info.flags == (expected,)
    assert info.present == (bit == 0)
    assert info.value == 1 << bit


@pytest.mark.parametrize("name,bit", PTE_BITS)
def test_each_bit_decoded_with_all_others_present(name, bit):
    value = 0x163 | (1 << 0) | (1 << bit)
    info = decode_entry(value | (0x1234 << 12))
    assert ("PAT" if bit == 7 else name) in info.flags
    assert info.pfn == 0x1234  # flag bits never leak into the PFN


@pytest.mark.parametrize("level,name",
                         [("pte", "PAT"), ("pmd", "PS"), ("pde", "PS"), ("PMD", "PS")])
def test_bit7_name_depends_on_level(level, name):
    assert decode_entry(0x81, level=level).flags == ("P", name)


def test_unknown_level_rejected():
    with pytest.raises(ValueError):
        decode_entry(1, level="pud")


def test_page_kernel_decodes():
    info = decode_entry(0x800000023FC10163)
    assert info == PteInfo(0x800000023FC10163, True, ("P", "RW", "A", "D", "G", "NX"),
                           0x23FC10, 0x23FC10000, False)
    assert format_flags(info) == "P RW A D G NX"


def test_large_pmd_pfn_and_pat_large():
    value = 0x8000000123400000 | pte.__PAGE_KERNEL_LARGE | pte._PAGE_PAT_LARGE
    info = decode_entry(value, level="pmd")
    assert info.phys == 0x123400000  # bit 12 (PAT) is not part of the address
    assert info.pfn == 0x123400
    assert "PS" in info.flags and "PAT" in info.flags


def test_nonlarge_pmd_points_to_table():
    info = decode_entry(0x1FFF5067, level="pmd")
    assert info.phys == 0x1FFF5000 and "PS" not in info.flags


def test_protnone():
    value = (0x12345 << 12) | pte._PAGE_PROTNONE | pte._PAGE_ACCESSED
    info = decode_entry(value)
    assert info.protnone and not info.present
    assert format_flags(info) == "A PROTNONE"
    # PAE stores a non-present PFN inverted (L1TF, pgtable-invert.h); pte_pfn() undoes it.
    assert info.pfn == (~value & PAE_PFN_MASK) >> 12


def test_zero_is_not_protnone_and_has_no_flags():
    info = decode_entry(0)
    assert not info.protnone and not info.present and info.pfn == 0
    assert format_flags(info) == "-"


def test_present_global_is_not_protnone():
    assert not decode_entry(0x101).protnone
    assert format_flags(decode_entry(0x101)) == "P G"


def test_nonpae_ignores_high_bits():
    info = decode_entry(0x800000023FC10163, pae=False)
    assert info.value == 0x3FC10163
    assert "NX" not in info.flags
    assert info.pfn == 0x3FC10
    assert decode_entry(1 << 63, pae=False).flags == ()


def test_nonpae_nonpresent_pfn_not_inverted():
    # pgtable-2level.h: __pte_needs_invert() is always false.
    assert decode_entry(0x12345100, pae=False).pfn == 0x12345


def test_nonpae_4m_pde():
    info = decode_entry(0x3FC001E3, pae=False, level="pde")
    assert info.phys == 0x3FC00000 and "PS" in info.flags


def test_negative_value_rejected():
    with pytest.raises(ValueError):
        decode_entry(-1)


@pytest.mark.parametrize("dkpm,spm,want", [
    (ALL_ONES_64, ALL_ONES_64, 0x800000023FC10163),   # +nx, no PTI
    (ALL_ONES_64, NO_NX, 0x23FC10163),                 # qemu32 without NX
    (NO_G, ALL_ONES_64, 0x800000023FC10063),          # PTI clears G
    (NO_G, NO_NX, 0x23FC10063),
])
def test_expected_kernel_pte(dkpm, spm, want):
    assert expected_kernel_pte(0x23FC10, pte.__PAGE_KERNEL, dkpm, spm) == want


def test_expected_kernel_pte_nonpae():
    assert expected_kernel_pte(0x3FC10, pte.__PAGE_KERNEL, ALL_ONES_64, ALL_ONES_64,
                               pae=False) == 0x3FC10163


def test_expected_kernel_pte_not_present_prot_not_masked_and_inverted():
    # massage_pgprot() only applies __supported_pte_mask to present protections.
    value = expected_kernel_pte(0x1234, pte._PAGE_PROTNONE | pte._PAGE_NX, ALL_ONES_64, NO_NX)
    assert value & pte._PAGE_NX
    assert decode_entry(value).pfn == 0x1234


def test_compare_equal():
    assert compare_pte(0x800000023FC10163, 0x800000023FC10163) == []


def test_compare_wrong_pfn():
    assert compare_pte(0x8000000123457163, 0x8000000123456163) == [
        "PFN: expected 0x123456, got 0x123457"]


def test_compare_missing_nx():
    assert compare_pte(0x23FC10163, 0x800000023FC10163) == ["NX: expected set, got clear"]


def test_compare_missing_g():
    assert compare_pte(0x800000023FC10063, 0x800000023FC10163) == ["G: expected set, got clear"]


def test_compare_cleared_pte_reports_present_and_pfn_first():
    out = compare_pte(0, 0x800000023FC10163)
    assert out[0] == "P: expected set, got clear"
    assert out[1] == "PFN: expected 0x23fc10, got 0x0"
    assert len(out) == 5


def test_compare_custom_fields_and_aliases():
    assert compare_pte(0x163, 0x1E3, fields=("D", "PAT")) == ["PAT: expected set, got clear"]
    assert compare_pte(0x163, 0x1E3, fields=["pse"]) == ["PSE: expected set, got clear"]
    assert compare_pte(0x163, 0x163 | 0x200, fields=("SPECIAL",)) == [
        "SPECIAL: expected set, got clear"]
    assert compare_pte(0x163, 0x161, fields=("RW",)) == ["RW: expected clear, got set"]


def test_compare_ignores_unrequested_fields():
    assert compare_pte(0x800000023FC10163, 0x800000023FC10123, fields=("PFN", "NX")) == []


def test_compare_unknown_field():
    with pytest.raises(ValueError):
        compare_pte(0, 0, fields=("XD",))
