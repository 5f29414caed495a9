"""Oops frames and faddr2line output (harness/core/oops.py), on a real module oops
recorded from the failure catalogue and on faddr2line's own output format."""

from pathlib import Path

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
