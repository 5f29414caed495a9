"""Mainline for real: Debian unstable's linux-source-7.2 (`make deps KERNEL=7.2`) built with
its profile (HIGHMEM4G + X86_PAE: core/profile.py) and the default suite run on it,

* with the profile's 4 GiB guest: every case passes, XFAILs or SKIPs with its reason (the
  cases about a PFN above 4 GiB: this PAE kernel keeps no RAM there), HighTotal over 2 GiB
  (3 GiB of the pc guest lie below 4 GiB), the report says what the kernel discarded;
* 2-level (`--config highmem4g`, no PAE): the same, the skip reason naming the missing PAE;
* with 8 GiB (a test of its own): the kernel says, in its own words, that it uses only
  4 GiB (7.2 arch/x86/mm/init_32.c:567), HighTotal is what it is with 4 GiB, and the
  suite passes the same way. The revert of 83b2d345e178 (mutants/49-...) is what this
  boot catches (docs/mainline.md).

A 7.2 build is a cold kernel build the first time (~10 minutes, more on shared cores):
these run only with HIGHMEM_MAINLINE_TESTS=1, never in a plain `make test`.
"""

import os
import re
from pathlib import Path

import pytest

from harness.core.meminfo import TRIM_MESSAGE
from harness.stages.source import find_named

TARBALL = Path("linux-source-7.2.tar.xz")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.environ.get("HIGHMEM_MAINLINE_TESTS"),
                       reason="a 7.2 kernel build of its own: HIGHMEM_MAINLINE_TESTS=1"),
    pytest.mark.skipif(not find_named(TARBALL).exists(),
                       reason="no linux-source-7.2: run 'make deps KERNEL=7.2'"),
]
ABOVE_4G_SKIP = "needs a PFN above 4 GiB: this PAE kernel keeps no RAM above 4 GiB"
NO_PAE_SKIP = "needs a PFN above 4 GiB: no PAE (CONFIG_HIGHMEM4G)"
ABOVE_4G_CASES = {"kmap_local_above_4g", "kmap_atomic_above_4g", "kmap_above_4g",
                  "kmap_batch_above_4g", "vmap_above_4g", "kmap_local_two_pages"}
KIB_PER_GIB = 1024 * 1024


def _judge_suite(report: dict, reason: str = ABOVE_4G_SKIP) -> list[dict]:
    """Every case passed, XFAILed or SKIPped, the above-4 GiB ones with the reason."""
    cases = [c for m in report["modules"] for c in m["ktap"]]
    skipped = {c["name"] for c in cases
               if c["status"] == "SKIP" and reason in (c["directive"] or "")}
    assert ABOVE_4G_CASES <= skipped, sorted(skipped)
    bad = [(c["name"], c["status"], c["directive"]) for c in cases
           if c["status"] not in ("PASS", "XFAIL", "SKIP")]
    assert not bad, bad
    assert len([c for c in cases if c["status"] == "PASS"]) > 40
    return cases


def test_suite_on_7_2_pae_4g(highmem_run):
    r = highmem_run("--source", str(TARBALL))
    assert r.rc == 0, r.out[-3000:]
    report = r.report
    assert report["kernel"]["release"].startswith("7.2")
    config = (r.run_dir / "kernel.config").read_text()
    assert "CONFIG_X86_PAE=y" in config and "CONFIG_HIGHMEM4G=y" in config
    assert "CONFIG_HIGHMEM64G" not in config
    _judge_suite(report)
    high = report["meminfo_kB"]["HighTotal"]
    assert 2 * KIB_PER_GIB < high < 3 * KIB_PER_GIB, high
    assert "guest 4G: the kernel keeps 3 GiB (below 4 GiB; 1 GiB above 4 GiB discarded" in \
        report["memory_note"]
    # PAE: the PTEs checked are 64-bit with NX, all below 4 GiB
    pfns = [c["pfn"] for c in r.checks() if c.get("pfn") is not None]
    assert pfns and max(pfns) < 0x100000


def test_suite_on_7_2_2level(highmem_run):
    r = highmem_run("--source", str(TARBALL), "--config", "highmem4g")
    assert r.rc == 0, r.out[-3000:]
    config = (r.run_dir / "kernel.config").read_text()
    assert "# CONFIG_X86_PAE is not set" in config and "CONFIG_HIGHMEM4G=y" in config
    _judge_suite(r.report, NO_PAE_SKIP)
    high = r.report["meminfo_kB"]["HighTotal"]
    assert 2 * KIB_PER_GIB < high < 3 * KIB_PER_GIB, high
    assert "no PAE: MAX_NONPAE_PFN" in r.report["memory_note"]


def test_8g_boot_of_7_2_pae_trims_to_4g(highmem_run):
    r = highmem_run("--source", str(TARBALL), "--memory", "8G", "--no-snapshot")
    assert r.rc == 0, r.out[-3000:]
    dmesg = (r.run_dir / "boot-1" / "dmesg.txt").read_text()
    assert TRIM_MESSAGE in dmesg, dmesg[:3000]
    report = r.report
    high = report["meminfo_kB"]["HighTotal"]
    assert 2 * KIB_PER_GIB < high < 3 * KIB_PER_GIB, high  # what a 4 GiB guest has
    note = report["memory_note"]
    assert "guest 8G: the kernel keeps 3 GiB (below 4 GiB; 5 GiB above 4 GiB discarded" in note
    assert f'the kernel said "{TRIM_MESSAGE}"' in note
    assert re.search(r"Memory: HighTotal \d+ kB.*guest 8G", r.out)
    _judge_suite(report)
