"""Oops frames and faddr2line and addr2line output (harness/core/oops.py), on a real module oops
recorded from the failure catalogue and on faddr2line's own output format."""

from pathlib import Path

from harness.core import oops
from harness.core.oops import Frame, format_chain, oops_frames, parse_faddr2line

DATA = Path(__file__).parent / "data" / "failures"
OOPS = (DATA / "oops_null_module_dmesg.txt").read_text()


def test_frames_of_a_module_oops_start_at_eip():
    frames = oops_frames(OOPS)
    assert frames[0] == Frame("cat_null_deref_init", "0x31", "cat_null_deref")
    # this kernel has no frame pointers: every trace frame is a '?' guess
    assert frames[1] == Frame("do_one_initcall", "0x6c", None, reliable=False)
    assert len(frames) == 4


def test_reliable_frames_are_preferred():
    text = ("EIP: f+0x1/0x10\nCall Trace:\n ? junk+0x1/0x2\n g+0x2/0x20\n"
            " h+0x3/0x30 [m]\nModules linked in: m\n")
    assert oops_frames(text) == [Frame("f", "0x1"), Frame("g", "0x2"), Frame("h", "0x3", "m")]
    assert oops_frames("no oops here") == []


def test_faddr2line_output_gives_the_innermost_location():
    out = ("do_one_initcall+0x6c/0x19a:\ndo_trace_initcall_finish at init/main.c:1224\n"
           "(inlined by) do_one_initcall at init/main.c:1241\n"
           "cat_null_deref_init+0x31/0x47:\ncat_null_deref_init at /root/.cache/x/build/"
           "hm-modules/catalogue-1234/cat_null_deref.c:28\n")
    assert parse_faddr2line(out) == {"do_one_initcall+0x6c": "init/main.c:1224",
                                     "cat_null_deref_init+0x31": "cat_null_deref.c:28"}


def test_chain_marks_guessed_frames():
    frames = [Frame("f", "0x3c"), Frame("g", "0x6c", reliable=False)]
    assert format_chain(frames, {"f+0x3c": "mm/highmem.c:573"}) == \
        "f+0x3c mm/highmem.c:573 <- ? g+0x6c"



# addr2line -a -f -i -e vmlinux (6.12 build): an inlined function first, then its caller
ADDR2LINE = """0xc1000542
do_one_initcall
/TREE/init/main.c:1224
0xc10bf1e0
kmap_local_idx_push
/TREE/mm/highmem.c:479
__kmap_local_pfn_prot
/TREE/mm/highmem.c:562
0xc10bf3a0
??
??:0
"""
SYSTEM_MAP = """c1000476 T do_one_initcall
c10bf1a6 T __kmap_local_pfn_prot
c10bf2f0 t same_name
c10bf3f0 t same_name
c10bf405 T kunmap_local_indexed
c1a00000 D some_data
"""


def test_system_map_gives_each_function_its_addresses():
    syms = oops.text_symbols(SYSTEM_MAP)
    assert syms["do_one_initcall"] == [0xc1000476]
    assert syms["same_name"] == [0xc10bf2f0, 0xc10bf3f0]
    assert "some_data" not in syms


def test_frames_of_a_function_named_twice_are_left_to_faddr2line():
    syms = oops.text_symbols(SYSTEM_MAP)
    addrs = oops.frame_addresses(["do_one_initcall+0xcc", "same_name+0x4",
                                  "__kmap_local_pfn_prot+0x3a", "gone+0x1"], syms)
    assert addrs == {0xc1000542: "do_one_initcall+0xcc",
                     0xc10bf1e0: "__kmap_local_pfn_prot+0x3a"}


def test_addr2line_output_gives_the_innermost_location_relative_to_the_tree():
    keys = {0xc1000542: "do_one_initcall+0xcc", 0xc10bf1e0: "__kmap_local_pfn_prot+0x3a",
            0xc10bf3a0: "unknown+0x0"}
    assert oops.parse_addr2line(ADDR2LINE, keys, "/TREE/") == {
        "do_one_initcall+0xcc": "init/main.c:1224",
        "__kmap_local_pfn_prot+0x3a": "mm/highmem.c:479"}


def test_a_module_compiled_with_mapped_paths_keeps_its_directory_name():
    out = "cat_null_deref_init+0x31/0x1000:\ncat_null_deref_init at ./modules/cat_null_deref.c:28\n"
    assert parse_faddr2line(out) == {"cat_null_deref_init+0x31": "modules/cat_null_deref.c:28"}
