"""Causes read from kernel text (harness/core/failure.py), and the pass/fail rule of a module
(harness/core/results.py), on recorded console and dmesg lines."""

from pathlib import Path

from harness.core import ktap
from harness.core.failure import (
    Failure,
    crash_lines,
    crash_summary,
    last_line,
    nearest_symbol,
    panic_line,
    tail,
)
from harness.core.results import (
    BootResult,
    ModuleResult,
    Stop,
    boot_messages,
    invalid_expect,
    not_run,
)
from harness.core.suite import ModuleSpec

DATA = Path(__file__).parent / "data" / "failures"
OOPS = (DATA / "oops_null.txt").read_text()
PANIC = (DATA / "panic_boot.txt").read_text()


def test_oops_summary_names_the_fault_and_the_function():
    s = crash_summary(OOPS)
    assert s is not None
    assert s.startswith("BUG: kernel NULL pointer dereference, address: 00000000")
    assert "Oops: Oops: 0002 [#1] PREEMPT SMP" in s
    assert s.endswith("EIP cat_null_deref_init+0xd/0x1000 [cat_null_deref]")


def test_no_crash_in_a_healthy_log():
    assert crash_summary("[ 1.0] hello\nok 1 x\n") is None
    assert crash_lines("WARNING: CPU: 0 PID: 1 at mm/highmem.c:1 f+0x1/0x2") == []


def test_panic_line_is_the_last_panic():
    assert panic_line(PANIC) == ("Kernel panic - not syncing: Attempted to kill init! "
                                 "exitcode=0x00000009")
    assert panic_line("nothing") is None


def test_last_line_skips_shell_markers_and_blank_lines():
    assert last_line("a\nb line\n@@HM3RC=0@@\n\n") == "b line"
    assert last_line("") == "(nothing)"
    assert tail("a\n\nb\nc\n", 2) == ["b", "c"]


def test_nearest_symbol_of_a_module_address():
    syms = ("c1000000 T _text\nf8a0c000 t cat_spin_init\t[cat_spin]\n"
            "f8a0c100 t cat_spin_exit\t[cat_spin]\nf8a0c050 d some_data\t[cat_spin]\n")
    assert nearest_symbol(0xF8A0C01C, syms) == "cat_spin_init+0x1c [cat_spin]"
    assert nearest_symbol(0xF8A0C104, syms) == "cat_spin_exit+0x4 [cat_spin]"
    assert nearest_symbol(0x1000, syms) is None


def test_failure_line_is_prefixed_once():
    assert Failure("hang", "insmod x did not return").line == "hang: insmod x did not return"
    assert Failure("crash", "crash of x").line == "crash of x"


def _module(**kw) -> ModuleResult:
    return ModuleResult(spec=ModuleSpec("m"), **kw)


KTAP_2_OF_1 = "KTAP version 1\n1..2\nok 1 first\n"


def test_a_crash_fails_the_module_and_its_unreported_cases():
    m = _module(insmod_rc=137, dmesg=KTAP_2_OF_1 + OOPS, suites=ktap.parse_ktap(KTAP_2_OF_1),
                failure=Failure("crash", "oops in m: BUG: kernel NULL pointer dereference"))
    why = m.reasons()
    assert why[0] == "crash: oops in m: BUG: kernel NULL pointer dereference"
    assert any(r.startswith("KTAP case") and "CRASHED" in r for r in why)
    assert not m.passed and m.ran


def test_not_run_and_build_failures_give_only_their_cause():
    m = not_run(ModuleSpec("m"), "the run was interrupted before this module")
    assert m.reasons() == ["not-run: the run was interrupted before this module"]
    assert not m.ran
    b = _module(failure=Failure("build", "m did not compile: m.c:3:1: error: x"))
    assert b.reasons() == ["build: m did not compile: m.c:3:1: error: x"]


def test_a_malformed_checkpoint_is_named_by_number_and_module():
    bad = Stop(cpu=0, expect=invalid_expect(0x1000, 3), error="bad magic 0x12345678", index=3)
    m = _module(insmod_rc=0, dmesg="KTAP version 1\n1..1\nok 1 a\n",
                suites=ktap.parse_ktap("KTAP version 1\n1..1\nok 1 a\n"), stops=[bad])
    assert m.reasons() == ["checkpoint 3 of m: bad magic 0x12345678"]
    assert not bad.passed and bad.expect.kind == "invalid"


def test_a_passing_module_and_cases_are_not_mutated():
    text = "KTAP version 1\n1..1\nok 1 a\n"
    m = _module(insmod_rc=0, dmesg=text, suites=ktap.parse_ktap(text))
    assert m.passed
    spec = ModuleSpec("m", expect_log=("kernel BUG at",), crashes=True)
    crashed = ModuleResult(spec=spec, insmod_rc=139, dmesg=KTAP_2_OF_1 + "kernel BUG at x!",
                           suites=ktap.parse_ktap(KTAP_2_OF_1))
    assert [c.status for c in crashed.cases] == ["PASS", "XFAIL"]
    assert [c.status for c in crashed.suites[0].cases] == ["PASS", "CRASHED"]  # not mutated


def test_boot_item_fails_on_failure_or_warnings():
    assert BootResult(1).passed
    warn = "WARNING: CPU: 0 PID: 1 at mm/highmem.c:9 kmap_local_init+0x1/0x2"
    b = BootResult(1, messages=boot_messages(f"[ 0.1] {warn}\n"))
    assert b.reasons() == [f"kernel message while booting: {warn}"]
    f = BootResult(2, failure=Failure("boot", "the kernel panicked while booting: x"))
    assert f.reasons() == ["boot: the kernel panicked while booting: x"]

