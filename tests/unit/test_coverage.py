"""Kernel coverage (workflows/coverage/model.py): the per-object gcov switches, the guest's .gcda
listing read back, and gcov's JSON summed per file and function, on hand-made inputs."""

import base64

import pytest

from harness.workflows.coverage import model as cov


def test_gcov_switches_only_on_a_gcov_kernel():
    assert cov.make_variables("CONFIG_HIGHMEM64G=y\n") == {}
    v = cov.make_variables("CONFIG_X=y\nCONFIG_GCOV_KERNEL=y\n")
    assert v == {"GCOV_PROFILE_highmem.o": "y", "GCOV_PROFILE_vmalloc.o": "y",
                 "GCOV_PROFILE_highmem_32.o": "y"}
    assert cov.make_variables("# CONFIG_GCOV_KERNEL is not set\n") == {}


def test_the_dump_reads_back_and_maps_to_host_paths():
    blob = bytes(range(256)) * 3
    b64 = base64.encodebytes(blob).decode()
    text = f"{cov.DUMP_MARK}/sys/kernel/debug/gcov/b/mm/highmem.gcda\n{b64}\n"
    got = cov.parse_dump(text)
    assert got == {"/sys/kernel/debug/gcov/b/mm/highmem.gcda": blob}
    assert cov.host_path("/sys/kernel/debug/gcov/b/mm/highmem.gcda") == "/b/mm/highmem.gcda"


@pytest.mark.parametrize("text,msg", [("junk\n", "before the first"),
                                      (f"{cov.DUMP_MARK}/x\n!!!!\n", "not base64")])
def test_a_malformed_dump_is_named(text, msg):
    with pytest.raises(cov.DumpError, match=msg):
        cov.parse_dump(text)


def test_a_path_outside_gcov_is_refused():
    with pytest.raises(cov.DumpError):
        cov.host_path("/etc/passwd")


GCOV = {"files": [
    {"file": "/src/mm/highmem.c",
     "functions": [{"name": "kmap_high", "start_line": 10, "execution_count": 3},
                   {"name": "flush_all_zero_pkmaps", "start_line": 20,
                    "execution_count": 0}],
     "lines": [{"line_number": 11, "count": 3, "function_name": "kmap_high",
                "branches": [{"count": 3}, {"count": 0}]},
               {"line_number": 12, "count": 0, "function_name": "kmap_high"},
               {"line_number": 21, "count": 0, "function_name": "flush_all_zero_pkmaps"},
               {"line_number": 22, "count": 0, "function_name": "flush_all_zero_pkmaps"}]},
    {"file": "/src/include/linux/list.h", "functions": [], "lines": [
        {"line_number": 1, "count": 1}]}]}


def test_lines_and_branches_per_file_and_function():
    [f] = cov.summarize(GCOV, ("mm/highmem.c",))
    assert (f.lines, f.lines_hit, f.branches, f.branches_hit) == (4, 1, 2, 1)
    assert f.missed == [12, 21, 22]
    kmap, flush = f.functions
    assert (kmap.name, kmap.lines_hit, kmap.lines, kmap.calls) == ("kmap_high", 1, 2, 3)
    assert flush.missed == [21, 22]
    text = cov.format_text([f])
    assert "/src/mm/highmem.c: lines 1/4 (25.0 %), branches 1/2 (50.0 %)" in text
    assert "missed: 21-22" in text and "missed: 12" in text


def test_parts_and_objects_merge_line_by_line():
    part2 = {"files": [{"file": "/src/mm/highmem.c", "functions": [
        {"name": "flush_all_zero_pkmaps", "start_line": 20, "execution_count": 1}],
        "lines": [{"line_number": 21, "count": 1, "function_name": "flush_all_zero_pkmaps"},
                  {"line_number": 11, "count": 1, "function_name": "kmap_high",
                   "branches": [{"count": 0}, {"count": 2}]}]}]}
    [f] = cov.summarize(cov.merge_gcov([GCOV, part2]), ("mm/highmem.c",))
    assert (f.lines_hit, f.lines, f.branches_hit, f.missed) == (2, 4, 2, [12, 22])
    kmap = f.functions[0]
    assert kmap.calls == 3 and f.functions[1].calls == 1
