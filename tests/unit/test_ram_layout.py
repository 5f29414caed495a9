"""Guest physical -> RAM backend file offsets (harness/core/ram_layout.py), on QEMU 7.2's
`info mtree -f` of the 8 GiB pc guest (recorded)."""

import pytest

from harness.core.ram_layout import RamRegion, file_offset, parse_mtree

MTREE = """FlatView #0
 AS "memory", root: system
 Root memory region: system
  0000000000000000-00000000000c2fff (prio 0, ram): pc.ram
  00000000000c3000-00000000000e7fff (prio 0, rom): pc.ram @00000000000c3000
  00000000000e8000-00000000000effff (prio 0, ram): pc.ram @00000000000e8000
  00000000000f0000-00000000000fffff (prio 0, rom): pc.ram @00000000000f0000
  0000000000100000-00000000bfffffff (prio 0, ram): pc.ram @0000000000100000
  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios
  0000000100000000-000000023fffffff (prio 0, ram): pc.ram @00000000c0000000
FlatView #1
  0000000000000000-00000000000c2fff (prio 0, ram): pc.ram
  0000000100000000-000000023fffffff (prio 0, ram): pc.ram @00000000c0000000
"""


def test_below_and_above_4g_regions():
    regions = parse_mtree(MTREE, "pc.ram")
    assert regions == [RamRegion(0, 0xC0000000, 0), RamRegion(0x100000000, 0x140000000,
                                                               0xC0000000)]


def test_above_4g_lies_one_gib_lower_in_the_file():
    regions = parse_mtree(MTREE, "pc.ram")
    assert file_offset(regions, 0x23F000000, 8) == 0x23F000000 - 0x40000000
    assert file_offset(regions, 0xBF800000) == 0xBF800000


def test_holes_and_crossings_are_refused():
    regions = parse_mtree(MTREE, "pc.ram")
    for gpa, size in ((0xC0000000, 1), (0xFEC00000, 4), (0xBFFFFFFC, 8), (0x240000000, 1)):
        with pytest.raises(ValueError):
            file_offset(regions, gpa, size)


def test_other_backends_are_ignored():
    assert parse_mtree(MTREE, "other.ram") == []
