"""The one verdict (core/verdict.py): a module cannot print its way past a failed check.

Each test is a lie a hostile module can tell, and the verdict that must come out anyway:
a case that prints `ok` (SKIP, XFAIL) over a checkpoint the harness failed, a nested
`not ok` under an `ok` parent, a failed checkpoint no case claims, a kernel log whose start
was overwritten. The reasons are data: the failing field is named, not parsed back."""

from harness.core import checkpoint as cp
from harness.core import ktap
from harness.core.failure import Failure
from harness.core.results import ModuleResult, Stop
from harness.core.suite import ModuleSpec
from harness.core.verdict import case_of, failed_subtests, field_of

KTAP_OK = """KTAP version 1
1..2
ok 1 above_4g
ok 2 below_4g
"""


def _stop(label: str, mismatches: list[str], index: int = 1) -> Stop:
    e = cp.Expect(kind="mapped", prot=1, va=0xfffbb000, pfn=0x23f000, count=0, entries=0,
                  label=label)
    c = cp.PteCheck(label=label, kind="mapped", va=0xfffbb000, expected=0x800000023f000163,
                    actual=0x800000023f001163, flags="P RW", pfn=0x23f001,
                    mismatches=mismatches)
    return Stop(cpu=0, expect=e, checks=[c], index=index)


def _result(ktap_text: str = KTAP_OK, stops: list[Stop] | None = None, **kw: object
            ) -> ModuleResult:
    return ModuleResult(spec=ModuleSpec("hostile"), insmod_rc=0, dmesg=ktap_text,
                        stops=stops or [], suites=ktap.parse_ktap(ktap_text), **kw)


def test_an_ok_case_over_a_failed_checkpoint_fails_and_names_the_field() -> None:
    m = _result(stops=[_stop("above_4g: mapped", ["PFN: expected 0x23f000, got 0x23f001"])])
    v = m.verdict()
    assert v.status == "FAIL" and not m.passed
    assert [c.status for c in m.cases] == ["FAIL", "PASS"]
    pte = [r for r in v.reasons if r.kind == "pte"]
    assert [(r.case, r.field, r.checkpoint) for r in pte] == [
        ("above_4g", "PFN", "above_4g: mapped")]
    assert v.module_reasons() == []  # carried by the case, not by kernel_log
    assert any("reported PASS" in r.text for r in v.case_reasons("above_4g"))


def test_skip_and_xfail_do_not_hide_a_failed_checkpoint() -> None:
    text = "KTAP version 1\n1..2\nok 1 above_4g # SKIP nothing\nnot ok 2 below_4g # XFAIL x\n"
    m = _result(text, [_stop("above_4g: mapped", ["NX: expected set, got clear"]),
                       _stop("below_4g: mapped", ["RW: expected set, got clear"], 2)])
    assert [c.status for c in m.cases] == ["FAIL", "FAIL"]
    assert {r.field for r in m.verdict().reasons if r.kind == "pte"} == {"NX", "RW"}


def test_a_checkpoint_no_case_claims_fails_the_module() -> None:
    m = _result(stops=[_stop("somewhere else", ["G: expected set, got clear"])])
    assert not m.passed
    assert [c.status for c in m.cases] == ["PASS", "PASS"]
    assert [r.field for r in m.verdict().module_reasons()] == ["G"]


def test_a_nested_not_ok_under_an_ok_parent_fails_the_case() -> None:
    text = ("KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: parent\n    1..2\n"
            "    ok 1 child_a\n    not ok 2 child_b\nok 1 parent\nok 2 plain\n")
    m = _result(text)
    assert [c.status for c in m.cases] == ["FAIL", "PASS"]
    assert failed_subtests(m.ktap_cases[0]) == ["child_b: FAIL"]
    assert any(r.kind == "subtest" for r in m.verdict().reasons)


