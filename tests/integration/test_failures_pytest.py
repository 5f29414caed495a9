"""The pytest plugin on a failing suite: one failing item per crashed, hung or unbuilt
module (and its unreported cases), a `boot` item, never a collection error; the healthy
module after them passes on a fresh guest."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SUITE = Path(__file__).parent / "failing" / "pytest_suite.yaml"
REPO = Path(__file__).resolve().parents[2]


def test_failing_modules_are_failing_items(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    junit = tmp_path / "junit.xml"
    p = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), f"--junitxml={junit}",
                        f"--highmem-artifacts={tmp_path / 'art'}", f"--highmem-accel={accel}",
                        "-p", "no:cacheprovider"],
                       capture_output=True, text=True, timeout=1800, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))  # this tree's plugin
    sys.stdout.write(p.stdout[-3000:])
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]
    assert "error" not in p.stdout.splitlines()[-1], "no collection error"
    cases = {f"{c.get('classname', '').rsplit('.', 1)[-1]}::{c.get('name')}": c
             for c in ET.parse(junit).getroot().iter("testcase")}
    failed = sorted(k for k, c in cases.items() if c.find("failure") is not None)
    passed = sorted(k for k, c in cases.items()
                    if c.find("failure") is None and c.find("skipped") is None)
    assert failed == sorted(["cat_null_deref::cat_null_deref_store",
                             "cat_null_deref::kernel_log", "cat_spin::cat_spin_loop",
                             "cat_spin::kernel_log", "cat_no_compile::kernel_log"]), failed
    assert "cat_healthy::cat_healthy_kmap_local" in passed
    assert "yaml::boot" in passed  # classname "...pytest_suite.yaml": the boot item passed
    text = {k: ET.tostring(c, encoding="unicode") for k, c in cases.items()}
    assert "oops in cat_null_deref" in text["cat_null_deref::kernel_log"]
    assert "did not return within 5 s" in text["cat_spin::kernel_log"]
    assert "did not compile" in text["cat_no_compile::kernel_log"]
    assert "<system-out>artifacts: " in text["cat_spin::kernel_log"]  # not <properties>
