"""Live-mapping inspection for real (issue 5): `highmem gdb --hold` driven through a
terminal, the CLI reports as JSON, and the walker checked against QEMU's own `info tlb`.

hm_hold.ko holds two kmap()s (slots 1 and 2 on a fresh boot: map_new_virtual() starts at
last_pkmap_nr + 1), a stale kmap (count 1), a vmap of 8 pages and a kmap_local in a kernel
thread; it prints "hm_hold: <kind> va=0x... pfn=0x..." for each.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from harness.core.options import RunOptions
from harness.core.pte import PAE_PFN_MASK, decode_entry
from harness.frontends.inspect_args import parse_hold_lines
from harness.frontends.inspect_cli import load_hold
from harness.kernel import reports
from harness.kernel.target import Kernel
from harness.operations import guest_session, stage_lab
from harness.stages.mi_target import stopped_target

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
PROMPT = r"\(gdb\) "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TLB_LINE = re.compile(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ([-XGPDACTUW]{9})$")
TLB_FLAGS = (("X", 63), ("G", 8), ("P", 7), ("D", 6), ("A", 5), ("C", 4), ("T", 3),
             ("U", 2), ("W", 1))                 # QEMU target/i386/monitor.c print_pte()


def _accel(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--highmem-accel") or "auto"


def _ours(pattern: str) -> str:
    p = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return "\n".join(x for x in p.stdout.splitlines() if "pgrep" not in x)


class Session:
    """`highmem gdb --hold` in a pseudo-terminal, one command at a time."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child

    def run(self, command: str, timeout: float = 120) -> str:
        self.child.sendline(command)
        self.child.expect(PROMPT, timeout=timeout)
        out = ANSI.sub("", str(self.child.before)).replace("\r\n", "\n")
        return out.split("\n", 1)[1] if "\n" in out else ""     # drop the echoed command


@pytest.fixture(scope="module")
def gdb_session(request, tmp_path_factory):
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path_factory.mktemp("gdb-artifacts")))
    child = pexpect.spawn(HIGHMEM[0], [*HIGHMEM[1:], "gdb", "--hold", "--accel",
                                       _accel(request)], cwd=REPO, env=env, encoding="utf-8",
                          codec_errors="replace", dimensions=(50, 220), timeout=3600)
    child.logfile_read = sys.stdout
    try:
        child.expect(r"Remote debugging using (\S+)/gdb\.sock", timeout=3600)
        sockdir = child.match.group(1)
        child.expect(PROMPT, timeout=600)
        yield Session(child), sockdir
        child.sendline("quit")
        if child.expect([r"\(y or n\)", pexpect.EOF], timeout=60) == 0:
            child.sendline("y")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    for _ in range(50):
        if not _ours(sockdir):
            break
        time.sleep(0.1)
    assert not _ours(sockdir), "QEMU or gdb outlived `highmem gdb`"


def test_hm_kmaps_lists_what_hm_hold_holds(gdb_session):
    s, _ = gdb_session
    held = {h["kind"]: h for h in parse_hold_lines(s.run("lx-dmesg"))}
    assert {"kmap above_4g", "kmap below_4g", "kmap stale", "kmap_local"} <= set(held)
    t0 = time.monotonic()
    text = s.run("hm-kmaps")
    sys.stdout.write(f"\nhm-kmaps took {time.monotonic() - t0:.2f} s end to end\n")
    lines = text.splitlines()
    for kind, count in (("kmap above_4g", 2), ("kmap below_4g", 2), ("kmap stale", 1)):
        va, pfn = held[kind]["va"], held[kind]["pfn"]
        row = [x for x in lines if f"{va:#010x}" in x and "pteval" not in x]
        assert len(row) == 1, (kind, text)
        fields = row[0].split()
        assert fields[1:3] == [f"{va:#010x}", str(count)] and f"{pfn:#x}" in fields, row
        assert ("stale: kunmap()ed" in row[0]) == (count == 1)
    local = held["kmap_local"]
    entry = [x for x in lines if f"{local['va']:#010x}" in x and "pteval" in x]
    assert entry and f"{local['pfn']:#x}" in entry[0].split(), text
    assert re.search(r"pid \d+ hm_hold on CPU \d \(not running", text), text
    as_json = json.loads(s.run("hm-kmaps --json"))
    assert {(x["va"], x["pfn"], x["count"]) for x in as_json["pkmap"]} >= {
        (held[k]["va"], held[k]["pfn"], c) for k, c in (("kmap above_4g", 2), ("kmap stale", 1))}
    task = next(t for t in as_json["tasks"] if t["comm"] == "hm_hold")
    assert (task["entries"][0]["va"], task["entries"][0]["pfn"]) == (local["va"], local["pfn"])


