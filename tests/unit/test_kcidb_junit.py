"""JUnit XML (core/junit.py) from the recorded report.json files: the shape CI engines read
(testsuites > testsuite > testcase with failure/error/skipped), the counts, and the causes."""

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.core.junit import junit_xml

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "orchestration" / "golden"
CELL = "6.12.117-highmem64g-8G-smp2"


def golden(behaviour: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{behaviour}.report.json").read_text())


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {f"{s.get('name')}::{c.get('name')}": c
            for s in root.iter("testsuite") for c in s.iter("testcase")}


def outcome(c: ET.Element) -> str:
    return next((x.tag for x in c if x.tag in ("failure", "error", "skipped")), "pass")


@pytest.mark.parametrize("behaviour, counts", [
    ("pass", {"tests": 4, "failures": 0, "errors": 0}),
    ("crash", {"tests": 5, "failures": 2, "errors": 0}),
    ("hang", {"tests": 5, "failures": 2, "errors": 0}),
    ("boot-panic", {"tests": 3, "failures": 3, "errors": 0})])
def test_shape_and_counts(behaviour: str, counts: dict[str, int]) -> None:
    root = ET.fromstring(junit_xml([golden(behaviour)]))
    assert root.tag == "testsuites" and root.get("name") == "highmem"
    assert {k: int(root.get(k, -1)) for k in counts} == counts
    assert root.get("skipped") is None      # not in the xunit2 schema's <testsuites>
    for s in root.iter("testsuite"):
        props = {p.get("name"): p.get("value") for p in s.iter("property")}
        assert props["cell"] == CELL and props["shard"] == "1/1"
        assert int(s.get("tests", -1)) == len(s.findall("testcase"))


def test_a_crash() -> None:
    c = cases(ET.fromstring(junit_xml([golden("crash")])))
    store = c[f"{CELL}.cat_null_deref::cat_null_deref_store"]
    assert outcome(store) == "failure"
    assert store[0].get("message") == "KTAP case cat_null_deref_store: CRASHED"
    assert (store[0].text or "").startswith("crash: oops in cat_null_deref: BUG: kernel NULL")
    log = c[f"{CELL}.cat_null_deref::kernel_log"]
    assert outcome(log) == "failure" and log[0].get("message", "").startswith("crash: oops")
    assert outcome(c[f"{CELL}.cat_healthy::kernel_log"]) == "pass"
    boot = c[f"{CELL}.boot::boot"]      # one `boot` case, as pytest's boot item
    assert outcome(boot) == "pass" and len([x for x in c if x.endswith("::boot")]) == 1
    assert len((boot.find("system-out").text or "").splitlines()) == 2  # both boots
    assert (log.find("system-out").text or "").startswith("artifacts: ")
    assert log.find("properties") is None


def test_a_boot_panic() -> None:
    c = cases(ET.fromstring(junit_xml([golden("boot-panic")])))
    boot = c[f"{CELL}.boot::boot"]
    assert outcome(boot) == "failure" and "Attempted to kill init!" in (boot[0].text or "")
    assert boot[0].get("message", "").startswith("boot 1: ")
    not_run = c[f"{CELL}.kmap_local_basic::kernel_log"]   # failed, as pytest's item is
    assert outcome(not_run) == "failure"
    assert not_run[0].get("message", "").startswith("not-run: the guest did not boot")


def test_a_pte_failure_and_the_other_outcomes() -> None:
    r = json.loads((DATA / "mutation" / "check_pfn.json").read_text())
    m = r["modules"][0]
    extra = copy.deepcopy(m)
    extra.update(name="x", params="", passed=False, ktap=[
        {"name": "a", "status": "XFAIL", "directive": "known"},
        {"name": "b", "status": "SKIP", "directive": "SKIP n/a"}], checkpoints=[],
        failure={"kind": "harness", "cause": "c", "line": "harness: internal error"},
        reasons=["harness: internal error"])
    r["modules"].append(extra)
    c = cases(ET.fromstring(junit_xml([r])))
    above = c["unknown.kmap_local_basic mutate=pfn::kmap_local_above_4g"]
    assert outcome(above) == "failure"
    assert "PFN: expected 0x23e401, got 0x23e400" in (above[0].text or "")
    a, b = c["unknown.x::a"], c["unknown.x::b"]
    assert outcome(a) == "skipped" and a[0].get("type") == "pytest.xfail"
    assert outcome(b) == "skipped" and b[0].get("type") == "pytest.skip"
    assert outcome(c["unknown.x::kernel_log"]) == "failure"
