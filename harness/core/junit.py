"""JUnit XML from report.json data (`highmem run --junit`, `highmem merge`), pure.

The same items as the pytest plugin's `--junitxml`: per run a `boot` test suite (one case
per boot), and per module a test suite named after it with one test case per KTAP case and
a `kernel_log` case for the module as a whole (insmod, crash or hang, expected and
unexpected kernel messages, checkpoints). Mapping: FAIL/CRASHED -> <failure> (the
module's cause and the failed PTE checks in the text), SKIP -> <skipped>, XFAIL ->
<skipped type="xfail"> (pytest's convention), a module that did not compile or hit a bug of
the harness -> <error>, NOT RUN -> <skipped> on kernel_log (the boot case carries the
failure that stopped it). Every suite carries the kernel cell and shard as properties.
"""

import xml.etree.ElementTree as ET
from typing import Any

from .kcidb import module_status, path_part, pte_mismatches

Json = dict[str, Any]


def _case(suite: ET.Element, classname: str, name: str, seconds: object = 0.0) -> ET.Element:
    t = seconds if isinstance(seconds, (int, float)) else 0.0
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{t:.3f}")


def _outcome(case: ET.Element, tag: str, message: str, text: str = "",
             kind: str | None = None) -> None:
    el = ET.SubElement(case, tag, message=message[:500])
    if kind:
        el.set("type", kind)
    if text:
        el.text = text


def _classname(cell: str, name: str) -> str:
    """`highmem.CELL.NAME`, the cell's dots as `_` (a viewer splits a classname at dots)."""
    return f"highmem.{cell.replace('.', '_')}.{name}"


def _suite(root: ET.Element, name: str, props: dict[str, str]) -> ET.Element:
    s = ET.SubElement(root, "testsuite", name=name)
    p = ET.SubElement(s, "properties")
    for k, v in props.items():
        ET.SubElement(p, "property", name=k, value=v)
    return s


def _boots(root: ET.Element, run: Json, props: dict[str, str]) -> None:
    s = _suite(root, f"{props['cell']}.boot", props)
    for b in run["boots"]:
        c = _case(s, _classname(props["cell"], "boot"), f"boot-{b['number']}", b["seconds"])
        if not b["passed"]:
            _outcome(c, "failure", b["reasons"][0] if b["reasons"] else "boot failed",
                     "\n".join(b["reasons"] + [f"| {x}" for x in b.get("console_tail", [])]))


def _module(root: ET.Element, m: Json, props: dict[str, str]) -> None:
    title = f"{m['name']} {m['params']}".strip()
    s = _suite(root, f"{props['cell']}.{title}",
               {**props, "artifacts": m.get("artifacts") or ""})
    cls = _classname(props["cell"], path_part(title))
    cause = (m.get("failure") or {}).get("line", "")
    for k in m["ktap"]:
        c = _case(s, cls, k["name"])
        if k["status"] in ("FAIL", "CRASHED"):
            text = [x for x in (cause if k["status"] == "CRASHED" else "",) if x]
            _outcome(c, "failure", f"KTAP case {k['name']}: {k['status']}",
                     "\n".join(text + pte_mismatches(m, k["name"])))
        elif k["status"] in ("SKIP", "XFAIL"):
            _outcome(c, "skipped", k.get("directive") or k["status"],
                     kind="xfail" if k["status"] == "XFAIL" else None)
    log = _case(s, cls, "kernel_log", m["seconds"])
    status = module_status(m)
    why = [r for r in m["reasons"] if not r.startswith("KTAP case")]
    if status == "MISS":
        _outcome(log, "skipped", m["reasons"][0] if m["reasons"] else "not run")
    elif status == "ERROR":
        _outcome(log, "error", why[0] if why else status, "\n".join(why))
    elif why:
        _outcome(log, "failure", why[0], "\n".join(why + pte_mismatches(m)))


def _count(root: ET.Element) -> None:
    """tests/failures/errors/skipped on every <testsuite> and on <testsuites>."""
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in root.iter("testsuite"):
        cases = s.findall("testcase")
        n = {"tests": len(cases),
             "failures": sum(c.find("failure") is not None for c in cases),
             "errors": sum(c.find("error") is not None for c in cases),
             "skipped": sum(c.find("skipped") is not None for c in cases)}
        for k, v in n.items():
            s.set(k, str(v))
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
