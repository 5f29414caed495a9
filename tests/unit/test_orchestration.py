"""`highmem run` end to end without a VM, the way kunit_tool's KUnitMainTest drives
kunit.main() with the kernel mocked: cli.main() parses and checks as it does for a user,
then run.run_and_report() drives the real Lab over fake operations (fakelab.py) whose guest
replays recorded module runs. report.txt, report.json and the exit status are compared with
one golden file per behaviour in data/orchestration/golden/ (wall-clock times and the run
directory masked). The recordings are real runs, so pass.report.txt is, line for line, the
report of the run kmap_local_basic.json was recorded from. HIGHMEM_UPDATE_GOLDEN=1 rewrites
the golden files from this run.
"""

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.core.options import RunOptions
from harness.core.phases import Phases
from harness.core.results import exit_status
from harness.core.suite import ModuleSpec
from harness.frontends import cli
from harness.lab import Lab
from harness.run import run, run_and_report
from harness.stages import host
from tests.unit.fakelab import INTERRUPT, FakeOperations

DATA = Path(__file__).parent / "data" / "orchestration"
GOLDEN = DATA / "golden"
RunCli = Callable[..., tuple[int, Path, FakeOperations]]


@pytest.fixture
def highmem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """`highmem ARGV...` with the operations faked; returns (exit status, run dir, ops)."""
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HIGHMEM_DEPS_STARTED", raising=False)
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")

    def go(*argv: str, **fake: object) -> tuple[int, Path, FakeOperations]:
        ops = FakeOperations(tmp_path, **fake)  # type: ignore[arg-type]

        def load(module: str, name: str) -> object:
            assert (module, name) == ("commands", "run_suite")
            return lambda opts, suite, run_dir, *out: run_and_report(opts, suite, run_dir,
                                                                     ops, *out)
        monkeypatch.setattr(cli, "load", load)
        rc = cli.main(list(argv))
        runs = sorted((tmp_path / "artifacts").glob("run-*"))
        assert len(runs) == 1, runs
        return rc, runs[0], ops
    return go


def masked_text(text: str, run_dir: Path) -> str:
    """report.txt without what changes from run to run: the run directory, wall-clock time
    of the boots and of the phases."""
    text = text.replace(str(run_dir), "RUN_DIR")
    text = re.sub(r"(?m)^(  boot \d+: )\d+\.\d s", r"\g<1>#.# s", text)
    return re.sub(r"(?m)^(Elapsed: .*)$", lambda m: re.sub(r"-?\d+\.\d", "#.#", m.group(1)),
                  text)


def masked_json(text: str, run_dir: Path) -> str:
    data = json.loads(text.replace(str(run_dir), "RUN_DIR"))
    data["phases_s"] = {k: "#" for k in data["phases_s"]}
    for b in data["boots"]:
        b["seconds"] = "#"
    for m in data["modules"]:
        m["started_s"] = m["ended_s"] = "#"
    if "plan" in data:  # the run directory's name, or $HIGHMEM_RUN_ID
        data["plan"]["run_id"] = "#"
    return json.dumps(data, indent=2) + "\n"


def check_golden(behaviour: str, run_dir: Path) -> None:
    got = {"txt": masked_text((run_dir / "report.txt").read_text(), run_dir),
           "json": masked_json((run_dir / "report.json").read_text(), run_dir)}
    for ext, text in got.items():
        golden = GOLDEN / f"{behaviour}.report.{ext}"
        if os.environ.get("HIGHMEM_UPDATE_GOLDEN"):
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs: diff it with {run_dir}"


def test_pass(highmem, capsys):
    rc, run_dir, ops = highmem("run", "--module", "kmap_local_basic")
    assert rc == 0
    assert ops.boots == 1 and ops.ran == ["kmap_local_basic"]
    assert ops.sessions[0].attached and not ops.sessions[0].up  # closed at the end
    assert "Verdict: PASS" in capsys.readouterr().out
    assert (run_dir / "reproduce.txt").read_text().endswith(
        " && highmem run --module kmap_local_basic\n")
    assert (run_dir / "modules" / "01-kmap_local_basic" / "result.txt").read_text() == "PASS\n"
    check_golden("pass", run_dir)


