"""`highmem watch-kernel` for real (issue 20 item 3): the 6.12 PAE guest under a shell
workload on tmpfs and pipes, every kmap_local the kernel makes judged while live and after
its unmap — at least 1,000, no finding; and kwatch_planted.ko (kwatch/) making one mapping
of each API wrong just before its unmap: the watch names the field, exit 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
PLANTED = Path(__file__).parent / "kwatch"


def watch(tmp_path: Path, request: pytest.FixtureRequest, *args: str) -> tuple[int, dict]:
    accel = request.config.getoption("--highmem-accel") or "auto"
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path / "artifacts"))
    p = subprocess.run([*HIGHMEM, "watch-kernel", "--accel", accel, "--json", *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    sys.stdout.write(p.stderr[-2000:])
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return p.returncode, json.loads(p.stdout)


def test_healthy_kernel_1000_mappings_no_finding(tmp_path, request):
    rc, rep = watch(tmp_path, request, "--pages", "96", "--execs", "10",
                    "--expect-mappings", "1000")
    assert rep["findings"] == [] and rc == 0, rep["findings"][:5]
    assert rep["judged"]["kmap_local"] >= 1000
    assert rep["after_unmap"]["kmap_local"] >= 0.9 * rep["judged"]["kmap_local"]
    assert rep["watched_s"] > rep["unwatched_s"] > 0 and rep["stops"] >= 2000
    callers = " ".join(rep["callers"])
    assert "copy_page_to_iter" in callers and "copy_strings" in callers


@pytest.mark.parametrize("plant,kind,field", [
    ("none", None, None),
    ("kmap_nx", "kmap", "NX"),
    ("local_nx", "kmap_local", "NX"),
    ("vmap_pfn", "vmap", "PFN"),
    ("order", "kmap_local", "VA"),
])
def test_planted_wrong_pte_is_found(tmp_path, request, plant, kind, field):
    rc, rep = watch(tmp_path, request, "--pages", "2", "--execs", "1",
                    "--module-dir", str(PLANTED), "--insmod", "kwatch_planted",
                    "--param", f"plant={plant}")
    assert all(rep["judged"].get(k) for k in ("kmap_local", "kmap", "vmap", "vm_map_ram"))
    if plant == "none":
        assert rc == 0 and rep["findings"] == []
        return
    assert rc == 1
    found = {(f["kind"], f["field"]) for f in rep["findings"]}
    assert (kind, field) in found, rep["findings"]
    assert all(f["where"].endswith("(module)") for f in rep["findings"]), rep["findings"]
    if plant == "order":   # the kernel's own WARN_ON_ONCE (mm/highmem.c:623) is reported too
        assert any("WARNING:" in m and "kunmap_local_indexed" in m
                   for m in rep["kernel_messages"]), rep["kernel_messages"]
