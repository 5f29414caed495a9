"""Broken kernels and modules are test results, never an aborted run (the failure
catalogue, tests/catalogue/): one real run of tests/integration/failing/suite.yaml, where
every bad module is followed by a healthy one, and a kernel that panics while booting."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
SUITE = Path(__file__).parent / "failing" / "suite.yaml"


def _ours(text: str) -> str:
    p = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True)
    return "\n".join(line for line in p.stdout.splitlines() if "pgrep" not in line)


@pytest.fixture(scope="module")
def catalogue_run(tmp_path_factory, request):
    art = tmp_path_factory.mktemp("catalogue")
    accel = request.config.getoption("--highmem-accel") or "auto"
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(art))
    p = subprocess.run([*HIGHMEM, "run", str(SUITE), "--accel", accel], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    run_dir = next(art.glob("run-*"))
    return p, run_dir, json.loads((run_dir / "report.json").read_text())


def _module(report: dict, index: int) -> dict:
    return report["modules"][index]


def test_the_run_goes_on_and_exits_1(catalogue_run):
    p, run_dir, rep = catalogue_run
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert len(rep["modules"]) == 22, "every module of the suite is in the report"
    assert "Verdict: FAIL" in p.stdout and "Summary" in p.stdout
    assert (run_dir / "report.txt").exists()


def test_every_healthy_module_after_a_bad_one_passed(catalogue_run):
    _, _, rep = catalogue_run
    healthy = [m for m in rep["modules"] if m["name"] in ("cat_healthy", "cat_healthy2",
                                                           "cat_no_checkpoint")]
    assert len(healthy) == 5  # cat_healthy x3, cat_healthy2, cat_no_checkpoint
    for m in healthy:
        assert m["passed"], (m["name"], m["reasons"])


@pytest.mark.parametrize("index,kind,words", [
    (0, "crash", ["oops in cat_null_deref", "NULL pointer dereference",
                  "EIP cat_null_deref_init"]),
    (2, "crash", ["oops in cat_bug_on", "kernel BUG at"]),
    (3, "hang", ["insmod cat_spin did not return within 5 s", "last kernel message",
                 "cat_spin_init"]),
    (5, "hang", ["insmod cat_sleep did not return within 5 s"]),
    (10, "insmod", ["insmod cat_enomem exited 1"]),
    (14, "build", ["cat_no_compile did not compile", "cat_no_compile.c:", "error:"]),
    (16, "crash", ["oops in cat_exit_oops", "at rmmod", "NULL pointer dereference"]),
    (20, "crash", ["QEMU exited while cat_panic ran", "Kernel panic - not syncing"]),
])
def test_each_failure_has_its_cause_in_one_line(catalogue_run, index, kind, words):
    _, _, rep = catalogue_run
    m = _module(rep, index)
    assert not m["passed"]
    assert m["failure"]["kind"] == kind, m["reasons"]
    line = m["reasons"][0]
    assert "\n" not in line
    for w in words:
        assert w in line, line


@pytest.mark.parametrize("index,number,words", [
    (6, 1, "bad magic 0x12345678"), (7, 1, "version 99"),
    (8, 3, "cannot read a struct hm_expect at 0x1000"), (17, 1, ""),
])
def test_a_malformed_checkpoint_is_named_and_the_module_goes_on(catalogue_run, index, number,
                                                                words):
    """Bad magic, bad version, a garbage pointer, an absurd range: named by number; the
    module is not crashed by it, and the good checkpoints after it are judged."""
    _, _, rep = catalogue_run
    m = _module(rep, index)
    assert m["failure"] is None, m["reasons"]
    bad = [r for r in m["reasons"] if r.startswith(f"checkpoint {number} of {m['name']}:")]
    assert bad and words in bad[0], m["reasons"]
    good = [c for cp in m["checkpoints"] if not cp["error"] for c in cp["checks"]]
    assert good and all(c["passed"] for c in good), "the checkpoints after it were judged"


def test_checkpoints_in_module_exit_are_judged(catalogue_run):
    _, _, rep = catalogue_run
    m = _module(rep, 18)
    assert m["passed"], m["reasons"]
    assert len(m["checkpoints"]) == 4


def test_crashed_cases_and_kernel_messages_fail(catalogue_run):
    _, _, rep = catalogue_run
    short = _module(rep, 19)
    assert [c["status"] for c in short["ktap"]] == ["PASS", "CRASHED", "CRASHED"]
    bug_on = _module(rep, 2)
    assert [c["status"] for c in bug_on["ktap"]] == ["PASS", "CRASHED"]
    assert "no KTAP results in the kernel log" in _module(rep, 12)["reasons"]
    assert any(r.startswith("unexpected kernel message: WARNING:")
               for r in _module(rep, 13)["reasons"])


def test_each_module_keeps_its_console_dmesg_and_gdb_transcript(catalogue_run):
    _, run_dir, rep = catalogue_run
    for m in rep["modules"]:
        d = Path(m["artifacts"])
        assert d.is_dir() and d.parent == run_dir / "modules"
        assert (d / "result.txt").exists() and (d / "dmesg.txt").exists()
    spin = Path(_module(rep, 3)["artifacts"])
    assert (spin / "console.log").exists()
    assert "cat_spin_loop" in (spin / "dmesg.txt").read_text()
    assert "NULL pointer" in (Path(_module(rep, 0)["artifacts"]) / "dmesg.txt").read_text()
    assert (Path(_module(rep, 6)["artifacts"]) / "gdb-mi.log").stat().st_size > 0
    assert len(rep["boots"]) >= 6 and all(b["passed"] for b in rep["boots"])


def test_nothing_is_left_behind(catalogue_run):
    _, run_dir, _ = catalogue_run
    sock = (run_dir / "sockets").resolve()
    assert not sock.exists(), "the socket directory of the last guest was removed"
    assert not _ours(str(sock)), "QEMU or gdb outlived the run"


def test_a_kernel_that_panics_while_booting_is_a_failing_boot_item(highmem_run):
    """rdinit=/bin/busybox: init prints busybox's help and exits, the kernel panics
    ('Attempted to kill init'): the boot item fails with the panic line, the module is
    NOT RUN, exit 1."""
    r = highmem_run("--module", "kmap_local_basic", "--append", "rdinit=/bin/busybox",
                    timeout=600)
    assert r.rc == 1, r.err[-2000:]
    boot = r.report["boots"][0]
    assert boot["failure"]["kind"] == "boot"
    assert "Kernel panic - not syncing: Attempted to kill init" in boot["failure"]["cause"]
    assert boot["console_tail"] and boot["seconds"] < 60
    m = r.report["modules"][0]
    assert m["status"] == "NOT RUN" and "did not boot" in m["reasons"][0]
    assert "Boot" in r.out and "Verdict: FAIL" in r.out and "Traceback" not in r.err


def test_a_huge_range_is_judged_within_the_timeout_or_named(catalogue_run):
    """20,000 PTEs at one checkpoint, under a 20 s module timeout that counts the time
    stopped there: judged in full (reading RAM through the mapping takes well under a
    second), or, on a slower reader, a hang naming how many were judged."""
    _, _, rep = catalogue_run
    m = _module(rep, 9)
    if m["failure"] is not None:
        assert m["failure"]["kind"] == "hang", m["reasons"]
        assert "time at checkpoints" in m["reasons"][0] and "judged" in m["reasons"][0]
        return
    assert m["passed"], m["reasons"]
    assert sum(len(cp["checks"]) for cp in m["checkpoints"]) == 20000


def test_crashes_and_hangs_are_recovered_by_restoring_the_snapshot(catalogue_run):
    """After the first boot every guest is restored from the snapshot (a clean kernel per
    module), also after each crash and hang: no cold boot after the first (which is itself
    a restore when an earlier run of this kernel and image saved the snapshot)."""
    _, _, rep = catalogue_run
    boots = rep["boots"]
    assert boots[0]["passed"]
    assert len(boots) > 10 and all(b["restored"] for b in boots[1:]), \
        [(b["number"], b["restored"], b["reasons"]) for b in boots]
