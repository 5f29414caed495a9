"""`highmem bisect` without a VM, pure parts: a step's verdict (and git bisect run's exit
status) from recorded and hand-built report.json dicts, the case and PTE field named, the
step log, what git bisect prints, the summary."""

import copy
import json
from pathlib import Path

import pytest

from harness.workflows.bisect import model as bi

DATA = Path(__file__).parent / "data" / "mutation"


def recorded(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def passing() -> dict:
    """check_no_global.json with its mismatches and failed cases taken out."""
    r = recorded("check_no_global")
    for m in r["modules"]:
        m.update(passed=True, reasons=[], status="PASS")
        for cp in m["checkpoints"]:
            for c in cp["checks"]:
                c.update(mismatches=[], passed=True)
        for case in m["ktap"]:
            case["status"] = "PASS"
    r["passed"] = True
    return r


def test_a_pte_check_is_bad_and_names_the_case_checkpoint_and_field():
    verdict, ev = bi.step_verdict(recorded("check_no_global"))
    assert (verdict, bi.exit_code(verdict)) == (bi.BAD, 1)
    assert (ev.case, ev.checkpoint, ev.field, ev.mismatch) == (
        "kmap_local_basic/kmap_local_above_4g", "mapped", "G", "G: expected set, got clear")
    assert ev.line == "kmap_local_basic/kmap_local_above_4g: mapped: G: expected set, got clear"
    verdict, ev = bi.step_verdict(recorded("check_pfn"))
    assert verdict == bi.BAD and ev.field == "PFN" and ev.mismatch.startswith("PFN: expected")


def test_a_passing_suite_is_good():
    verdict, ev = bi.step_verdict(passing())
    assert (verdict, bi.exit_code(verdict)) == (bi.GOOD, 0)
    assert ev.line.startswith("suite passed: 1 modules")


@pytest.mark.parametrize("name", ["boot_panic", "boot_init_segfault"])
def test_a_kernel_that_does_not_come_up_is_skipped(name):
    verdict, ev = bi.step_verdict(recorded(name))
    assert (verdict, bi.exit_code(verdict)) == (bi.SKIP, 125)
    assert ev.line.startswith("does not boot: boot 1 failed: the kernel panicked")
    assert bi.step_verdict(recorded(name), no_boot=bi.BAD)[0] == bi.BAD


def test_a_boot_whose_kmap_local_checks_failed_is_bad_with_the_field():
    r = recorded("boot_panic")
    r["boots"][0]["checks"] = ["boot check: __kmap_local_pfn_prot(pfn 0x3f) returned "
                               "0xfffbb000 on CPU0: PFN: expected 0x3f, got 0x40"]
    verdict, ev = bi.step_verdict(r)
    assert verdict == bi.BAD
    assert (ev.case, ev.checkpoint, ev.field, ev.mismatch) == (
        "boot 1 checks",
        "__kmap_local_pfn_prot(pfn 0x3f) returned 0xfffbb000 on CPU0", "PFN",
        "PFN: expected 0x3f, got 0x40")
    assert ev.line == "boot 1: " + r["boots"][0]["checks"][0]


def test_a_crash_after_the_boot_is_bad_a_module_build_failure_skipped_a_harness_error_aborts():
    r = passing()
    m = r["modules"][0]
    m.update(passed=False, status="CRASH", reasons=["crash: oops"],
             failure={"kind": "crash", "cause": "oops", "line": "crash: oops in x; at f+0x3c"})
    verdict, ev = bi.step_verdict(r)
    assert verdict == bi.BAD and ev.case == "kmap_local_basic" and ev.field == ""
    r2 = copy.deepcopy(r)
    r2["modules"][0]["failure"] = {"kind": "build", "cause": "x", "line": "NO BUILD: x.c:1: e"}
    r2["modules"][0]["reasons"] = ["NO BUILD: x.c:1: e"]
    assert bi.step_verdict(r2)[0] == bi.SKIP
    r3 = copy.deepcopy(r)
    r3["modules"][0]["failure"] = {"kind": "harness", "cause": "x", "line": "harness: bug"}
    r3["modules"][0]["reasons"] = ["harness: bug"]
    verdict, ev = bi.step_verdict(r3)
    assert (verdict, bi.exit_code(verdict)) == (bi.ABORT, 128)
    assert "could not judge" in ev.line


def test_field_of_mismatch_lines():
    assert bi.field_of("PTE: expected 0 after unmap, got 0x8000000023f800163") == "PTE"
    assert bi.field_of("NX: expected set, got clear") == "NX"
    assert bi.field_of("PKMAP_COUNT: expected 1, got 2") == "PKMAP_COUNT"
    assert bi.field_of("boot check: f(pfn 0x1) on CPU0: VA: expected 0x1, got 0x2") == "VA"
    assert bi.field_of("QEMU: gva2gpa finds no mapping where our walk does") == "QEMU"
    assert bi.field_of("no field here") == ""


def test_the_step_log_round_trips_and_skips_a_line_cut_short():
    s = bi.Step(2, "a" * 40, "mm: x", bi.BAD, bi.Evidence("l", "m/c", "mapped", "G", "G: x"),
                31.5, "/a/step-02")
    text = s.to_line() + bi.Step(3, "b" * 40, "y", bi.GOOD, bi.Evidence("ok")).to_line()
    assert bi.read_steps(text + '{"number": 4, "comm') == [
        s, bi.Step(3, "b" * 40, "y", bi.GOOD, bi.Evidence("ok"))]


FOUND = """Bisecting: 1 revision left to test after this (roughly 1 step)
[3333333333333333333333333333333333333333] mm/highmem: comment 3
running  '/usr/bin/python3' '-m' 'harness.cli' 'bisect-step'
3333333333333333333333333333333333333333 is the first bad commit
commit 3333333333333333333333333333333333333333
Author: bisect test <bisect@localhost>

    mm/highmem: kmap_local maps without _PAGE_GLOBAL

 mm/highmem.c | 3 ++-
bisect found first bad commit
"""
SKIPPED = """There are only 'skip'ped commits left to test.
The first bad commit could be any of:
1111111111111111111111111111111111111111
2222222222222222222222222222222222222222
We cannot bisect more!
bisect run cannot continue any more
"""


def test_what_git_bisect_printed():
    assert bi.first_bad(FOUND) == "3" * 40 and bi.only_skipped(FOUND) == []
    assert (bi.steps_run(FOUND), bi.steps_run(SKIPPED)) == (1, 0)
    assert bi.first_bad(SKIPPED) is None
    assert bi.only_skipped(SKIPPED) == ["1" * 40, "2" * 40]
    v = bi.bisect_vars("bisect_rev='abc'\nbisect_nr=2\nbisect_good=1\nbisect_bad=2\n"
                       "bisect_all=5\nbisect_steps=1\n")
    assert (v["all"], v["steps"], v["rev"]) == ("5", "1", "abc")
    assert bi.progress_line(1, "c" * 40, "subj", v) == (
        "bisect: step 1, 5 suspect commits, ~1 step left after this; testing "
        "cccccccccccc subj")
    assert bi.progress_line(1, "c" * 40, "subj", {}) == "bisect: step 1; testing cccccccccccc subj"


def test_the_summary_names_the_commit_case_and_field_then_every_commit_tested():
    bad = bi.Step(1, "3" * 40, "mm: break", bi.BAD, bi.Evidence(
        "kmap_local_basic/kmap_local_above_4g: mapped: G: expected set, got clear",
        "kmap_local_basic/kmap_local_above_4g", "mapped", "G", "G: expected set, got clear"),
        30, "/art/step-01")
    good = bi.Step(2, "2" * 40, "mm: comment", bi.GOOD, bi.Evidence("suite passed"), 28)
    lines = bi.summary(("3" * 40, "mm: break"), [], [bad, good])
    assert lines[:5] == [
        f"First bad commit: {'3' * 40} mm: break",
        "  failing case: kmap_local_basic/kmap_local_above_4g (checkpoint: mapped)",
        "  PTE field: G (G: expected set, got clear)",
        "  evidence: kmap_local_basic/kmap_local_above_4g: mapped: G: expected set, got clear",
        "  artifacts: /art/step-01"]
    assert lines[5] == "Commits tested: 2"
    assert lines[6].startswith("    1  333333333333  bad       30 s  mm: break")
    lines = bi.summary(None, [("1" * 40, "a"), ("2" * 40, "b")], [])
    assert lines[0].startswith("No single first bad commit") and lines[1] == f"  {'1' * 40} a"
    assert bi.summary(None, [], [], "interrupted")[0] == "No first bad commit found: interrupted"
