"""Layout arithmetic against the values measured on Linux 6.12, NR_CPUS=4, 8 GiB
(shared/highmem-facts.md section 2) and against the 6.12 run of this harness."""

import pytest

from harness.core.layout import LayoutInputs, compute_layout

INPUTS = dict(page_offset=0xC0000000, high_memory=0xF75FE000, fixaddr_top=0xFFFFF000,
              fix_kmap_begin=68, end_of_fixed_addresses=0x401, nr_cpus=4,
              cpu_entry_area_size=176128, last_pkmap=512)


def layout(debug: bool):
    km = 33 if debug else 16
    return compute_layout(LayoutInputs(**INPUTS, km_max_idx=km,
                                       fix_kmap_end=68 + km * 4 - 1))


def test_areas_match_the_fact_sheet():
    lo = layout(False)
    assert lo.vmalloc_start == 0xF7DFE000
    assert lo.vmalloc_end == 0xFF5FE000
    assert lo.pkmap_base == 0xFF600000
    assert lo.cpu_entry_area_base == 0xFFA00000
    assert lo.fixaddr_tot_start == 0xFFBFE000


@pytest.mark.parametrize("cpu,depth,va", [(0, 0, 0xFFFBB000), (0, 1, 0xFFFBA000),
                                          (1, 0, 0xFFFAB000), (0, 14, 0xFFFAD000)])
def test_kmap_local_slots_without_debug(cpu, depth, va):
    assert layout(False).kmap_local_va(cpu, depth) == va


@pytest.mark.parametrize("cpu,depth,va", [(0, 0, 0xFFFBA000), (0, 1, 0xFFFB8000),
                                          (1, 0, 0xFFFBA000 - 33 * 4096)])
def test_kmap_local_slots_with_debug_guard_pages(cpu, depth, va):
    lo = layout(True)
    assert lo.debug_kmap_local and lo.km_incr == 2
    assert lo.kmap_local_va(cpu, depth) == va


def test_area_names():
    lo = layout(False)
    assert lo.area_of(0xC0100000) == "lowmem"
    assert lo.area_of(0xF8000000) == "vmalloc"
    assert lo.area_of(0xFF600000 + 5 * 4096) == "PKMAP slot 5"
    assert lo.area_of(0xFFFBB000) == "kmap_local slot 0 of CPU 0"
    assert lo.area_of(0xFFFAB000) == "kmap_local slot 0 of CPU 1"
    assert lo.in_kmap_local(0xFFFBB000)  # the slot is_kmap_addr() misses on 6.12
    assert not lo.in_pkmap(0xFF600000 + 512 * 4096)
