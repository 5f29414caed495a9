"""`pytest -n 2` (pytest-xdist) on a real suite: two workers, each with its own guest, run
directory, sockets and RAM file, give every test the same outcome as `pytest -n 0`."""

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).parent / "parallel" / "suite.yaml"


def _outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """test id -> (outcome, failure text)"""
    out = {}
    for c in ET.parse(junit).getroot().iter("testcase"):
        kind = next((k for k in ("failure", "error", "skipped") if c.find(k) is not None),
                    "passed")
        text = ET.tostring(c.find(kind), encoding="unicode") if kind != "passed" else ""
        out[f"{c.get('classname', '').rsplit('.', 1)[-1]}::{c.get('name')}"] = (kind, text)
    return out


def _pytest(tmp: Path, workers: str, accel: str) -> tuple[int, dict[str, tuple[str, str]], float]:
    junit = tmp / f"junit-{workers}.xml"
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this tree's plugin, not an installed one
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pytest", "-n", workers, str(SUITE),
                        f"--junitxml={junit}", f"--highmem-artifacts={tmp / f'art-{workers}'}",
                        f"--highmem-accel={accel}", "-p", "no:cacheprovider"],
                       capture_output=True, text=True, timeout=1800, cwd=tmp, env=env)
    took = time.monotonic() - t0
    sys.stdout.write(f"--- pytest -n {workers}: {took:.1f} s\n" + p.stdout[-2500:])
    assert junit.exists(), p.stdout[-3000:] + p.stderr[-2000:]
    return p.returncode, _outcomes(junit), took


def test_two_workers_give_the_same_outcomes(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    rc0, serial, t0 = _pytest(tmp_path, "0", accel)
    rc2, parallel, t2 = _pytest(tmp_path, "2", accel)
    print(f"wall time: -n 0 {t0:.1f} s, -n 2 {t2:.1f} s")
    assert (rc0, rc2) == (1, 1)  # the mutate=pfn entry fails
    assert {k: v[0] for k, v in parallel.items()} == {k: v[0] for k, v in serial.items()}
    failed = sorted(k for k, v in serial.items() if v[0] == "failure")
    assert failed == ["kmap_local_basic:mutate=pfn::kmap_local_above_4g",
                      "kmap_local_basic:mutate=pfn::kmap_local_below_4g"], failed
    for k in failed:
        assert "PFN: expected" in parallel[k][1] and "PFN: expected" in serial[k][1]
    assert serial["yaml::boot"][0] == "passed"
    assert len([k for k in serial if k.startswith("kmap_suite::")]) == 11  # 10 cases + log
    # each worker had its own run directory, and ran modules in its own guest
    runs = sorted((tmp_path / "art-2").iterdir())
    assert [r.name.rsplit("-", 3)[0] for r in runs] == ["pytest-gw0", "pytest-gw1"], runs
    assert all((r / "boot-1" / "console.log").exists() for r in runs), "a worker never booted"
    ran = sorted(m.name.split("-", 1)[1] for r in runs for m in (r / "modules").iterdir())
    assert ran == ["kmap_local_basic", "kmap_local_basic-mutate-pfn", "kmap_suite"], ran
    # and left no guest behind: its socket directory (and RAM file) went with it
    for r in runs:
        assert not (r / "sockets").resolve().exists(), f"{r}: the guest's sockets are left"
