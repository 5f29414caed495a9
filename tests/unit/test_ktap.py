"""Tests for harness.ktap: KUnit/KTAP output as a 6.12 console or dmesg shows it."""

from pathlib import Path

import pytest

from harness.core.ktap import STATUSES, Case, parse_ktap, strip_prefix, summarize

DATA = Path(__file__).parent / "data"

CLEAN = """\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: kmap_local_test
    # module: kmap_local_test
    1..4
    ok 1 kmap_local_lowmem_no_pte
    ok 2 kmap_local_highmem_pte
    not ok 3 kmap_local_pte_flags
    ok 4 kmap_local_nx_required # SKIP CPU lacks NX
# kmap_local_test: pass:2 fail:1 skip:1 total:4
# Totals: pass:2 fail:1 skip:1 total:4
not ok 1 kmap_local_test
"""


def _prefixed(text: str, fmt: str) -> str:
    return "\n".join(fmt.format(t=12.0 + i / 1000) + line
                     for i, line in enumerate(text.splitlines()))


def _statuses(suite) -> list[tuple[int, str, str]]:
    return [(c.number, c.name, c.status) for c in suite.cases]


CLEAN_STATUSES = [(1, "kmap_local_lowmem_no_pte", "PASS"), (2, "kmap_local_highmem_pte", "PASS"),
                  (3, "kmap_local_pte_flags", "FAIL"), (4, "kmap_local_nx_required", "SKIP")]


@pytest.mark.parametrize("fmt", [
    "",                          # clean
    "[{t:12.6f}] ",              # serial console, printk.time=1
    "<6>[{t:12.6f}] ",           # dmesg -r / busybox dmesg -r
    "<6>",                       # /dev/kmsg-like level only
    "[{t:12.6f}][   T97] ",      # CONFIG_PRINTK_CALLER
])
def test_prefix_styles(fmt):
    suites = parse_ktap(_prefixed(CLEAN, fmt))
    assert len(suites) == 1
    s = suites[0]
    assert (s.name, s.plan, s.crashed) == ("kmap_local_test", 4, False)
    assert _statuses(s) == CLEAN_STATUSES
    assert s.cases[3].directive == "SKIP CPU lacks NX"
    assert "# module: kmap_local_test" in s.diagnostics
    assert "# Totals: pass:2 fail:1 skip:1 total:4" in s.diagnostics


@pytest.mark.parametrize("line,want", [
    ("[    2.345678]     ok 1 foo", "    ok 1 foo"),
    ("<6>[    2.345678] KTAP version 1", "KTAP version 1"),
    ("[12345.000001] # Totals: pass:1", "# Totals: pass:1"),
    ("<4>    # warn", "    # warn"),
    ("\x1b[0m[    1.000000]     1..3\r", "    1..3"),
    ("no prefix", "no prefix"),
])
def test_strip_prefix(line, want):
    assert strip_prefix(line) == want


def test_interleaved_kernel_messages_and_crlf():
    lines = CLEAN.splitlines()
    noisy = []
    for i, line in enumerate(lines):
        noisy.append(f"[   14.{i:06d}] {line}")
        noisy.append(f"[   14.{i:06d}] random: crng init done")
        noisy.append(f"[   14.{i:06d}] ata2.00: ATAPI: QEMU DVD-ROM, 2.5+, max UDMA/100")
    suites = parse_ktap("\r\n".join(noisy))
    assert _statuses(suites[0]) == CLEAN_STATUSES
    assert all(c.diagnostics == [] for c in suites[0].cases)


def test_recorded_mixed_log():
    suites = parse_ktap((DATA / "kmap_local_test-6.12-mixed.log").read_text())
    assert len(suites) == 1
    s = suites[0]
    assert (s.name, s.plan, s.crashed) == ("kmap_local_test", 6, False)
    assert [c.status for c in s.cases] == ["PASS", "PASS", "FAIL", "SKIP", "PASS", "PASS"]
    fail = s.cases[2]
    assert fail.diagnostics[0].startswith("# kmap_local_pte_flags: EXPECTATION FAILED at")
    assert "    pte_val(*ptep) == -9223372027195228061 (0x800000023fc10063)" in fail.diagnostics
    assert not any("clocksource" in d for c in s.cases for d in c.diagnostics)
    nest = s.cases[4]
    assert [(c.name, c.status) for c in nest.subtests] == [
        ("depth-1", "PASS"), ("depth-8", "PASS"), ("depth-15", "PASS")]
    assert summarize(suites) == {"PASS": 4, "FAIL": 1, "SKIP": 1, "XFAIL": 0, "CRASHED": 0}


def test_recorded_bug_log():
    suites = parse_ktap((DATA / "kmap_local_test-6.12-bug.log").read_text())
    assert len(suites) == 1
    s = suites[0]
    assert s.crashed and s.plan == 5
    assert [c.status for c in s.cases] == ["PASS", "PASS", "CRASHED", "CRASHED", "CRASHED"]
    victim = s.cases[2]
    assert victim.name == "kmap_local_nest_overflow"  # from its "# name: ..." message
    assert "kernel BUG at mm/highmem.c:480!" in victim.diagnostics
    assert "Kernel panic - not syncing: Fatal exception" in victim.diagnostics
    assert not any(d.startswith(("EIP", "Call Trace")) for d in victim.diagnostics)
    assert summarize(suites)["CRASHED"] == 3


