"""The watch's judges (harness/core/kernel_watch.py) on values recorded by `highmem
watch-kernel` on the 6.12 PAE guest (tests/unit/data/kernel_watch/: the kernel's facts and
the first judges' inputs, watch-stops.json of a run): every recorded healthy stop passes,
and each check turns red on a recorded stop with one value made wrong."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.core import kernel_watch as kw
from harness.core.pte import PAE_PFN_MASK, PAGE_KERNEL_RO_FLAGS

DATA = Path(__file__).parent / "data" / "kernel_watch"
NX, RW, G = 1 << 63, 1 << 1, 1 << 8


def load(name: str) -> tuple[kw.WatchKernel, list[dict]]:
    d = json.loads((DATA / name).read_text())
    return kw.kernel_from_json(d["kernel"]), d["stops"]


K, HEALTHY = load("healthy-6.12.json")
_, PLANTED = load("planted-vmap_pfn.json")


def judge(k: kw.WatchKernel, s: dict) -> list[str]:
    if s["kind"] == "kmap_local":
        return kw.judge_kmap_local(k, s["cpu"], s["vaddr"], s["idx"], s["saved"], s["pte"],
                                   tuple(s["mapped"]) if s["mapped"] else None)
    if s["kind"] == "kmap":
        return kw.judge_kmap_high(k, s["page"], s["va"], s["pte"], s["count"])
    return kw.judge_area(k, s["va"], s["pfns"], s["ptes"], s["prot"])


def first(kind: str, stops: list[dict] = HEALTHY) -> dict:
    return next(s for s in stops if s["kind"] == kind)


def fields(found: list[str]) -> list[str]:
    return [kw.field_of(m) for m in found]


def test_every_recorded_healthy_stop_passes():
    kinds = {s["kind"] for s in HEALTHY}
    assert {"kmap_local", "kmap", "vmap", "vm_map_ram"} <= kinds
    assert [(s, judge(K, s)) for s in HEALTHY if judge(K, s)] == []


def test_recorded_planted_vmap_pfn_is_found():
    s = first("vmap", PLANTED)
    assert judge(K, s) == [f"PFN: page 1 at {s['va'] + 4096:#x}: expected "
                           f"{s['pfns'][1]:#x}, got {s['pfns'][1] + 1:#x}"]


# -- kmap_local at kunmap_local_indexed's entry ----------------------------------------

LOCAL = first("kmap_local")


def local(**change) -> list[str]:
    return judge(K, {**LOCAL, **change})


@pytest.mark.parametrize("change,want", [
    ({"pte": LOCAL["pte"] & ~NX}, ["PTEVAL", "NX"]),
    ({"pte": LOCAL["pte"] & ~RW}, ["PTEVAL", "RW"]),
    ({"pte": LOCAL["pte"] & ~G}, ["PTEVAL", "G"]),
    ({"pte": LOCAL["pte"] + 0x1000}, ["PTEVAL", "PFN"]),
    ({"pte": LOCAL["pte"] & ~1}, ["P"]),
    ({"pte": None}, ["PTE"]),
    ({"idx": 0, "saved": None}, ["IDX"]),
    # not the top of kmap_ctrl (the same live PTE read at another slot, or another CPU's)
    ({"vaddr": LOCAL["vaddr"] - 0x1000}, ["VA"]),
    ({"cpu": 1 - LOCAL["cpu"]}, ["VA"]),
])
def test_kmap_local_checks_fail(change, want):
    assert fields(local(**change)) == want


def test_kmap_local_same_wrong_pte_and_pteval_is_found_by_the_map_seen():
    """Both the PTE and kmap_ctrl's copy map the wrong pfn: only the pfn the map was
    asked for (its entry watched) tells."""
    bad = LOCAL["pte"] + 0x1000
    assert fields(local(pte=bad, saved=bad)) == ["PFN"]
    assert local(pte=bad, saved=bad, mapped=None) == []     # unseen map: nothing to tell


def test_kmap_local_prot_of_the_map_decides_rw():
    ro = LOCAL["pte"] & ~RW
    assert fields(local(pte=ro, saved=ro)) == ["RW"]          # mapped with PAGE_KERNEL
    assert local(pte=ro, saved=ro, mapped=[LOCAL["mapped"][0], PAGE_KERNEL_RO_FLAGS]) == []
    assert local(pte=ro, saved=ro, mapped=None) == []         # unseen: RO is allowed


def test_kmap_local_pfn_past_max_pfn_is_not_ram():
    k = replace(K, max_pfn=LOCAL["mapped"][0])
    assert fields(judge(k, LOCAL)) == ["PFN"]
    assert "not a RAM page" in judge(k, LOCAL)[0]


def test_kmap_local_masks_of_a_kernel_without_nx():
    """A CPU without NX: __supported_pte_mask has no NX, so a PTE without NX is right."""
    k = replace(K, masks=replace(K.masks, supported_pte_mask=K.masks.supported_pte_mask & ~NX))
    no_nx = LOCAL["pte"] & ~NX
    assert judge(k, {**LOCAL, "pte": no_nx, "saved": no_nx}) == []
    assert fields(judge(k, LOCAL)) == ["NX"]


# -- kmap() at kunmap_high's entry -----------------------------------------------------

HIGH = first("kmap")


def high(**change) -> list[str]:
    return judge(K, {**HIGH, **change})


@pytest.mark.parametrize("change,want", [
    ({"pte": HIGH["pte"] & ~NX}, ["NX"]),
    ({"pte": HIGH["pte"] & ~RW}, ["RW"]),
    ({"pte": HIGH["pte"] & ~G}, ["G"]),
    ({"pte": HIGH["pte"] + 0x1000}, ["PFN"]),
    ({"pte": 0}, ["P"]),
    ({"pte": None}, ["PTE"]),
    ({"count": 1}, ["COUNT"]),
    ({"va": None}, ["VA"]),
    ({"va": K.layout.vmalloc_start}, ["VA"]),
    ({"page": HIGH["page"] + 4}, ["PAGE"]),
    ({"page": K.mem_map - K.page_struct}, ["PAGE"]),
])
def test_kmap_high_checks_fail(change, want):
    assert fields(high(**change)) == want


def test_kmap_high_healthy_is_quiet():
    assert high() == [] and high(count=5) == []


# -- vmap / vm_map_ram at the unmap's entry --------------------------------------------

@pytest.mark.parametrize("kind", ["vmap", "vm_map_ram"])
@pytest.mark.parametrize("bit,field", [(NX, "NX"), (RW, "RW"), (G, "G"), (1, "P")])
def test_area_checks_fail(kind, bit, field):
    s = first(kind)
    ptes = list(s["ptes"])
    ptes[2] &= ~bit
    found = judge(K, {**s, "ptes": ptes})
    assert fields(found) == [field] and f"page 2 at {s['va'] + 2 * 4096:#x}" in found[0]


def test_area_outside_vmalloc_and_missing_pte():
    s = first("vmap")
    assert fields(judge(K, {**s, "va": K.layout.pkmap_base})) == ["VA"]
    assert fields(judge(K, {**s, "ptes": [None] + s["ptes"][1:]})) == ["P"]


# -- after unmap, free slots, helpers --------------------------------------------------

def test_cleared():
    assert kw.judge_cleared(0xFFFB9000, 0) == [] and kw.judge_cleared(0xFFFB9000, None) == []
    assert fields(kw.judge_cleared(0xFFFB9000, LOCAL["pte"])) == ["PTE"]


def test_free_slots_are_the_ones_at_and_above_idx():
    assert kw.free_kmap_local_slots(K, 0, 0) == list(range(16))
    assert kw.free_kmap_local_slots(K, 1, 3) == list(range(3, 16))
    assert kw.free_kmap_local_slots(K, 1, 16) == []


def test_slot_va_is_the_layouts_kmap_local_va():
    for cpu in range(2):
        for depth in range(3):
            assert K.slot_va(cpu, depth) == K.layout.kmap_local_va(cpu, depth)
    assert LOCAL["vaddr"] & ~0xFFF == K.slot_va(LOCAL["cpu"], LOCAL["idx"] - 1)


def test_pfn_of_page_is_flatmem():
    assert K.pfn_of_page(K.mem_map + 5 * K.page_struct) == 5
    assert K.pfn_of_page(K.mem_map + 5 * K.page_struct + 1) is None
    assert K.pfn_of_page(K.mem_map + K.max_pfn * K.page_struct) is None
    assert (HIGH["pte"] & PAE_PFN_MASK) >> 12 == K.pfn_of_page(HIGH["page"])


def test_hash_ptr_is_hash_32():
    assert kw.hash_ptr(0) == 0
    assert kw.hash_ptr(1) == 0x61C88647 >> 25
    assert all(0 <= kw.hash_ptr(p) < 128 for p in range(0xC0000000, 0xC0100000, 4093))


def test_symbol_table_names_callers_and_modules():
    t = kw.SymbolTable("c1000000 T _stext\nc1001000 t copy_strings\nc1002000 T copy_page\n"
                       "c1003000 D some_data\nc1004000 T _etext\n")
    assert t.name(0xC1001010) == "copy_strings+0x10"
    assert t.name(0xC1002FFF) == "copy_page+0xfff"
    assert t.name(0xF8000000) == "0xf8000000 (module)"
    assert t.name(0x1000) == ""


def test_tally_counts_and_reports_findings_with_their_caller():
    t = kw.Tally()
    t.add("kmap_local", "live", 0, 0xFFFB9000, [], 0xC1001010, "copy_strings+0x10")
    t.add("kmap_local", "after unmap", 0, 0xFFFB9000, [])
    t.add("kmap", "live", 1, 0xFF601000, ["NX: expected set, got clear"], 0xC1002000,
          "copy_page+0x0")
    t.add("kmap_local", "free slot", 1, 0xFFFA9000, ["PTE: expected 0 after unmap"])
    assert (t.judged, t.cleared["kmap_local"], len(t.findings)) == (2, 1, 2)
    assert t.findings[0].field == "NX" and t.findings[1].field == "PTE"
    text = kw.format_tally(t, 2.0, 200)
    assert "kmap live CPU1 0xff601000 from copy_page+0x0: NX: expected set, got clear" in text
    assert "Findings: 2" in text and "kmap_local copy_strings" in text


def test_kernel_complaints_are_the_warn_bug_and_oops_lines():
    log = ("[   1.0] ok line\n[   2.0] WARNING: CPU: 0 PID: 1 at mm/highmem.c:623 "
           "kunmap_local_indexed+0x9a/0xb0\n[   3.0] BUG: unable to handle page fault\n")
    assert kw.kernel_complaints(log) == [
        "[   2.0] WARNING: CPU: 0 PID: 1 at mm/highmem.c:623 kunmap_local_indexed+0x9a/0xb0",
        "[   3.0] BUG: unable to handle page fault"]
    assert kw.kernel_complaints("[ 1.0] all fine\n") == []