def test_a_kunit_suites_parameterised_case_counts_at_every_depth() -> None:
    text = ("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: suite\n    1..1\n"
            "        KTAP version 1\n        # Subtest: param_case\n        1..2\n"
            "        ok 1 p0\n        not ok 2 p1\n    ok 1 param_case\nok 1 suite\n")
    m = _result(text)
    assert [(c.name, c.status) for c in m.cases] == [("param_case", "FAIL")]
    assert not m.passed


def test_a_lost_kernel_log_is_a_fail_never_a_pass() -> None:
    m = _result(log_lost="the start marker was overwritten")
    assert not m.passed
    assert [r.kind for r in m.verdict().reasons] == ["log-lost"]


def test_a_passing_module_has_no_reasons_and_a_crash_is_the_first_reason() -> None:
    assert _result().passed and _result().verdict().reasons == ()
    m = _result(failure=Failure("crash", "oops in hostile: BUG"))
    assert m.verdict().reasons[0].kind == "crash"
    nb = ModuleResult(spec=ModuleSpec("x"), failure=Failure("build", "x did not compile"))
    assert nb.verdict().status == "NO BUILD"


def test_case_of_and_field_of() -> None:
    names = ["kmap_local_above_4g", "kmap_local"]
    assert case_of("kmap_local_above_4g: mapped", names) == "kmap_local_above_4g"
    assert case_of("kmap_local_above_4g[3]", names) == "kmap_local_above_4g"
    assert case_of("other: mapped", names) == ""
    assert field_of("PFN: expected 0x1, got 0x2") == "PFN"
    assert field_of("walk stopped at the PMD: not present") == ""


def test_control_characters_in_a_case_name_are_made_visible() -> None:
    m = _result("KTAP version 1\n1..1\nnot ok 1 li\x01\x1b[31mar\x03\n")
    assert [c.name for c in m.cases] == ["li\\x01ar\\x03"]


def test_case_globs_judge_only_the_cases_they_match() -> None:
    from dataclasses import replace as dc_replace
    m = _result(stops=[_stop("above_4g: mapped", ["PFN: expected 0x23f000, got 0x23f001"])])
    m.spec = dc_replace(m.spec, cases=("below_*",))
    assert m.passed and [c.name for c in m.cases] == ["below_4g"]
    m.spec = dc_replace(m.spec, cases=("above_*",))
    assert not m.passed
    m.spec = dc_replace(m.spec, cases=("nothing*",))
    assert [r.kind for r in m.verdict().reasons] == ["no-ktap"]


def test_select_cases_picks_modules_by_the_glob_before_the_dot() -> None:
    import pytest
    from harness.core.suite import SelectionError, select_cases
    suite = (ModuleSpec("kmap_suite"), ModuleSpec("vmap_suite"), ModuleSpec("kmap_suite", "a=1"))
    got = select_cases(suite, ["kmap_*.kmap_twice", "kmap_suite.x*"])
    assert [(s.title, s.cases) for s in got] == [("kmap_suite", ("kmap_twice", "x*")),
                                                  ("kmap_suite a=1", ("kmap_twice", "x*"))]
    assert select_cases(suite, ["vmap_suite"])[0].cases == ("*",)
    with pytest.raises(SelectionError):
        select_cases(suite, ["nope.*"])


def test_a_malformed_checkpoint_names_the_module_by_name_not_by_its_params() -> None:
    e = cp.Expect(kind="mapped", prot=1, va=0, pfn=0, count=0, entries=0, label="x")
    m = ModuleResult(spec=ModuleSpec("garbage", params={"header": "1"}), insmod_rc=0,
                     dmesg=KTAP_OK, suites=ktap.parse_ktap(KTAP_OK),
                     stops=[Stop(cpu=0, expect=e, checks=[], index=1, error="bad magic 0x1")])
    assert [r.text for r in m.verdict().reasons if r.kind == "checkpoint"] == [
        "checkpoint 1 of garbage: bad magic 0x1"]
