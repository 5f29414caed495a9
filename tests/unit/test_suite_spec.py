"""Suite selection and the expected-BUG/WARN verdicts, on recorded kernel log lines."""

from harness.suite import ModuleSpec, missing_expected, select, unexpected_trouble
from harness.suitefile import DEFAULT_SUITE_FILE, load_suite

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
