"""Matrix cells for real: the 2-level (CONFIG_HIGHMEM4G, no PAE) kernel of
matrices/default.yaml booted with 4 GiB, its live page walk checked against QEMU's own
`info tlb`, and the default suite run on it (the cases about a PFN above 4 GiB skipped with
that reason, every other case run and passing).

Each cell costs a cold kernel build the first time (15+ minutes on shared cores), so these
run only with HIGHMEM_MATRIX_TESTS=1 (`make matrix-test`), never in a plain `make test`.
"""

import os
import re
import subprocess
import sys

import pytest

from harness.workflows.matrix.model import DEFAULT_MATRIX_FILE, load_matrix
from harness.core.options import RunOptions
from harness.core.pagewalk import walk
from harness.kernel import reports
from harness.kernel.target import Kernel
from harness.stages.mi_target import stopped_target

from .conftest import REPO
from .test_inspect import _accel, held_guest_on, parse_tlb, tlb_flags

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    not os.environ.get("HIGHMEM_MATRIX_TESTS"),
    reason="matrix cells need their own kernel builds: HIGHMEM_MATRIX_TESTS=1 (make matrix-test)")]
CELL_4G = "6.12-highmem4g-smp2-4G"
ABOVE_4G_SKIP = "needs a PFN above 4 GiB: no PAE (CONFIG_HIGHMEM4G)"


def cell_options(cell_id: str, accel: str) -> RunOptions:
    """The cell's options, booted (not restored: a restored guest's gdb has no symbols)."""
    cell = load_matrix(DEFAULT_MATRIX_FILE).cell(cell_id)
    return cell.options(RunOptions(accel=accel, snapshot=False))


@pytest.fixture(scope="module")
def guest_4g(request, tmp_path_factory):
    """The highmem4g cell's guest with hm_hold loaded (spin=1: its kmap_local stays)."""
    with held_guest_on(cell_options(CELL_4G, _accel(request)),
                       tmp_path_factory.mktemp("cell-4g")) as guest:
        yield guest


def test_2level_walk_agrees_with_qemu_info_tlb(guest_4g):
    s, held = guest_4g
    with stopped_target(s.gdb) as target:
        k = Kernel(target)
        assert not k.pae and k.pte_size == 4
        lay = k.layout
        qemu = parse_tlb(s.checker.monitor.hmp("info tlb", target.cpu or 0))
        areas = {"PKMAP": range(lay.pkmap_base, lay.pkmap_va(lay.last_pkmap), 4096),
                 "kmap_local": range(lay.fix_to_virt(lay.fix_kmap_end),
                                     lay.fix_to_virt(lay.fix_kmap_begin) + 4096, 4096),
                 "lowmem": range(lay.page_offset, lay.page_offset + (8 << 20), 4096)}
        ours: dict[str, dict[int, tuple[int, str]]] = {}
        for name, vas in areas.items():
            ours[name] = {}
            for va in vas:
                w = k.walk(va)
                assert [lv.name for lv in w.levels][:1] == ["PDE"], w.levels
                if w.phys is not None and w.pte is not None and len(w.levels) == 2:
                    ours[name][va] = (w.phys, tlb_flags(w.pte))
        # the comparison can fail: the same tables read as PAE give other translations
        as_pae = {va: walk(k.cr3, va, k.phys, pae=True).phys for va in ours["PKMAP"]}
        kmaps = reports.kmaps_report(target)
        layout = reports.layout_report(target)
    assert lay.last_pkmap == 1024 and lay.pkmap_base % (4 << 20) == 0   # 2-level: 4 MiB PMD
    for name in ("PKMAP", "kmap_local"):
        theirs = {va: e for va, e in qemu.items() if va in areas[name]}
        assert ours[name] == theirs, f"{name}: walker {ours[name]} vs info tlb {theirs}"
    assert len(ours["PKMAP"]) >= 3 and len(ours["kmap_local"]) >= 1
    assert all(as_pae[va] != ours["PKMAP"][va][0] for va in as_pae), as_pae
    for h in held:
        if h["kind"].startswith("kmap"):
            area = "PKMAP" if h["kind"] != "kmap_local" else "kmap_local"
            assert ours[area][h["va"]][0] == h["pfn"] << 12
            assert h["pfn"] < 0x100000                   # no RAM above 4 GiB without PAE
    assert {(x.va, x.pte) for x in kmaps.pkmap if x.pte & 1} == {
        (va, k.walk(va).pte) for va in ours["PKMAP"]}
    assert not layout.pae and "2-level" in layout.format()
    sys.stdout.write(f"\n2-level walker == info tlb for {len(ours['PKMAP'])} PKMAP and "
                     f"{len(ours['kmap_local'])} kmap_local entries\n")


def test_suite_on_the_highmem4g_cell(highmem_run):
    r = highmem_run("--config", "highmem4g", "--memory", "4G")
    assert r.rc == 0, r.out[-3000:]
    cases = [c for m in r.report["modules"] for c in m["ktap"]]
    skipped = {c["name"] for c in cases if c["status"] == "SKIP"
               and ABOVE_4G_SKIP in (c["directive"] or "")}
    assert {"kmap_local_above_4g", "kmap_atomic_above_4g", "kmap_above_4g",
            "kmap_batch_above_4g", "vmap_above_4g", "kmap_local_two_pages"} <= skipped
    ran = [c for c in cases if c["name"] not in skipped]
    assert len(ran) > 40 and all(c["status"] in ("PASS", "XFAIL") for c in ran)
    assert re.search(r"HighTotal \d+ kB", r.out)
    assert any(c["pfn"] is not None and c["pfn"] < 0x100000 for c in r.checks())


def test_pytest_plugin_parametrizes_items_by_cell(tmp_path, request):
    """`pytest SUITE --highmem-matrix matrices/quick.yaml`: each item once per cell, the
    cell id in its node id; the 2-level cell skips the case above 4 GiB."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q",
         "suites/default.yaml", "--highmem-matrix", "matrices/quick.yaml",
         "--highmem-accel", _accel(request), "--highmem-artifacts", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
    sys.stdout.write(p.stdout[-3000:])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    for cell in ("6.12-highmem64g-smp2-8G", "6.12-highmem4g-smp2-4G"):
        for item in ("boot", "kmap_local_basic::kmap_local_below_4g",
                     "kmap_local_basic::kernel_log"):
            assert f"PASSED suites/default.yaml::{cell}::{item}" in p.stdout
    assert f"SKIPPED [1] suites/default.yaml:0: SKIP {ABOVE_4G_SKIP}" in p.stdout
    assert "7 passed, 1 skipped" in p.stdout
    assert "PASSED suites/default.yaml::6.12-highmem64g-smp2-8G::kmap_local_basic::" \
        "kmap_local_above_4g" in p.stdout
