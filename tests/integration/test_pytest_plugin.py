"""A user's module directory and a 10-line YAML suite, run as pytest items with JUnit XML."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
REPO = HERE.parents[1]


def test_user_suite_as_pytest_items(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    junit = tmp_path / "junit.xml"
    p = subprocess.run([sys.executable, "-m", "pytest", str(HERE / "usermod" / "suite.yaml"),
                        f"--junitxml={junit}", f"--highmem-artifacts={tmp_path / 'art'}",
                        f"--highmem-accel={accel}", "-p", "no:cacheprovider"],
                       capture_output=True, text=True, timeout=3600, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))  # this tree's plugin
    sys.stdout.write(p.stdout[-3000:])
    assert p.returncode == 1, p.stderr  # the mutate=pfn entry must fail
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    names = sorted(c.get("name") for c in cases)
    assert names == sorted(["boot", "my_kmap_local", "kernel_log"] + ["kmap_local_above_4g",
                           "kmap_local_below_4g", "kernel_log"] * 2)
    assert any("my_kmap_test" in c.get("classname", "") for c in cases)
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == 2, [f.get("name") for f in failures]
    for f in failures:
        assert "mutate=pfn" in f.get("classname", "") + f.get("name", "")
        failure = f.find("failure")
        assert "PFN: expected" in failure.get("message", "") + (failure.text or "")
    assert "9 passed" not in p.stdout and "7 passed" in p.stdout  # boot + 6
