"""Shards on the real kernel: a two-module suite (kmap_local_basic, and kmap_local_basic
mutate=pfn, which makes a PTE check fail) run as `--shard 1/2` and `--shard 2/2` (one boot
each), then `highmem merge`. Each shard runs only its module; the merged KCIDB JSON
validates with kcidb_io and carries the real PFN mismatch into the failing case."""

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
from kcidb_io.schema import LATEST

from .conftest import HIGHMEM, REPO

SUITE = """timeout: 120
modules:
  - name: kmap_local_basic
  - name: kmap_local_basic
    params: mutate=pfn
"""


@pytest.mark.integration
def test_two_shards_then_merge(highmem_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_RUN_ID", "it-shards")
    suite = tmp_path / "two.yaml"
    suite.write_text(SUITE)
    one = highmem_run(str(suite), "--shard", "1/2", "--junit", str(tmp_path / "1.xml"),
                      "--kcidb", str(tmp_path / "1.json"))
    assert one.rc == 0, one.err[-2000:]
    first = one.run_dir
    r1 = one.report
    assert [(m["name"], m["params"]) for m in r1["modules"]] == [("kmap_local_basic", "")]
    assert r1["plan"]["shard"] == "1/2" and len(r1["plan"]["items"]) == 2
    assert r1["kernel"]["release"].startswith("6.") and r1["kernel"]["compiler"]
    assert len(r1["boots"]) == 1
    LATEST.validate_exactly(json.loads((tmp_path / "1.json").read_text()))
    assert ET.parse(tmp_path / "1.xml").getroot().get("failures") == "0"

    two = highmem_run(str(suite), "--shard", "2/2")
    assert two.rc == 1
    assert [m["params"] for m in two.report["modules"]] == ["mutate=pfn"]
    rows = (two.run_dir / "report.txt").read_text().split("Summary")[1].splitlines()[2:]
    assert [r.split()[:2] for r in rows if r.startswith("  kmap")] == \
        [["kmap_local_basic", "mutate=pfn"]]                    # shard 1's module: absent

    out = tmp_path / "merged"
    p = subprocess.run([*HIGHMEM, "merge", str(out), str(first), str(two.run_dir)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "Verdict: FAIL (1 of 2 modules failed)" in p.stdout
    k = json.loads((out / "kcidb.json").read_text())
    LATEST.validate_exactly(k)
    assert len(k["checkouts"]) == 1 and len(k["builds"]) == 1   # one pipeline, one kernel
    tests = {t["path"]: t for t in k["tests"]}
    assert tests["highmem.kmap_local_basic"]["status"] == "PASS"
    case = tests["highmem.kmap_local_basic_mutate_pfn.kmap_local_above_4g"]
    assert case["status"] == "FAIL" and "PFN: expected 0x" in case["log_excerpt"]
    # a missing shard is named
    p = subprocess.run([*HIGHMEM, "merge", str(tmp_path / "m2"), str(first)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "shard 2/2 is missing" in p.stderr
    assert "kmap_local_basic mutate=pfn" in p.stderr