def test_crash_then_a_healthy_module_on_a_fresh_guest(highmem):
    rc, run_dir, ops = highmem("run", str(DATA / "crash.yaml"))
    assert rc == 1
    assert ops.boots == 2 and ops.ran == ["cat_null_deref", "cat_healthy"]
    result = json.loads((run_dir / "report.json").read_text())
    assert [m["status"] for m in result["modules"]] == ["FAIL", "PASS"]
    assert result["modules"][0]["failure"]["kind"] == "crash"
    assert "BUG: kernel NULL pointer dereference" in \
        (run_dir / "modules" / "01-cat_null_deref" / "console.log").read_text()
    check_golden("crash", run_dir)


def test_hang_then_a_healthy_module_on_a_fresh_guest(highmem):
    rc, run_dir, ops = highmem("run", str(DATA / "hang.yaml"))
    assert rc == 1
    assert ops.boots == 2 and ops.ran == ["cat_spin", "cat_healthy"]
    result = json.loads((run_dir / "report.json").read_text())
    assert [m["status"] for m in result["modules"]] == ["FAIL", "PASS"]
    assert result["modules"][0]["failure"]["kind"] == "hang"
    check_golden("hang", run_dir)


def test_boot_panic_fails_the_boot_and_runs_nothing(highmem):
    rc, run_dir, ops = highmem("run", "--module", "kmap_local_basic", "--module",
                               "kmap_local_suite", boot_panics=True)
    assert rc == 1
    assert ops.boots == 1 and ops.ran == []  # the same kernel is not booted again
    result = json.loads((run_dir / "report.json").read_text())
    assert [m["status"] for m in result["modules"]] == ["NOT RUN", "NOT RUN"]
    assert result["boots"][0]["failure"]["kind"] == "boot"
    check_golden("boot-panic", run_dir)


def test_a_module_that_does_not_build_is_a_result(highmem):
    rc, run_dir, ops = highmem("run", "--module", "kmap_local_suite", "--module",
                               "kmap_local_basic",
                               no_build={"kmap_local_suite": "kmap_local_suite.c:3:1: error: x"})
    assert rc == 1 and ops.ran == ["kmap_local_basic"]
    result = json.loads((run_dir / "report.json").read_text())
    assert [m["status"] for m in result["modules"]] == ["NO BUILD", "PASS"]


def test_ctrl_c_reports_what_did_not_run(tmp_path):
    ops = FakeOperations(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    suite = (ModuleSpec("kmap_local_basic"), ModuleSpec(INTERRUPT), ModuleSpec("cat_healthy"))
    result = run(RunOptions(), suite, run_dir, ops)
    assert exit_status(result) == 130 and result.interrupted == "SIGINT"
    assert [m.failure.kind if m.failure else "" for m in result.modules] == \
        ["", "not-run", "not-run"]
    assert not ops.sessions[0].up  # QEMU and gdb stopped on the way out
    assert json.loads((run_dir / "report.json").read_text())["interrupted"] == "SIGINT"


def test_the_lab_does_nothing_until_asked(tmp_path):
    ops = FakeOperations(tmp_path)
    lab = Lab(RunOptions(), tmp_path, Phases(), ops)
    assert lab.built is None and ops.boots == 0 and not (tmp_path / "build").exists()
    with pytest.raises(RuntimeError, match="prepare"):
        lab.kernel
    lab.prepare()
    assert lab.kernel.build_dir == tmp_path / "build" and ops.boots == 0
    assert (tmp_path / "kernel.config").read_text().startswith("CONFIG_X86_PAE=y")


def test_an_attached_guest_is_never_one_without_gdb(tmp_path):
    ops = FakeOperations(tmp_path)
    lab = Lab(RunOptions(), tmp_path, Phases(), ops)
    s = lab.boot(attach=False)  # `highmem boot`, `highmem gdb`: the gdbstub stays free
    assert not s.attached and lab.layout is None
    assert lab.boot(attach=True) is s and s.attached  # attached now, not booted again
    assert ops.boots == 1 and lab.layout is not None
    lab.close()
    assert not s.up and lab.boot(attach=True).attached and ops.boots == 2
