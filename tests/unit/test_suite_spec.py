"""Suite selection and the expected-BUG/WARN verdicts, on recorded kernel log lines."""

import pytest

from harness.core.suite import (
    ModuleSpec,
    SelectionError,
    missing_expected,
    params_problem,
    select,
    unexpected_trouble,
)
from harness.core.suitefile import DEFAULT_SUITE_FILE, load_suite

DEFAULT_SUITE = load_suite(DEFAULT_SUITE_FILE)[0]

WARN = "WARNING: CPU: 1 PID: 47 at mm/highmem.c:623 kunmap_local_indexed+0x66/0xbc"
BUG = "kernel BUG at mm/highmem.c:480!\nOops: invalid opcode: 0000 [#1] PREEMPT SMP"
AFTER = "WARNING: CPU: 1 PID: 51 at mm/highmem.c:663 __kmap_local_sched_out+0x29/0x62"


def spec(params: str) -> ModuleSpec:
    return next(s for s in DEFAULT_SUITE if s.name == "kmap_local_misuse" and s.params == params)


def test_expected_warn_is_required_and_accounted_for():
    s = spec("which=order")
    assert not missing_expected(s, WARN) and not unexpected_trouble(s, WARN)
    assert missing_expected(s, "nothing happened")


def test_expected_bug_allows_its_oops_and_aftermath_only():
    s = spec("which=overflow")
    assert not unexpected_trouble(s, f"{BUG}\n{AFTER}")
    other = "BUG: unable to handle page fault for address: fffbb000"
    assert unexpected_trouble(s, f"{BUG}\n{other}") == [other]


def test_plain_module_fails_on_any_warn():
    assert unexpected_trouble(ModuleSpec("kmap_suite"), WARN) == [WARN]


def test_select():
    assert select(DEFAULT_SUITE, [], {}) == DEFAULT_SUITE
    assert all(s.timeout == 60 for s in select(DEFAULT_SUITE, [], {}, 60))
    misuse = select(DEFAULT_SUITE, ["kmap_local_misuse"], {}, 60)
    assert [s.params for s in misuse] == ["which=order", "which=overflow"]
    one = select(DEFAULT_SUITE, ["kmap_local_misuse"], {"kmap_local_misuse": "which=overflow"}, 60)
    assert len(one) == 1 and one[0].crashes and one[0].expect_log
    mine = select(DEFAULT_SUITE, ["my_mod"], {"my_mod": "x=1"}, 60)
    assert mine == (ModuleSpec("my_mod", "x=1", timeout=60),)


def test_select_keeps_the_order_of_module_options():
    names = ["vmap_suite", "my_mod", "kmap_local_misuse", "kmap_local_basic", "vmap_suite"]
    run = select(DEFAULT_SUITE, names, {})
    assert [s.name for s in run] == ["vmap_suite", "my_mod", "kmap_local_misuse",
                                     "kmap_local_misuse", "kmap_local_basic"]


def test_param_for_a_module_not_in_the_run():
    with pytest.raises(SelectionError) as e:
        select(DEFAULT_SUITE, ["kmap_suite", "vmap_suite"], {"kmap_local_basic": "mutate=pfn"})
    assert e.value.what == ("--param for kmap_local_basic, which is not in this run "
                            "(the run has: kmap_suite, vmap_suite)")
    assert e.value.fix.startswith("add --module kmap_local_basic")
    with pytest.raises(SelectionError, match="the run has: kmap_local_basic, kmap_local_suite"):
        select(DEFAULT_SUITE, [], {"my_mod": "x=1"})


@pytest.mark.parametrize("params", ["a=1", "a=1 b=2", 'label="a b"', "arr=1,2,3", "x=", ""])
def test_good_params(params):
    assert params_problem(params) is None


@pytest.mark.parametrize("params,what", [
    ("depth", "'depth' in 'depth' is not KEY=VALUE"),
    ("a=1;reboot", "';' in 'a=1;reboot' is not KEY=VALUE"),
    ("a=1 | b=2", "'|' in"),
    ("a=1 && reboot", "'&&' in"),
    ("a=`id`", "holds $ or `"),
    ("a=$HOME", "holds $ or `"),
    ('a="open', "does not split into words"),
    ("1a=2", "is not KEY=VALUE"),
    ("=2", "is not KEY=VALUE"),
])
def test_bad_params(params, what):
    assert what in (params_problem(params) or "")
    with pytest.raises(SelectionError) as e:
        select(DEFAULT_SUITE, ["kmap_suite"], {"kmap_suite": params})
    assert e.value.what.startswith(f"--param kmap_suite:{params}: ")
    assert "\n" not in e.value.what and "KEY=VALUE" in e.value.fix
