"""One verdict, whatever the way in (issue 18): the hostile modules (hostile/hostile_liar.c,
each trying to turn its FAIL into a PASS) and a passing module, through `highmem run`,
`pytest`, `pytest -n 2`, and the warm guest (`highmem run` and `pytest` on it). Every way in
must give the same verdict per module, the same status per KTAP case, the same failing PTE
fields named, and the same exit status: the verdict is computed once, in the core."""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.junit_schema import schema as xunit2_schema

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
HOSTILE = Path(__file__).parent / "hostile" / "suite.yaml"
FIELD = re.compile(r" at 0x[0-9a-f]+: ([A-Z]+): ")
OUTCOME = {"PASS": "passed", "FAIL": "failed", "CRASHED": "failed", "SKIP": "skipped",
           "XFAIL": "skipped", "NOT RUN": "failed"}

# module title -> (verdict, sorted (case, outcome) pairs, failing PTE fields named)
Table = dict[str, tuple[str, list[tuple[str, str]], list[str]]]


def from_report(report: Path) -> Table:
    """The table of a report.json (`highmem run`, on its own or on the warm guest)."""
    out: Table = {}
    for m in json.loads(report.read_text())["modules"]:
        title = f"{m['name']} {m['params']}".strip()
        cases = sorted((c["name"] or "#1", OUTCOME[c["status"]]) for c in m["ktap"])
        fields = sorted({r["field"] for r in m["why"] if r["field"]})
        assert fields == sorted({f for r in m["reasons"] for f in FIELD.findall(r)})
        out[title] = ("PASS" if m["passed"] else "FAIL", cases, fields)
    return out


def from_junit(junit: Path, xsd: Any) -> Table:
    """The table of pytest's --junitxml, valid for the xunit2 schema `xsd`: a module FAILs
    if any of its tests failed."""
    xsd.validate(str(junit))
    out: dict[str, tuple[str, list[tuple[str, str]], set[str]]] = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        if tc.get("name") == "boot":
            continue
        title = tc.get("classname", "").rsplit(".", 1)[-1].replace(":", " ").replace(",", " ")
        failed = tc.find("failure") is not None or tc.find("error") is not None
        outcome = "failed" if failed else ("skipped" if tc.find("skipped") is not None
                                           else "passed")
        verdict, cases, fields = out.get(title, ("PASS", [], set()))
        text = "".join((e.get("message") or "") + (e.text or "")
                       for e in tc if e.tag in ("failure", "error"))
        fields |= set(FIELD.findall(text))
        if tc.get("name") != "kernel_log":
            cases = [*cases, (tc.get("name", ""), outcome)]
        out[title] = ("FAIL" if failed else verdict, cases, fields)
    return {t: (v, sorted(c), sorted(f)) for t, (v, c, f) in out.items()}


def _env(tmp: Path) -> dict[str, str]:
    return dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp / "artifacts"))


def _highmem(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*HIGHMEM, *args], cwd=REPO, env=_env(tmp), capture_output=True,
                       text=True, timeout=1800)
    sys.stdout.write(f"$ highmem {' '.join(args)} -> {p.returncode}\n{p.stdout[-1500:]}")
    return p


def _pytest(tmp: Path, accel: str, *args: str) -> tuple[int, Path]:
    junit = tmp / f"junit-{len(list(tmp.glob('junit-*')))}.xml"
    p = subprocess.run([sys.executable, "-m", "pytest", str(HOSTILE), f"--junitxml={junit}",
                        f"--highmem-accel={accel}", f"--highmem-artifacts={tmp / 'artifacts'}",
                        "-p", "no:cacheprovider", *args], cwd=REPO, env=_env(tmp),
                       capture_output=True, text=True, timeout=1800)
    sys.stdout.write(f"$ pytest {' '.join(args)} -> {p.returncode}\n{p.stdout[-1500:]}")
    return p.returncode, junit


def _last_report(tmp: Path) -> Path:
    return sorted((tmp / "artifacts").glob("run-*"), key=lambda d: d.stat().st_mtime)[-1] \
        / "report.json"


def test_every_way_in_gives_the_same_verdict(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    xsd = xunit2_schema()  # (skips, saying why, without it: before any guest boots)
    cli = _highmem(tmp_path, "run", "--accel", accel, "--junit", str(tmp_path / "run.xml"),
                   str(HOSTILE))
    assert cli.returncode == 1, cli.stderr[-2000:]
    xsd.validate(str(tmp_path / "run.xml"))  # highmem run's JUnit of the hostile names too
    want = from_report(_last_report(tmp_path))
    liars = {t: v for t, v in want.items() if t.startswith("hostile_liar")}
    assert len(liars) == 12 and all(v[0] == "FAIL" for v in liars.values()), want
    assert want["kmap_local_basic"][0] == "PASS"
    for how, field in [("pfn1", "PFN"), ("pfn32", "PFN"), ("nx", "NX"), ("rw", "RW"),
                       ("g", "G"), ("leak", "PTE"), ("invert", "PFN"), ("preset", "PFN")]:
        assert field in want[f"hostile_liar how={how}"][2], (how, want)
    assert want["helpers_suite mutate=content"][0] == "FAIL"
    assert "CONTENT" in want["helpers_suite mutate=content"][2], want
    assert want["vmram_suite mutate=pgd"][2] == ["PGD"], want

    ways = {}
    for args in ((), ("-n", "2")):
        rc, junit = _pytest(tmp_path, accel, *args)
        ways[f"pytest {' '.join(args)}".strip()] = (rc, from_junit(junit, xsd))
    up = _highmem(tmp_path, "up", "--accel", accel)
    assert up.returncode == 0, up.stderr[-2000:]
    try:
        warm = _highmem(tmp_path, "run", "--accel", accel, str(HOSTILE))
        assert "on the warm guest" in warm.stderr
        ways["highmem run (warm)"] = (warm.returncode, from_report(_last_report(tmp_path)))
        rc, junit = _pytest(tmp_path, accel)
        ways["pytest (warm)"] = (rc, from_junit(junit, xsd))
    finally:
        _highmem(tmp_path, "down")
    for way, (rc, table) in ways.items():
        assert rc == 1, way
        for title, verdict in want.items():
            assert table.get(title) == verdict, (way, title, table.get(title), verdict)
