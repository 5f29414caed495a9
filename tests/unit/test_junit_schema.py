"""Both JUnit writers against the xunit2 schema (pytest's testing/example_scripts/
junit-10.xsd, put in the cache by `make deps`: never downloaded here), and against each
other: `highmem run --junit` (core/junit.py) and pytest's `--junitxml` of the plugin's
items (over fakelab.py's recorded runs) give the same test cases with the same outcomes,
the artifacts in <system-out>, no <properties> in a test case, every string escaped."""

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.core.junit import junit_xml, xml_text
from tests.junit_schema import schema as xunit2_schema
from tests.unit.test_pytest_items import _finish, _pytest

xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is in the dev extra: make deps")

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "orchestration" / "golden"
# the modules both front ends run here (fakelab.py replays their recorded runs)
SUITE = """
modules:
  - name: kmap_local_basic
  - {name: cat_null_deref, dir: CATALOGUE}
  - {name: cat_healthy, dir: CATALOGUE}
  - {name: cat_spin, dir: CATALOGUE}
"""


@pytest.fixture(scope="module")
def schema() -> Any:
    return xunit2_schema()


def reports() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(GOLDEN.glob("*.report.json"))] + [
        json.loads((DATA / "mutation" / "check_pfn.json").read_text())]


def test_highmem_run_junit_is_valid_xunit2(schema: Any) -> None:
    for r in reports():
        schema.validate(junit_xml([r]))
    schema.validate(junit_xml(reports()))      # merged shards


def test_the_schema_check_can_fail(schema: Any) -> None:
    """What was wrong before: <properties> in a test case, `skipped` on <testsuites>."""
    bad = ('<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase '
           'name="c"><properties><property name="artifacts" value="/a"/></properties>'
           '</testcase></testsuite></testsuites>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate(bad)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate('<testsuites skipped="1"/>')


def test_hostile_names_are_escaped_and_valid(schema: Any) -> None:
    r = json.loads((GOLDEN / "crash.report.json").read_text())
    m = r["modules"][0]
    nasty = 'a<b>&"c\']]>\x01\x1b[31m\u2028\U0001f600'
    m["ktap"] = [{"name": nasty, "number": 1, "status": "FAIL", "directive": nasty},
                 {"name": "", "number": 2, "status": "SKIP", "directive": nasty}]
    m["reasons"] = [f"KTAP case {nasty}: FAIL", f"insmod: {nasty}"]
    m["why"] = [{"kind": "case", "case": nasty, "text": m["reasons"][0]},
                {"kind": "insmod-exit", "case": "", "text": m["reasons"][1]}]
    m["artifacts"] = f"/tmp/{nasty}"
    text = junit_xml([r])
    schema.validate(text)
    names = [c.get("name") for c in ET.fromstring(text).iter("testcase")]
    assert xml_text(nasty) in names and "#2" in names   # an unnamed case is #N, as in pytest
    assert "\\x01" in xml_text(nasty) and "\x1b" not in xml_text(nasty)


def test_xml_text_is_needed() -> None:
    """The red side: a control character left as it is makes XML no parser reads."""
    el = ET.Element("testcase", name="a\x01b")
    with pytest.raises(ET.ParseError):
        ET.fromstring(ET.tostring(el))
    ET.fromstring(ET.tostring(ET.Element("testcase", name=xml_text("a\x01b"))))


def outcome(c: ET.Element) -> str:
    tags = [x.tag for x in c if x.tag in ("failure", "error", "skipped")]
    return tags[0] if tags else "passed"


def table(text: str, module_of: Any) -> dict[tuple[str, str], str]:
    """(module, test name) -> outcome of every test case of a JUnit text."""
    return {(module_of(c), c.get("name", "")): outcome(c)
            for c in ET.fromstring(text).iter("testcase")}


def _pytest_junit(tmp: Path, *args: str) -> str:
    catalogue = str(Path(__file__).resolve().parents[2] / "tests" / "catalogue" / "modules")
    junit = tmp / "junit.xml"
    rc, out, err = _finish(_pytest(tmp, f"--junitxml={junit}", *args,
                                   suite=SUITE.replace("CATALOGUE", catalogue)))
    assert rc == 1, out[-2000:] + err[-2000:]
    return junit.read_text()


def _highmem_junit(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from harness.frontends import cli
    from harness.run import run_and_report
    from harness.stages import host
    from tests.unit.fakelab import FakeOperations
    catalogue = str(Path(__file__).resolve().parents[2] / "tests" / "catalogue" / "modules")
    tmp.mkdir()
    (tmp / "suite.yaml").write_text(SUITE.replace("CATALOGUE", catalogue))
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp / "cache"))
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")
    ops = FakeOperations(tmp)
    monkeypatch.setattr(cli, "load", lambda module, name: (
        lambda opts, suite, run_dir, *out: run_and_report(opts, suite, run_dir, ops, *out)))
    assert cli.main(["run", str(tmp / "suite.yaml"), "--junit", str(tmp / "junit.xml")]) == 1
    return (tmp / "junit.xml").read_text()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["n0", "n2"])
def test_pytest_junitxml_is_valid_xunit2_and_agrees_with_highmem_run(
        schema: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdist: list[str]) -> None:
    theirs = _pytest_junit(tmp_path / "pytest", *xdist)
    schema.validate(theirs)
    root = ET.fromstring(theirs)
    assert all(c.find("properties") is None for c in root.iter("testcase"))
    outs = {c.get("name"): (c.find("system-out").text or "") for c in root.iter("testcase")
            if c.find("system-out") is not None}
    assert outs.get("kernel_log", "").startswith("artifacts: "), outs
    assert outs.get("boot", "").startswith("boot-1: "), outs

    ours = _highmem_junit(tmp_path / "run", monkeypatch)
    schema.validate(ours)
    # pytest: classname suite.yaml.MODULE (boot: suite.yaml); ours: highmem.CELL.MODULE
    p = table(theirs, lambda c: c.get("classname", "").rsplit(".", 1)[-1]
              if c.get("name") != "boot" else "boot")
    h = table(ours, lambda c: c.get("classname", "").rsplit(".", 1)[-1])
    assert p == h
    assert p[("cat_null_deref", "kernel_log")] == "failure"
    assert p[("boot", "boot")] == "passed"
    assert ("cat_healthy", "kernel_log") in p and ("kmap_local_basic", "kernel_log") in p
    assert os.path.isdir(outs["kernel_log"].split("artifacts: ", 1)[1].splitlines()[0])