def test_hm_pte_prints_the_decoded_walk(gdb_session):
    s, _ = gdb_session
    held = {h["kind"]: h for h in parse_hold_lines(s.run("lx-dmesg"))}
    va, pfn = held["kmap above_4g"]["va"], held["kmap above_4g"]["pfn"]
    text = s.run(f"hm-pte {va:#x}")
    assert f"VA {va:#010x}: PKMAP slot {(va - 0xFF600000) >> 12}" in text
    assert re.search(r"PDPTE\s+\[\s*3\] @ 0x[0-9a-f]+ = [0-9a-f]{16}  P", text), text
    assert re.search(r"PMD\s+\[507\] @ 0x[0-9a-f]+ = [0-9a-f]{16}  P RW", text), text
    pte = re.search(r"PTE\s+\[\s*\d+\] @ 0x[0-9a-f]+ = ([0-9a-f]{16})  P RW A D G NX", text)
    assert pte and decode_entry(int(pte.group(1), 16)).pfn == pfn, text
    assert f"PFN {pfn:#x} (highmem, above 4 GiB)  struct page 0x" in text
    assert "pkmap_count" in text and "mapped, 1 user" in text
    vm = held["vmap[6]"]                                 # a lowmem page through vmalloc space
    assert f"PFN {vm['pfn']:#x} (lowmem)" in s.run(f"hm-pte {vm['va']:#x}")


def test_ctrl_c_stops_the_guest_not_the_harness(gdb_session):
    s, sockdir = gdb_session
    s.child.sendline("continue")
    s.child.expect("Continuing", timeout=30)
    time.sleep(1)
    s.child.sendintr()                          # SIGINT to the terminal's foreground group
    s.child.expect(PROMPT, timeout=60)
    assert "SIGINT" in str(s.child.before)
    assert "PKMAP (512 slots at 0xff600000)" in s.run("hm-kmaps")
    assert "qemu-system-i386" in _ours(sockdir)


def _cli(request, *args: str) -> tuple[dict, str, float]:
    t0 = time.monotonic()
    p = subprocess.run([*HIGHMEM, *args, "--json", "--accel", _accel(request)], cwd=REPO,
                       capture_output=True, text=True, timeout=3600, check=False)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout), p.stderr, took


def test_cli_kmaps_json(request):
    rep, err, took = _cli(request, "kmaps", "--hold")
    held = {h["kind"]: h for h in parse_hold_lines(err)}
    got = {x["va"]: (x["pfn"], x["count"], x["stale"]) for x in rep["pkmap"]}
    for kind, count in (("kmap above_4g", 2), ("kmap below_4g", 2), ("kmap stale", 1)):
        assert got[held[kind]["va"]] == (held[kind]["pfn"], count, count == 1)
    task = next(t for t in rep["tasks"] if t["comm"] == "hm_hold")
    assert task["entries"][0]["pfn"] == held["kmap_local"]["pfn"]
    sys.stdout.write(f"\nhighmem kmaps --hold --json: {took:.1f} s end to end\n")


def test_cli_pte_and_vmaps_json(request):
    rep, err, took = _cli(request, "pte", "0xff601000", "--hold")
    held = {h["kind"]: h for h in parse_hold_lines(err)}
    assert held["kmap above_4g"]["va"] == 0xFF601000          # the first kmap: slot 1
    assert rep["present"] and rep["pfn"] == held["kmap above_4g"]["pfn"]
    assert [lv["name"] for lv in rep["levels"]] == ["PDPTE", "PMD", "PTE"]
    assert rep["levels"][2]["flags"] == "P RW A D G NX" and rep["area"] == "PKMAP slot 1"
    sys.stdout.write(f"\nhighmem pte --hold --json: {took:.1f} s end to end\n")
    rep, err, _ = _cli(request, "vmaps", "--hold")
    vm = sorted((h["va"], h["pfn"]) for h in parse_hold_lines(err) if h["kind"][:4] == "vmap")
    area = next(a for a in rep["areas"] if a["start"] == vm[0][0])
    assert [(p["va"], p["pfn"]) for p in area["pages"]] == vm
    assert [p["highmem"] for p in area["pages"]] == [True] * 6 + [False] * 2


def test_cli_layout_json(request):
    rep, _, _ = _cli(request, "layout")
    assert rep["pae"] and rep["layout"]["page_offset"] == 0xC0000000
    assert rep["layout"]["pkmap_base"] == 0xFF600000
    assert all(": the PTE of" in c or "not set yet" in c for c in rep["checks"]), rep["checks"]


# -- the oracle: QEMU's own page walk --------------------------------------------------

def parse_tlb(text: str) -> dict[int, tuple[int, str]]:
    """`info tlb` (PAE): {va: (phys with the NX bit QEMU leaves in it masked out, flags)}."""
    out = {}
    for line in text.splitlines():
        m = TLB_LINE.match(line.strip())
        if m:
            out[int(m.group(1), 16)] = (int(m.group(2), 16) & PAE_PFN_MASK, m.group(3))
    return out


def tlb_flags(pte: int) -> str:
    return "".join(c if pte >> bit & 1 else "-" for c, bit in TLB_FLAGS)


@contextlib.contextmanager
def held_guest_on(opts: RunOptions, run_dir: Path):
    """A guest of our own with hm_hold loaded, spin=1: its kmap_local PTE stays present;
    (the session, hm_hold's lines), stopped on the way out."""
    lab = stage_lab(opts, run_dir)
    try:
        s = guest_session(lab, attach=True)
        yield s, parse_hold_lines(load_hold(s.shell, ["spin=1"]))
    finally:
        lab.close()


