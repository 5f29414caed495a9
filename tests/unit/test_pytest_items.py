"""The pytest plugin's item model, without a VM: a suite file collects to `boot` and one
`kernel_log` item per module (nothing runs at collection), each module's KTAP cases are
reported as tests when its item runs, and `pytest -n 2` (pytest-xdist) gives the same
outcome for every test as `-n 0`. The Lab under the plugin is the real one over
fakelab.py's operations (recorded module runs), in a pytest subprocess."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.core import ktap
from harness.core.results import ModuleResult
from harness.core.suite import ModuleSpec
from harness.frontends.pytest_cases import CASE_MARK, case_verdict

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "tests" / "catalogue" / "modules"

# the plugin's Lab made over fake operations: every module run replays a recorded one
CONFTEST = """
import harness.frontends.pytest_plugin as plugin
from harness.core.phases import Phases
from harness.lab import Lab
from tests.unit.fakelab import FakeOperations

plugin.stage_lab = lambda opts, run_dir: Lab(opts, run_dir, Phases(), FakeOperations(run_dir))
"""

SUITE = f"""
modules:
  - name: kmap_local_basic
  - {{name: cat_null_deref, dir: {CATALOGUE}}}
  - {{name: cat_healthy, dir: {CATALOGUE}}}
  - {{name: cat_spin, dir: {CATALOGUE}}}
  - {{name: kmap_local_basic, params: again=1}}
