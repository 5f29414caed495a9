"""QEMU's `info tlb` and `gva2gpa` answers read back (harness/core/qemu_tlb.py)."""

from harness.core.qemu_tlb import parse_gva2gpa, parse_tlb, tlb_translate

TLB = """00000000c0000000: 0000000000000000 --PDA---W
00000000fffbb000: 800000023f000000 XG-DA---W
00000000f8084000: 000000023ed41000 XG-DA---W
"""


def test_pages_and_large_pages():
    tlb = parse_tlb(TLB)
    assert tlb[0xFFFBB000] == (0x23F000000, "XG-DA---W")  # NX bit masked out of the PA
    assert tlb_translate(tlb, 0xFFFBB123) == 0x23F000123
    assert tlb_translate(tlb, 0xC0123456) == 0x123456      # inside the 2 MiB page
    assert tlb_translate(tlb, 0xC0223456) is None
    assert tlb_translate(tlb, 0xF8085000) is None


def test_gva2gpa():
    assert parse_gva2gpa("gpa: 0x23f000000\r\n") == 0x23F000000
    assert parse_gva2gpa("Unmapped\r\n") is None
