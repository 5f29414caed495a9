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
    ("pass", {"tests": 4, "failures": 0, "errors": 0, "skipped": 0}),
    ("crash", {"tests": 6, "failures": 2, "errors": 0, "skipped": 0}),
    ("hang", {"tests": 6, "failures": 2, "errors": 0, "skipped": 0}),
    ("boot-panic", {"tests": 3, "failures": 1, "errors": 0, "skipped": 2})])
def test_shape_and_counts(behaviour: str, counts: dict[str, int]) -> None:
    root = ET.fromstring(junit_xml([golden(behaviour)]))
    assert root.tag == "testsuites" and root.get("name") == "highmem"
    assert {k: int(root.get(k, -1)) for k in counts} == counts
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
    assert outcome(c[f"{CELL}.boot::boot-2"]) == "pass"


def test_a_boot_panic() -> None:
    c = cases(ET.fromstring(junit_xml([golden("boot-panic")])))
    boot = c[f"{CELL}.boot::boot-1"]
    assert outcome(boot) == "failure" and "Attempted to kill init!" in (boot[0].text or "")
    skipped = c[f"{CELL}.kmap_local_basic::kernel_log"]
    assert outcome(skipped) == "skipped"
    assert skipped[0].get("message", "").startswith("not-run: the guest did not boot")


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
    assert outcome(c["unknown.x::a"]) == "skipped" and c["unknown.x::a"][0].get("type") == "xfail"
    assert outcome(c["unknown.x::b"]) == "skipped"
    assert outcome(c["unknown.x::kernel_log"]) == "error"