"""


def _pytest(tmp: Path, *args: str, suite: str = SUITE) -> subprocess.Popen[str]:
    """pytest on the suite in `tmp`, started (wait with communicate())."""
    tmp.mkdir(exist_ok=True)
    (tmp / "conftest.py").write_text(CONFTEST)
    (tmp / "suite.yaml").write_text(suite)
    env = dict(os.environ, PYTHONPATH=str(REPO), HIGHMEM_ARTIFACTS=str(tmp / "art"))
    return subprocess.Popen([sys.executable, "-m", "pytest", "suite.yaml", "-p",
                             "no:cacheprovider", "--rootdir", str(tmp), *args], cwd=tmp,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    return p.returncode, out, err


def _outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for c in ET.parse(junit).getroot().iter("testcase"):
        kind = next((k for k in ("failure", "error", "skipped") if c.find(k) is not None),
                    "passed")
        out[f"{c.get('classname')}::{c.get('name')}"] = kind
    return out


def test_collection_runs_nothing_and_lists_modules(tmp_path):
    rc, out, err = _finish(_pytest(tmp_path, "--collect-only", "-q"))
    assert rc == 0, out + err
    ids = [line for line in out.splitlines() if line.startswith("suite.yaml::")]
    assert ids == ["suite.yaml::boot", "suite.yaml::kmap_local_basic::kernel_log",
                   "suite.yaml::cat_null_deref::kernel_log", "suite.yaml::cat_healthy::kernel_log",
                   "suite.yaml::cat_spin::kernel_log",
                   "suite.yaml::kmap_local_basic:again=1::kernel_log"], out
    assert "cases," not in out + err, "a module ran at collection"


def test_cases_are_tests_and_xdist_gives_the_same_outcomes(tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    started = [_pytest(parallel, "-n", "2", "--junitxml=junit.xml"),
               _pytest(serial, "-n", "0", "--junitxml=junit.xml"),
               _pytest(tmp_path / "broken", "-n", "2", suite="timeout: soon\nmodules: []\n")]
    (rc2, out2, err2), (rc0, out0, err0), (rc_bad, out_bad, _) = [_finish(p) for p in started]
    assert (rc0, rc2) == (1, 1), out0 + err0 + out2 + err2
    # a suite that cannot be collected is a usage error (exit 2) under xdist as without it
    assert rc_bad == 2 and "error: " in out_bad and "'timeout' must be a number" in out_bad
    got0, got2 = _outcomes(serial / "junit.xml"), _outcomes(parallel / "junit.xml")
    assert got0 == got2
    assert got0["suite.yaml.kmap_local_basic::kmap_local_above_4g"] == "passed"
    assert got0["suite.yaml.kmap_local_basic:again=1::kmap_local_below_4g"] == "passed"
    assert got0["suite.yaml.cat_null_deref::kernel_log"] == "failure"
    assert got0["suite.yaml.cat_spin::kernel_log"] == "failure"
    assert got0["suite.yaml.cat_healthy::cat_healthy_kmap_local"] == "passed"
    assert got0["suite.yaml::boot"] == "passed"
    n_cases = sum(1 for k in got0 if not k.endswith(("::kernel_log", "::boot")))
    assert n_cases >= 5
    # the terminal counts the cases, and its progress ends at 100 %
    for out in (out0, out2):
        assert f"{sum(v == 'passed' for v in got0.values())} passed" in out, out
        assert "[100%]" in out and not any(f"[{n}%]" in out for n in range(101, 999)), out
    # each worker its own run directory; the failing case names its artifacts
    runs = sorted(d.name.rsplit("-", 3)[0] for d in (parallel / "art").iterdir())
    assert runs == ["pytest-gw0", "pytest-gw1"], runs
    assert [d.name.rsplit("-", 3)[0] for d in (serial / "art").iterdir()] == ["pytest"]
    for junit in (serial / "junit.xml", parallel / "junit.xml"):  # through xdist too
        xml = junit.read_text()
        assert "<system-out>artifacts: " in xml and "<properties>" not in xml


def _result(status: str, directive: str = "") -> tuple[ModuleResult, ktap.Case]:
    case = ktap.Case(name="kmap_x", number=1, status=status, directive=directive,
                     diagnostics=["# kmap_x: expected a == b"])
    suite = ktap.Suite(name="s", plan=1, cases=[case], crashed=False)
    return ModuleResult(spec=ModuleSpec("m"), suites=[suite]), case


@pytest.mark.parametrize("status,directive,want", [
    ("PASS", "", ("passed", "", False)),
    ("SKIP", "one CPU", ("skipped", "one CPU", False)),
    ("XFAIL", "known bug", ("skipped", "known bug", True)),
])
def test_case_verdicts(status, directive, want):
    assert case_verdict(*_result(status, directive)) == want


@pytest.mark.parametrize("status", ["FAIL", "CRASHED", "NOT RUN"])
def test_failing_case_says_why(status):
    outcome, text, xfail = case_verdict(*_result(status))
    assert (outcome, xfail) == ("failed", False)
    assert text.splitlines() == [f"KTAP case kmap_x: {status}", "  # kmap_x: expected a == b"]


def test_case_reports_survive_xdist_serialisation():
    from harness.frontends.pytest_cases import case_reports

    class Parent:  # what case_reports reads of the module's item
        class parent:
            nodeid, name = "suite.yaml::m", "m"
        location = ("suite.yaml", 0, "m::kernel_log")
        path = Path("suite.yaml")
        keywords = {"m": 1}
    result, case = _result("XFAIL", "known bug")
    reps = case_reports(Parent(), result, case)  # type: ignore[arg-type]
    assert [r.when for r in reps] == ["setup", "call", "teardown"]
    assert [hasattr(r, "wasxfail") for r in reps] == [False, True, False]  # else XPASS twice
    back = pytest.TestReport._from_json(reps[1]._to_json())
    assert back.nodeid == "suite.yaml::m::kmap_x"
    assert getattr(back, CASE_MARK) == "suite.yaml::m::kmap_x"
    assert getattr(back, "wasxfail") == "known bug"
    assert back.outcome == "skipped"


def _pytest_cached(tmp: Path, *args: str) -> tuple[int, str, str]:
    """pytest on the suite in `tmp` with pytest's cache on (cases become items)."""
    tmp.mkdir(exist_ok=True)
    (tmp / "conftest.py").write_text(CONFTEST)
    (tmp / "suite.yaml").write_text(SUITE)
    env = dict(os.environ, PYTHONPATH=str(REPO), HIGHMEM_ARTIFACTS=str(tmp / "art"))
    where = [] if any(a.startswith("suite.yaml::") for a in args) else ["suite.yaml"]
    p = subprocess.run([sys.executable, "-m", "pytest", *where, "--rootdir", str(tmp),
                        *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_cases_are_items_once_seen_k_nodeid_lf_and_durations(tmp_path):
    # first run: the cases are reported and remembered in pytest's cache
    rc, out, err = _pytest_cached(tmp_path, "-q")
    assert rc == 1, out + err
    rc, out, _ = _pytest_cached(tmp_path, "--collect-only", "-q")
    ids = [x for x in out.splitlines() if x.startswith("suite.yaml::")]
    assert "suite.yaml::kmap_local_basic::kmap_local_above_4g" in ids, ids
    assert "suite.yaml::cat_healthy::cat_healthy_kmap_local" in ids, ids
    # -k CASE runs that case (its module once), nothing else
    rc, out, err = _pytest_cached(tmp_path, "-q", "-k", "cat_healthy_kmap_local",
                                  "--junitxml=k.xml")
    assert rc == 0 and "1 passed" in out, out + err
    assert list(_outcomes(tmp_path / "k.xml")) == ["suite.yaml.cat_healthy::cat_healthy_kmap_local"]
    # the nodeid pytest printed reruns just that case
    rc, out, err = _pytest_cached(tmp_path, "-q",
                                  "suite.yaml::kmap_local_basic::kmap_local_below_4g")
    assert rc == 0 and "1 passed" in out, out + err
    # --lf: only what failed last time (the crash and the hang's items)
    _pytest_cached(tmp_path, "-q")
    rc, out, err = _pytest_cached(tmp_path, "-q", "--lf", "--junitxml=lf.xml")
    got = _outcomes(tmp_path / "lf.xml")
    assert got and all(v == "failure" for v in got.values()), got
    assert not any("kmap_local_basic" in k for k in got), got
    # --durations: the module's run counted in the setup of the item that ran it
    rc, out, err = _pytest_cached(tmp_path, "-q", "--durations=3", "--durations-min=0",
                                  "-k", "cat_healthy")
    assert "slowest 3 durations" in out and " setup " in out, out


def test_highmem_param_sets_a_modules_parameters_as_highmem_run_does(tmp_path):
    rc, out, err = _finish(_pytest(tmp_path, "--collect-only", "-q",
                                   "--highmem-param", "cat_healthy:x=1",
                                   "--highmem-param", "cat_healthy:y=2"))
    assert rc == 0, out + err
    assert "suite.yaml::cat_healthy:x=1,y=2::kernel_log" in out, out
    rc, out, err = _finish(_pytest(tmp_path / "bad", "--collect-only", "-q",
                                   "--highmem-param", "nonsense"))
    assert rc == 2 and "--highmem-param 'nonsense' is not MODULE:key=value" in out + err
