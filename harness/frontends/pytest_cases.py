"""KTAP cases as pytest test reports (the pytest plugin's half that turns a module's result
into tests).

A module's KTAP cases are known only once it ran in the guest, so they are not collected
items: collection stays cheap and the same in every pytest-xdist worker. When a module's
item runs, each case it printed is reported as a test of its own, with the nodeid it would
have as an item (`SUITE.yaml::MODULE::CASE`) and the usual setup/call/teardown reports, so
the terminal, `--junitxml` and xdist's controller count and show it like any test.

JUnit: the harness's own lines of a test (its artifacts directory) go in the test case's
<system-out>, as `highmem run --junit` writes them (core/junit.py), not in <properties>,
which the xunit2 schema does not allow in a test case: they travel on the teardown report
(through xdist too) and are added where pytest's `--junitxml` writer runs.
"""

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pytest

from ..core.ktap import Case
from ..core.results import ModuleResult
from ..core.verdict import case_key

# the attribute that marks a case's report and holds its nodeid (it survives xdist's
# report serialisation)
CASE_MARK = "highmem_ktap_case"

# the attribute of a teardown report that holds the lines for its JUnit <system-out>
OUT_MARK = "highmem_system_out"

Outcome = Literal["passed", "failed", "skipped"]


def set_system_out(item: pytest.Item, lines: list[str]) -> None:
    """The lines `item`'s JUnit test case gets in its <system-out>."""
    setattr(item, OUT_MARK, "\n".join(lines))


def mark_system_out(report: pytest.TestReport, item: pytest.Item) -> None:
    """Carry `item`'s <system-out> lines on its teardown report."""
    text = getattr(item, OUT_MARK, "")
    if text:
        setattr(report, OUT_MARK, text)


def junit_system_out(config: pytest.Config, report: pytest.TestReport) -> None:
    """Add the report's <system-out> lines to its test case in pytest's `--junitxml` (before
    pytest's writer closes the test case at teardown; none without --junitxml)."""
    text = getattr(report, OUT_MARK, "")
    if not text or report.when != "teardown":
        return
    try:
        from _pytest.junitxml import bin_xml_escape, xml_key
    except ImportError:  # a pytest without its JUnit writer where it was
        return
    xml: Any = config.stash.get(xml_key, None)
    if xml is not None:
        out = ET.Element("system-out")
        out.text = bin_xml_escape(text)
        xml.node_reporter(report).append(out)


def case_failure_text(result: ModuleResult, case: Case) -> str:
    """A failing case's message: its status, the module's failure, its KTAP diagnostics
    and the verdict's reasons for it (every mismatching PTE field of its checkpoints)."""
    lines = [f"KTAP case {case_key(case)}: {case.status}"]
    if result.failure is not None:
        lines.append(f"  module: {result.failure.line}")
    lines += [f"  # {d.lstrip('# ')}" for d in case.diagnostics if not d.startswith("harness: ")]
    lines += [f"  {r.text}" for r in result.verdict().case_reasons(case_key(case))
              if r.kind != "case" or "reported" in r.text]
    return "\n".join(lines)


def case_verdict(result: ModuleResult, case: Case) -> tuple[Outcome, str, bool]:
    """(outcome, text, xfail) of the case's call: PASS passed; SKIP skipped with its reason;
    XFAIL skipped as an expected failure with its reason; anything else (FAIL, CRASHED,
    NOT RUN) failed with case_failure_text()."""
    if case.status == "PASS":
        return "passed", "", False
    if case.status == "SKIP":
        return "skipped", case.directive or "skipped in the kernel", False
    if case.status == "XFAIL":
        return "skipped", case.directive, True
    return "failed", case_failure_text(result, case), False


def case_reports(parent: pytest.Item, result: ModuleResult,
                 case: Case) -> list[pytest.TestReport]:
    """setup, call and teardown reports of one case, as if it were an item beside `parent`
    (the module's item)."""
    name = case_key(case)  # a case that never reported has no name: #N
    nodeid = f"{parent.parent.nodeid}::{name}" if parent.parent else name
    path = parent.location[0]
    domain = f"{parent.parent.name}::{name}" if parent.parent else name
    keywords: Mapping[str, Literal[1]] = {**{k: 1 for k in parent.keywords}, name: 1}
    system_out = {OUT_MARK: f"artifacts: {result.artifacts}"} if result.artifacts else {}
    outcome, text, xfail = case_verdict(result, case)
    longrepr: str | tuple[str, int, str] | None = None
    call_extra: dict[str, object] = {}  # only the call: a passed setup marked xfail is XPASS
    if outcome == "failed":
        longrepr = text
    elif xfail:
        call_extra["wasxfail"] = text
    elif outcome == "skipped":
        longrepr = (str(Path(parent.path)), 0, f"Skipped: {text}")

    def report(when: Literal["setup", "call", "teardown"], out: Outcome,
               rep: str | tuple[str, int, str] | None, **extra: object) -> pytest.TestReport:
        return pytest.TestReport(nodeid, (path, 0, domain), keywords, out, rep, when,
                                 **{CASE_MARK: nodeid}, **extra)  # type: ignore[arg-type]
    call_extra["duration"] = case.seconds  # its time in the kernel (printk timestamps)
    return [report("setup", "passed", None), report("call", outcome, longrepr, **call_extra),
            report("teardown", "passed", None, **system_out)]


def log_cases(parent: pytest.Item, result: ModuleResult, in_worker: bool,
              skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Report every KTAP case of `result` but those in `skip` (collected as items of their
    own): logstart, setup/call/teardown, logfinish.

    In a pytest-xdist worker, a report must carry the nodeid of the item being run (xdist
    sends nothing else to its controller), so there the cases' reports go out under the
    module item's nodeid and CaseReports, in the controller, gives them back their own."""
    hook = parent.ihook
    for case in result.cases:
        if case_key(case) in skip:
            continue
        reps = case_reports(parent, result, case)
        nodeid, location = reps[0].nodeid, reps[0].location
        hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        for rep in reps:
            if in_worker:
                rep.nodeid = parent.nodeid
            hook.pytest_runtest_logreport(report=rep)
        hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)


class CaseReports:
    """A plugin object of the process that shows the results (the pytest session, or
    pytest-xdist's controller; not a worker). Each KTAP case's report gets its own nodeid
    back (a worker sent it under its module's), and each case's call report counts as one
    test more than were collected, so the terminal's progress never goes past 100 %."""

    def __init__(self) -> None:
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)  # before the terminal and JUnit read the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = getattr(report, CASE_MARK, None)
        if nodeid:
            report.nodeid = nodeid
            if self.session is not None and report.when == "call":
                self.session.testscollected += 1
        if self.session is not None:
            junit_system_out(self.session.config, report)
