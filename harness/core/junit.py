"""JUnit XML from report.json data (`highmem run --junit`, `highmem merge`), pure.

One mapping for both front ends: the items and outcomes are those pytest's `--junitxml`
writes for the plugin's items (xunit2, pytest's default family), and both validate against
the xunit2 schema (tests/unit/test_junit_schema.py). Per run a `boot` test suite with one
test case `boot` (every boot of the run judged: the first, and a reboot after a crash); per
module a test suite named after it with one test case per KTAP case (named as in pytest:
its KTAP name, `#N` for a case that never reported) and a `kernel_log` case for what no
case carries (insmod, crash or hang, a lost log, expected and unexpected kernel messages,
checkpoints no case claims: the verdict's module reasons).

Outcomes, as pytest's: FAIL/CRASHED -> <failure> (the module's cause and the case's failed
PTE checks in the text), SKIP -> <skipped type="pytest.skip">, XFAIL -> <skipped
type="pytest.xfail">; `kernel_log` -> <failure> whenever the module has a reason of its
own (a module that did not compile, hit a bug of the harness, or did not run is failed:
nothing of it passed). A test case's artifacts directory goes in its <system-out> (the
schema allows no <properties> in a test case); every suite carries the kernel cell and the
shard as <properties>. ElementTree escapes every string; characters XML 1.0 cannot hold at
all (control characters but tab and newline) are written as \\xNN first.
"""

import re
import xml.etree.ElementTree as ET
from typing import Any

from .kcidb import path_part, pte_mismatches

Json = dict[str, Any]
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(text: object) -> str:
    r"""`text` with every character XML 1.0 cannot hold as \xNN (as KTAP parsing does)."""
    return NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", str(text))


def _case(suite: ET.Element, classname: str, name: str, seconds: object = 0.0) -> ET.Element:
    t = seconds if isinstance(seconds, (int, float)) else 0.0
    return ET.SubElement(suite, "testcase", classname=xml_text(classname),
                         name=xml_text(name), time=f"{t:.3f}")


def _outcome(case: ET.Element, tag: str, message: str, text: str = "",
             kind: str | None = None) -> None:
    el = ET.SubElement(case, tag, message=xml_text(message[:500]))
    if kind:
        el.set("type", kind)
    if text:
        el.text = xml_text(text)


def _system_out(case: ET.Element, lines: list[str]) -> None:
    if lines:
        ET.SubElement(case, "system-out").text = xml_text("\n".join(lines))


def _classname(cell: str, name: str) -> str:
    """`highmem.CELL.NAME`, the cell's dots as `_` (a viewer splits a classname at dots)."""
    return f"highmem.{cell.replace('.', '_')}.{name}"


def _suite(root: ET.Element, name: str, props: dict[str, str]) -> ET.Element:
    s = ET.SubElement(root, "testsuite", name=xml_text(name))
    p = ET.SubElement(s, "properties")
    for k, v in props.items():
        ET.SubElement(p, "property", name=k, value=xml_text(v))
    return s


def _boots(root: ET.Element, run: Json, props: dict[str, str]) -> None:
    boots = run["boots"]
    if not boots:
        return
    s = _suite(root, f"{props['cell']}.boot", props)
    c = _case(s, _classname(props["cell"], "boot"), "boot",
              sum(b["seconds"] for b in boots if isinstance(b["seconds"], (int, float))))
    bad = [b for b in boots if not b["passed"]]
    if bad:
        why = [f"boot {b['number']}: {r}" for b in bad for r in b["reasons"] or ["failed"]]
        _outcome(c, "failure", why[0], "\n".join(
            why + [f"| {x}" for b in bad for x in b.get("console_tail", [])]))
    _system_out(c, [f"boot-{b['number']}: {b['artifacts']}" for b in boots
                    if b.get("artifacts")])


def case_name(k: Json, index: int) -> str:
    """A KTAP case's test name: its name, `#N` for one that never reported (the pytest
    plugin's case_key; N its number, else its place in the module)."""
    return k["name"] or f"#{k.get('number', index + 1)}"


def module_reasons(m: Json) -> list[str]:
    """The reasons no KTAP case carries (the verdict's module reasons: report.json's
    `why` without a case; an older report: the reasons not about a case)."""
    if isinstance(m.get("why"), list):
        return [r["text"] for r in m["why"] if not r.get("case")]
    return [r for r in m["reasons"] if not r.startswith("KTAP case")]


def _module(root: ET.Element, m: Json, props: dict[str, str]) -> None:
    title = f"{m['name']} {m['params']}".strip()
    s = _suite(root, f"{props['cell']}.{title}",
               {**props, "artifacts": m.get("artifacts") or ""})
    cls = _classname(props["cell"], path_part(title))
    out = [f"artifacts: {m['artifacts']}"] if m.get("artifacts") else []
    cause = (m.get("failure") or {}).get("line", "")
    for i, k in enumerate(m["ktap"]):
        name = case_name(k, i)
        c = _case(s, cls, name, k.get("seconds", 0.0))
        if k["status"] in ("SKIP", "XFAIL"):
            xfail = k["status"] == "XFAIL"  # the messages pytest's items give
            _outcome(c, "skipped", k.get("directive") or ("" if xfail else
                                                          "skipped in the kernel"),
                     kind="pytest.xfail" if xfail else "pytest.skip")
        elif k["status"] != "PASS":
            text = [x for x in (cause if k["status"] == "CRASHED" else "",) if x]
            _outcome(c, "failure", f"KTAP case {name}: {k['status']}",
                     "\n".join(text + pte_mismatches(m, k["name"])))
        _system_out(c, out)
    log = _case(s, cls, "kernel_log", m["seconds"])
    why = module_reasons(m)
    if why:
        _outcome(log, "failure", why[0], "\n".join(why + pte_mismatches(m)))
    _system_out(log, out)


def _count(root: ET.Element) -> None:
    """tests/failures/errors/skipped on every <testsuite>; tests/failures/errors on
    <testsuites> (the schema has no `skipped` there)."""
    total = {"tests": 0, "failures": 0, "errors": 0}
    for s in root.iter("testsuite"):
        cases = s.findall("testcase")
        n = {"tests": len(cases),
             "failures": sum(c.find("failure") is not None for c in cases),
             "errors": sum(c.find("error") is not None for c in cases),
             "skipped": sum(c.find("skipped") is not None for c in cases)}
        for k, v in n.items():
            s.set(k, str(v))
            if k in total:
                total[k] += v
    for k, v in total.items():
        root.set(k, str(v))


def junit_xml(runs: list[Json]) -> str:
    """The JUnit XML text for the report.json dicts `runs` (a run, or merged shards)."""
    root = ET.Element("testsuites", name="highmem")
    for run in runs:
        plan = run.get("plan") or {}
        props = {"cell": plan.get("cell", "unknown"), "shard": plan.get("shard", "1/1")}
        _boots(root, run, props)
        for m in run["modules"]:
            _module(root, m, props)
    _count(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"