@pytest.fixture(scope="module")
def held_guest(request, tmp_path_factory):
    with held_guest_on(RunOptions(accel=_accel(request)),
                       tmp_path_factory.mktemp("oracle-run")) as guest:
        yield guest


def test_walker_agrees_with_qemu_info_tlb(held_guest):
    s, held = held_guest
    with stopped_target(s.gdb) as target:
        k = Kernel(target)
        lay = k.layout
        qemu = parse_tlb(s.checker.monitor.hmp("info tlb", target.cpu or 0))
        areas = {"PKMAP": range(lay.pkmap_base, lay.pkmap_va(lay.last_pkmap), 4096),
                 "kmap_local": range(lay.fix_to_virt(lay.fix_kmap_end),
                                     lay.fix_to_virt(lay.fix_kmap_begin) + 4096, 4096)}
        ours: dict[str, dict[int, tuple[int, str]]] = {}
        for name, vas in areas.items():
            ours[name] = {}
            for va in vas:
                w = k.walk(va)
                if w.phys is not None:
                    ours[name][va] = (w.phys, tlb_flags(w.pte or 0))
        report = reports.kmaps_report(target)
    for name, vas in areas.items():
        theirs = {va: e for va, e in qemu.items() if va in vas}
        assert ours[name] == theirs, f"{name}: walker {ours[name]} vs info tlb {theirs}"
    assert len(ours["PKMAP"]) >= 3 and len(ours["kmap_local"]) >= 1
    sys.stdout.write(f"\nwalker == info tlb for {len(ours['PKMAP'])} PKMAP and "
                     f"{len(ours['kmap_local'])} kmap_local entries\n")
    for h in held:
        if h["kind"].startswith("kmap"):
            assert ours["PKMAP" if h["kind"] != "kmap_local" else "kmap_local"][h["va"]][0] \
                == h["pfn"] << 12
    assert {(x.va, x.pte) for x in report.pkmap if x.pte & 1} == {
        (va, k.walk(va).pte) for va in ours["PKMAP"]}
    assert {x.va for x in report.kmap_local} == set(ours["kmap_local"])


def test_ram_mapping_agrees_with_monitor_xp(held_guest):
    """The two physical readers agree on every page-table page of the kernel's mappings
    (PKMAP, kmap_local slots, vmalloc, lowmem), and on the pages they map: the RAM file at
    the offsets QEMU's memory map gives, against the monitor's `xp` through gdb."""
    s, _ = held_guest
    ram = s.checker.ram
    assert ram is not None, "the guest runs with a shared RAM backend"
    with stopped_target(s.gdb) as target:
        k = Kernel(target)            # reads physical memory through `monitor xp`
        lay = k.layout
        vas = [*range(lay.pkmap_base, lay.pkmap_va(lay.last_pkmap), 4096 * 17),
               *range(lay.fix_to_virt(lay.fix_kmap_end), lay.fix_to_virt(lay.fix_kmap_begin)
                      + 4096, 4096),
               lay.vmalloc_start, lay.vmalloc_start + 0x100000, lay.page_offset + 0x100000]
        mapped = [w.phys for w in map(k.walk, vas) if w.phys is not None]
        data = {p & ~0xFFF: target.read_phys(p & ~0xFFF, 4096) for p in mapped[:40]}
        pages = {**k.pages, **data}
        differ = [hex(base) for base, via_xp in pages.items() if ram.read(base, 4096) != via_xp]
    assert len(k.pages) >= 4 and any(base >= 1 << 32 for base in data)
    assert not differ, f"pages that differ while the guest was stopped: {differ}"
    sys.stdout.write(f"\nRAM mapping == monitor xp on {len(pages)} pages\n")


def test_a_sigint_gdb_never_acts_on_is_made_good_through_qmp(held_guest, monkeypatch):
    """The interrupt's fallback: a SIGINT that gdb does not answer with a stop (seen once,
    right after a symbol load under load) is followed by a QMP stop, which QEMU's gdbstub
    reports to gdb as SIGINT; the guest stops, and resumes after. Without the fallback the
    same interrupt times out (the check can fail)."""
    s, _ = held_guest
    gdb = s.gdb
    assert gdb.fallback_stop is not None
    monkeypatch.setattr(gdb, "_sigint", lambda proc: None)  # the SIGINT is lost
    t0 = time.monotonic()
    with stopped_target(gdb, timeout=10) as target:
        assert target.cr3 > 0
    assert time.monotonic() - t0 < 8
    gdb.log.flush()
    assert "the VM stopped through QMP" in Path(gdb.log.name).read_text()
    fallback, gdb.fallback_stop = gdb.fallback_stop, None
    try:
        with pytest.raises(Exception, match="did not stop within 3 s"):
            gdb.interrupt(timeout=3)
    finally:
        gdb.fallback_stop = fallback
        fallback()  # the guest stops (the stop reply reaches gdb) and runs again
        assert gdb.wait_stopped(10) is not None
        gdb.resume()
