"""Kernel messages that changed shape between 6.12 and 7.2, on recorded logs: the WARNING line
(7.2 kernel/panic.c:1082 `WARNING: FILE:LINE at FUNC+off, CPU#n: comm/pid`), which the
harness must see as trouble and the default suite's expected/allowed patterns must match in
both forms. The 7.2 logs are the dmesg of real modules on the 7.2 PAE-4G guest
(tests/unit/data/mainline/). No VM."""

import re
from pathlib import Path

import pytest

from harness.core.meminfo import TRIM_MESSAGE
from harness.core.suite import ModuleSpec, missing_expected, trouble_lines, unexpected_trouble
from harness.core.suitefile import DEFAULT_SUITE_FILE, load_suite

DATA = Path(__file__).parent / "data" / "mainline"
# the 6.12 lines of the same WARNs (a 6.12 run of the default suite, this machine)
WARN_612 = {
    "helpers_suite": "WARNING: CPU: 1 PID: 68 at mm/highmem.c:173 __kmap_to_page+0x3b/0xe1",
    "which=order": "WARNING: CPU: 1 PID: 68 at mm/highmem.c:623 kunmap_local_indexed+0x66/0xbc",
    "which=invalid_page": "WARNING: CPU: 1 PID: 68 at mm/vmalloc.c:560 "
                          "vmap_small_pages_range_noflush+0x14f/0x1d9",
    "which=overflow": "WARNING: CPU: 1 PID: 68 at mm/highmem.c:663 "
                      "__kmap_local_sched_out+0x29/0x62",
}
WARN_72 = {
    "helpers_suite": "WARNING: mm/highmem.c:173 at __kmap_to_page+0x3b/0xe1, CPU#1: insmod/68",
    "which=order": (DATA / "7.2-kmap_local_misuse-order.dmesg").read_text(),
    "which=invalid_page": (DATA / "7.2-promise_suite-invalid_page.dmesg").read_text(),
    "which=overflow": "WARNING: mm/highmem.c:663 at __kmap_local_sched_out+0x29/0x62, "
                      "CPU#1: insmod/68",
}


def spec(key: str) -> ModuleSpec:
    specs, _configs, _dirs = load_suite(DEFAULT_SUITE_FILE)
    if key == "helpers_suite":
        return next(s for s in specs if s.name == key)
    return next(s for s in specs if s.params == key)


def test_a_7_2_warning_is_trouble():
    lines = trouble_lines(WARN_72["which=order"])
    assert lines == ["WARNING: mm/highmem.c:623 at kunmap_local_indexed+0x66/0x108, CPU#0: "
                     "insmod/67"]
    assert trouble_lines("WARNING: at foo+0x1/0x2, CPU#0: swapper/0\n") == [
        "WARNING: at foo+0x1/0x2, CPU#0: swapper/0"]
    # an unexpected 7.2 WARN fails a module that expects nothing
    assert unexpected_trouble(ModuleSpec("kmap_local_basic"), WARN_72["which=order"])


@pytest.mark.parametrize("key", ["which=order", "which=invalid_page"])
@pytest.mark.parametrize("log", [WARN_612, WARN_72], ids=["6.12", "7.2"])
def test_the_suites_expected_warns_match_both_forms(key, log):
    s = spec(key)
    assert missing_expected(s, log[key]) == []
    assert unexpected_trouble(s, log[key]) == []
    assert missing_expected(s, "ok 1 nothing warned\n") == list(s.expect_log)  # can fail


@pytest.mark.parametrize("key", ["helpers_suite", "which=overflow"])
@pytest.mark.parametrize("log", [WARN_612, WARN_72], ids=["6.12", "7.2"])
def test_the_suites_allowed_warns_match_both_forms(key, log):
    s = spec(key)
    assert unexpected_trouble(s, log[key]) == []
    other = re.sub(r"mm/highmem\.c:\d+", "mm/vmalloc.c:1", log[key])
    assert unexpected_trouble(s, other)  # only that WARN is allowed


def test_the_7_2_boot_says_it_trims_memory_above_4g():
    boot = (DATA / "7.2-pae4g-4G-boot.dmesg").read_text()
    assert TRIM_MESSAGE in boot
    assert trouble_lines(boot) == []
