"""The whole `make run` path for real, and proofs that its checks can fail."""

import json
import os
import signal
import subprocess
import time

import pytest

from harness.core.hexjson import read_int

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
PFN_4G = 0x100000
# kmap_local slots are fixmap entries: __fix_to_virt(FIX_KMAP_BEGIN + idx), just below
# FIXADDR_TOP = 0xfffff000 (6.12, NR_CPUS=4: 0xfffbb000 down to 0xfff38000)
FIXMAP_LOW, FIXMAP_TOP = 0xFFB00000, 0xFFFFF000


BASIC = ("--module", "kmap_local_basic")


def test_kmap_local_above_4g_checked_live(highmem_run):
    r = highmem_run(*BASIC)
    assert r.rc == 0, r.err
    assert r.report["meminfo_kB"]["HighTotal"] > 7 * 1024 * 1024
    checks = r.checks()
    mapped = [c for c in checks if c["kind"] == "mapped" and c["pfn"] >= PFN_4G]
    assert mapped, "no page above 4 GiB was checked"
    c = mapped[0]
    assert FIXMAP_LOW <= c["va"] < FIXMAP_TOP
    assert c["passed"] and c["actual"] == c["expected"]
    assert c["flags"] == "P RW A D G NX"
    assert read_int(c["qemu_phys"]) == c["pfn"] << 12 and isinstance(c["actual"], str)
    unmapped = [x for x in checks if x["kind"] == "unmapped" and x["va"] == c["va"]]
    assert unmapped and read_int(unmapped[0]["actual"]) == 0 and unmapped[0]["passed"]
    elapsed = r.out.split("Elapsed:")[-1]
    for phase in ("configure", "build", "image", "module", "gdb checks", "total"):
        assert phase in elapsed
    assert "boot" in elapsed or "restore" in elapsed


def test_guests_are_restored_from_the_snapshot_one_per_module(highmem_run):
    """The next run restores the snapshot the first one saved, a fresh guest for each
    module; --no-reset keeps one kernel; --no-snapshot boots."""
    highmem_run(*BASIC)  # saves the snapshot if none was there
    two = (*BASIC, "--module", "kmap_suite")
    r = highmem_run(*two)
    assert r.rc == 0, r.err
    boots = r.report["boots"]
    assert [b["restored"] for b in boots] == [True, True], boots
    assert "restore" in r.report["phases_s"] and "boot" not in r.report["phases_s"]
    assert all(m["passed"] for m in r.report["modules"])
    one = highmem_run(*two, "--no-reset")
    assert one.rc == 0 and len(one.report["boots"]) == 1
    cold = highmem_run(*BASIC, "--no-snapshot")
    assert cold.rc == 0 and not cold.report["boots"][0]["restored"]
    assert "boot" in cold.report["phases_s"]


def test_second_run_does_not_rebuild(highmem_run):
    highmem_run(*BASIC)
    r = highmem_run(*BASIC)
    assert r.rc == 0
    assert "make not run" in r.err and "config unchanged" in r.err


@pytest.mark.parametrize("mutation,field", [("pfn", "PFN:"), ("leak", "PTE: expected 0"),
                                            ("nx", "NX:"), ("slot", "VA:")])
def test_lying_module_turns_the_verdict_red(highmem_run, mutation, field):
    """Wrong expected PFN, a PTE left mapped, a live PTE with NX cleared, a wrong slot."""
    r = highmem_run(*BASIC, "--param", f"kmap_local_basic:mutate={mutation}")
    assert r.rc == 1
    failed = [c for c in r.checks() if not c["passed"]]
    assert failed and all(any(m.startswith(field) for m in c["mismatches"]) for c in failed)
    assert "Verdict: FAIL" in r.out
    statuses = {c["status"] for m in r.report["modules"] for c in m["ktap"]}
    assert statuses == {"FAIL"}


def test_bad_source_is_one_clear_error(highmem_run):
    r = highmem_run("--source", "/nonexistent/linux")
    assert r.rc == 2
    assert r.err.splitlines()[-2].startswith("error: kernel source /nonexistent/linux")
    assert r.err.splitlines()[-1].startswith("fix: ")
    assert "Traceback" not in r.err


def _ours(sockdir: str) -> str:
    p = subprocess.run(["pgrep", "-af", sockdir], capture_output=True, text=True)
    return "\n".join(line for line in p.stdout.splitlines() if "pgrep" not in line)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupt_leaves_no_qemu_or_gdb(tmp_path, sig):
    """Ctrl-C and SIGTERM: QEMU and gdb stopped, the report written with the module marked
    not run, exit 130/143. kill -9: QEMU dies with us (PDEATHSIG), and the next start
    sweeps the socket directory we could not remove."""
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path))
    p = subprocess.Popen([*HIGHMEM, "run", "--accel", "tcg", *BASIC], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 1800
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("== module") or time.monotonic() > deadline:
                break
        sock = (next(tmp_path.glob("run-*")) / "sockets").resolve()
        assert _ours(str(sock)), "QEMU should be running now"
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    for _ in range(50):
        if not _ours(str(sock)):
            break
        time.sleep(0.1)
    assert not _ours(str(sock)), "QEMU or gdb outlived the harness"
    run_dir = next(tmp_path.glob("run-*"))
    assert (run_dir / "console.log").stat().st_size > 0
    if sig == signal.SIGKILL:
        from harness.stages.sockdir import sweep_stale
        assert sock in sweep_stale(sock.parent) and not sock.exists()
        return
    assert p.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    assert not sock.exists()
    rep = json.loads((run_dir / "report.json").read_text())
    assert rep["interrupted"] and rep["modules"][0]["status"] == "NOT RUN"


def test_stale_tlb_turns_the_verdict_red(highmem_run):
    """tlb_suite mutate=noflush leaves a stale TLB entry (the PTE points at the new page,
    the CPU still translates the old one): every case must fail, naming the stale value,
    and the harness's content check must see the write land in the wrong page."""
    r = highmem_run("--module", "tlb_suite", "--param", "tlb_suite:mutate=noflush")
    assert r.rc == 1
    m = r.report["modules"][0]
    assert [c["status"] for c in m["ktap"]] == ["FAIL"] * 7
    dmesg = (next(r.run_dir.glob("modules/*tlb_suite*")) / "dmesg.txt").read_text()
    assert dmesg.count("stale TLB") >= 7
    content = [x for cp in m["checkpoints"] for c in cp["checks"] for x in c["mismatches"]
               if x.startswith("CONTENT:")]
    assert content, "the physical page read by the harness shows the misdirected write"