def test_bug_then_nothing():
    text = ("KTAP version 1\n1..3\nok 1 first\n"
            "[   15.302512] kernel BUG at mm/highmem.c:480!\n")
    (s,) = parse_ktap(text)
    assert s.crashed
    assert [(c.number, c.status) for c in s.cases] == [(1, "PASS"), (2, "CRASHED"), (3, "CRASHED")]
    assert s.cases[1].diagnostics == ["kernel BUG at mm/highmem.c:480!"]
    assert s.cases[2].diagnostics == []


def test_log_just_ends_mid_suite():
    (s,) = parse_ktap(CLEAN.split("    not ok 3")[0])
    assert s.crashed and [c.status for c in s.cases][2:] == ["CRASHED", "CRASHED"]


def test_kunit_catches_fault_and_continues():
    text = CLEAN.replace("    not ok 3 kmap_local_pte_flags",
                         "Oops: 0002 [#1] PREEMPT SMP\n"
                         "    # kmap_local_pte_flags: try faulted: "
                         "last line seen mm/highmem.c:480\n"
                         "    not ok 3 kmap_local_pte_flags")
    (s,) = parse_ktap(text)
    assert not s.crashed and _statuses(s) == CLEAN_STATUSES
    assert s.cases[2].diagnostics[0] == "Oops: 0002 [#1] PREEMPT SMP"


def test_suite_result_line_missing_marks_crashed():
    (s,) = parse_ktap(CLEAN.rsplit("not ok 1", 1)[0])
    assert _statuses(s) == CLEAN_STATUSES and s.crashed


def test_wrapper_plan_promises_more_suites():
    suites = parse_ktap(CLEAN.replace("1..1\n", "1..2\n", 1))
    assert [s.name for s in suites] == ["kmap_local_test", ""]
    assert [s.crashed for s in suites] == [False, True]


def test_xfail_both_forms_and_skip():
    text = ("KTAP version 1\n# Subtest: highmem_edge\n1..4\n"
            "not ok 1 is_kmap_addr_first_slot # XFAIL off-by-one, no upstream fix\n"
            "ok 2 kmap_to_page_first_slot # xfail fixed here\n"
            "ok 3 vmap_guard # SKIP\n"
            "not ok 4 - lifo_warn # TIMEOUT\n")
    (s,) = parse_ktap(text)
    assert s.name == "highmem_edge"
    assert [c.status for c in s.cases] == ["XFAIL", "XFAIL", "SKIP", "FAIL"]
    assert s.cases[0].directive == "XFAIL off-by-one, no upstream fix"
    assert s.cases[2].directive == "SKIP"
    assert s.cases[3].name == "lifo_warn"
    assert summarize([s]) == {"PASS": 0, "FAIL": 1, "SKIP": 1, "XFAIL": 2, "CRASHED": 0}


def test_standalone_doc_names():
    assert parse_ktap("TAP version 14\n# name: pkmap\n1..1\nok 1 a\n")[0].name == "pkmap"
    (s,) = parse_ktap("KTAP version 1\n1..2\nok 1 a\nok 2 b\n")
    assert (s.name, s.plan, s.crashed) == ("", 2, False)
    assert isinstance(s.cases[0], Case)


def test_case_diagnostics_since_previous_result():
    text = ("KTAP version 1\n# Subtest: s\n# header note\n1..2\n"
            "# before a\nok 1 a\n# before b 1\n# before b 2\nnot ok 2 b\n# trailer\n")
    (s,) = parse_ktap(text)
    assert s.cases[0].diagnostics == ["# before a"]
    assert s.cases[1].diagnostics == ["# before b 1", "# before b 2"]
    assert s.diagnostics == ["# header note", "# trailer"]


def test_two_space_nesting_and_nested_crash():
    text = ("KTAP version 1\n# Subtest: outer\n1..2\n"
            "  KTAP version 1\n  # Subtest: params\n  1..3\n  ok 1 p0\n  ok 2 p1\n"
            "ok 1 params\n"
            "  KTAP version 1\n  # Subtest: deep\n  1..2\n  ok 1 d0\n"
            "Kernel panic - not syncing: Fatal exception\n")
    (s,) = parse_ktap(text)
    assert s.crashed
    first, second = s.cases
    assert first.status == "PASS"
    assert [c.status for c in first.subtests] == ["PASS", "PASS", "CRASHED"]
    assert (second.name, second.status) == ("deep", "CRASHED")
    assert [c.status for c in second.subtests] == ["PASS", "CRASHED"]
    assert second.subtests[1].diagnostics == ["Kernel panic - not syncing: Fatal exception"]


def test_two_runs_in_one_log():
    text = CLEAN + "[   20.000000] random: crng reseeded\n" + CLEAN.replace("not ok 3", "ok 3")
    suites = parse_ktap(text)
    assert len(suites) == 2
    assert suites[0].cases[2].status == "FAIL" and suites[1].cases[2].status == "PASS"
    assert summarize(suites)["PASS"] == 5


def test_suite_lines_without_top_header():
    # Capture started after the top-level "KTAP version 1 / 1..1".
    (s,) = parse_ktap(CLEAN.split("1..1\n", 1)[1])
    assert s.name == "kmap_local_test" and _statuses(s) == CLEAN_STATUSES and not s.crashed


def test_no_ktap_at_all():
    assert parse_ktap("") == []
    assert parse_ktap("[    0.000000] Linux version 6.12.117\n# not ktap\n") == []
    assert summarize([]) == dict.fromkeys(STATUSES, 0)
