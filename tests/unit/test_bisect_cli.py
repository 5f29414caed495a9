"""`highmem bisect` on a tiny git tree with a fake step (a script that calls a commit bad
when its mm/highmem.c has "pfn + 1"): the checks before anything is checked out, the first
bad commit found (and the --bad end tested when git never did), only skipped commits left,
Ctrl-C, and the tree always back where it was."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.workflows.bisect import model as bi
from harness.frontends import cli
from harness.workflows.bisect import command as bisect
from harness.stages import host

MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 7\nEXTRAVERSION =\n"
FAKE_STEP = """
import os, signal, subprocess, sys, time
sys.path.insert(0, {repo!r})
from harness.workflows.bisect import model as bi
signal.signal(signal.SIGINT, signal.default_int_handler)
log = sys.argv[1]
text = open("mm/highmem.c").read()
sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
n = len(bi.read_steps(open(log).read())) + 1 if os.path.exists(log) else 1
if "CRASH" in text:
    raise SystemExit(1)  # a step dying with a traceback: git reads "bad"
if "INTERRUPT" in text:
    os.kill(int(os.environ["BISECT_TEST_PID"]), signal.SIGINT)
    time.sleep(60)
verdict = bi.SKIP if "SKIP" in text else bi.BAD if "pfn + 1" in text else bi.GOOD
ev = bi.Evidence("m/c: mapped: PFN: expected 0x1, got 0x2", "m/c", "mapped", "PFN",
                 "PFN: expected 0x1, got 0x2") if verdict == bi.BAD else bi.Evidence(verdict)
with open(log, "a") as f:
    f.write(bi.Step(n, sha, "s", verdict, ev, 0.1).to_line())
sys.exit(bi.exit_code(verdict))
"""


def git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tree),
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A git kernel tree of 6 commits on branch `work`: base, then each appending a line
    to mm/highmem.c; the cache and artifacts in tmp_path; the fake step."""
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")
    step = tmp_path / "fake_step.py"
    step.write_text(FAKE_STEP.format(repo=str(Path(bisect.__file__).parents[2])))
    monkeypatch.setattr(bisect, "step_argv",
                        lambda log, tree, args, boot: [sys.executable, str(step), str(log)])
    t = tmp_path / "linux"
    (t / "mm").mkdir(parents=True)
    (t / "Makefile").write_text(MAKEFILE)
    (t / "mm" / "highmem.c").write_text("int kmap_local(int pfn) { return pfn; }\n")
    git(t, "init", "-q", "-b", "work")
    git(t, "add", "-A")
    git(t, "commit", "-qm", "base")
    return t


def commit(t: Path, line: str, subject: str) -> str:
    with (t / "mm" / "highmem.c").open("a") as f:
        f.write(line + "\n")
    git(t, "commit", "-qam", subject)
    return git(t, "rev-parse", "HEAD")


def history(t: Path, lines: list[str]) -> list[str]:
    """base, then one commit per line: their shas."""
    return [git(t, "rev-parse", "HEAD")] + [commit(t, x, f"c{n}: {x}")
                                            for n, x in enumerate(lines, 1)]


def bisect_cli(t: Path, good: str, bad: str, *extra: str) -> int:
    return cli.main(["bisect", "--source", str(t), "--good", good, "--bad", bad, *extra,
                     "--", "--module", "kmap_local_basic"])


def untouched(t: Path, head: str) -> None:
    assert git(t, "rev-parse", "--abbrev-ref", "HEAD") == "work"
    assert git(t, "rev-parse", "HEAD") == head
    assert not (t / ".git" / "BISECT_START").exists()


def test_finds_the_first_bad_commit_names_case_and_field_and_resets(tree, capsys):
    shas = history(tree, ["/* 1 */", "/* 2 */", "/* pfn + 1 */", "/* 4 */", "/* 5 */"])
    assert bisect_cli(tree, shas[0], shas[-1]) == 0
    out, err = capsys.readouterr()
    assert f"First bad commit: {shas[3]} c3: /* pfn + 1 */" in out
    assert "  failing case: m/c (checkpoint: mapped)\n  PTE field: PFN (PFN: expected 0x1" in out
    assert "highmem bisect: 5 commits after good" in err
    assert f"git bisect reset: {tree} is back at work" in err
    steps = bi.read_steps(next((tree.parent / "artifacts").glob("bisect-*/steps.jsonl"))
                          .read_text())
    assert shas[3] in [s.commit for s in steps] and len(steps) <= 3
    untouched(tree, shas[-1])


def test_the_bad_end_is_tested_when_git_never_did(tree, capsys):
    shas = history(tree, ["/* pfn + 1 */", "/* HEAD, later */"])
    assert bisect_cli(tree, shas[0], shas[1]) == 0
    assert f"First bad commit: {shas[1]}" in capsys.readouterr().out
    untouched(tree, shas[2])
    log = next((tree.parent / "artifacts").glob("bisect-*/steps.jsonl"))
    assert [s.commit for s in bi.read_steps(log.read_text())] == [shas[1]]  # not HEAD
    good_end = history(tree, ["/* no longer */"])  # a --bad where the suite passes
    git(tree, "checkout", "-q", "-b", "fixed", shas[0])
    later = commit(tree, "/* fine */", "fine")
    git(tree, "checkout", "-q", "work")
    assert good_end and bisect_cli(tree, shas[0], later) == 1
    assert "is --bad really bad?" in capsys.readouterr().out
    untouched(tree, good_end[-1])


def test_a_step_that_dies_without_a_verdict_is_no_result(tree, capsys):
    shas = history(tree, ["/* 1 */", "/* CRASH */", "/* 3 */"])
    assert bisect_cli(tree, shas[0], shas[-1]) == 1
    out = capsys.readouterr().out
    assert "No first bad commit found: 1 step(s) ended without a verdict" in out
    untouched(tree, shas[-1])


def test_only_skipped_commits_left_lists_the_candidates(tree, capsys):
    shas = history(tree, ["/* SKIP */", "/* SKIP pfn + 1 */", "/* pfn + 1 */"])
    assert bisect_cli(tree, shas[0], shas[-1]) == 1
    out = capsys.readouterr().out
    assert "No single first bad commit" in out
    assert f"  {shas[1]} c1: /* SKIP */" in out
    untouched(tree, shas[-1])


def test_ctrl_c_stops_the_step_and_resets_the_tree(tree, capsys, monkeypatch):
    shas = history(tree, ["/* 1 */", "/* INTERRUPT */", "/* pfn + 1 */", "/* 4 */"])
    monkeypatch.setenv("BISECT_TEST_PID", str(os.getpid()))
    monkeypatch.setattr(bisect, "STOP_GRACE_S", 20)
    seen = []
    old = signal.signal(signal.SIGINT, lambda *a: seen.append(1) or
                        signal.default_int_handler(*a))
    try:
        assert bisect_cli(tree, shas[0], shas[-1]) == 130
    finally:
        signal.signal(signal.SIGINT, old)
    out, err = capsys.readouterr()
    assert seen and "No first bad commit found: interrupted" in out
    assert "bisect: interrupted: stopping the step under test" in err
    untouched(tree, shas[-1])


@pytest.mark.parametrize("setup,what", [
    (lambda t, s: (t / "mm" / "highmem.c").write_text("edited\n"), "has uncommitted changes"),
    (lambda t, s: git(t, "bisect", "start"), "a git bisect is already in progress"),
    (lambda t, s: (t / ".config").write_text("CONFIG_X=y\n"), "holds an in-tree build"),
])
def test_a_tree_bisect_must_not_touch_is_refused(tree, capsys, setup, what):
    shas = history(tree, ["/* 1 */", "/* pfn + 1 */"])
    setup(tree, shas)
    assert bisect_cli(tree, shas[0], shas[-1]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("error: ") and what in err[-2] and err[-1].startswith("fix: ")
    assert git(tree, "rev-parse", "HEAD") == shas[-1]


@pytest.mark.parametrize("args,what", [
    (lambda s: ["--good", "nosuchrev", "--bad", s[-1]], "--good nosuchrev does not name a commit"),
    (lambda s: ["--good", s[-1], "--bad", s[0]], "is not an ancestor of --bad"),
    (lambda s: ["--good", s[0], "--bad", s[0]], "are the same commit"),
    (lambda s: ["--good", s[0], "--bad", s[-1], "--", "--source", "/x"], "--source is among"),
])
def test_revisions_and_run_args_are_checked_first(tree, capsys, args, what):
    shas = history(tree, ["/* 1 */", "/* pfn + 1 */"])
    assert cli.main(["bisect", "--source", str(tree), *args(shas)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert what in err[-2] and err[-1].startswith("fix: ")
    assert not list((tree.parent / "artifacts").glob("bisect-*"))


def test_bad_run_args_and_a_tree_without_git(tree, tmp_path, capsys):
    shas = history(tree, ["/* 1 */"])
    assert cli.main(["bisect", "--source", str(tree), "--good", shas[0], "--bad", shas[1],
                     "--", "--module", "nope"]) == 2
    assert "error:" in capsys.readouterr().err
    plain = tmp_path / "plain"
    (plain / "mm").mkdir(parents=True)
    (plain / "Makefile").write_text(MAKEFILE)
    assert bisect_cli(plain, "a", "b") == 2
    err = capsys.readouterr().err
    assert "is not the top of a git tree, and has no git copy in the cache" in err


def test_the_step_argv_and_its_parser():
    argv = bisect.step_argv(Path("/s/steps.jsonl"), Path("/t"), ["--module", "m"], "bad")
    assert argv[1:] == ["-m", "harness.cli", "bisect-step", "--log", "/s/steps.jsonl",
                        "--source", "/t", "--boot-failure", "bad", "--", "--module", "m"]
    ns = cli._parse(argv[3:])
    assert (ns.log, ns.source, ns.boot_failure, ns.run_args) == (
        "/s/steps.jsonl", "/t", "bad", ["--", "--module", "m"])


def test_the_step_logs_its_verdict_and_exits_as_git_bisect_run_reads(tree, monkeypatch):
    """bisect-step with the run replaced: bad, skip for a build failure, abort (never bad)
    for a harness bug, each one JSON line in the log."""
    from harness.core.errors import BuildError
    from harness.core.failure import Failure
    from harness.core.ktap import Case, Suite
    from harness.core.phases import Phases
    from harness.core.results import ModuleResult, RunResult
    from harness.workflows.bisect import step as bisect_step

    outcomes = ["crash", "build", "bug"]

    def fake_run(opts, suite, run_dir, ops):
        assert opts.source == tree.resolve()
        what = outcomes.pop(0)
        if what == "build":
            raise BuildError("the kernel build failed (make exit 2)", f"read {run_dir}/nolog")
        if what == "bug":
            raise ValueError("a bug of ours")
        m = ModuleResult(spec=suite[0], insmod_rc=0, suites=[Suite("s", 1, [
            Case("kmap_local_above_4g", 1, "PASS")], False)],
            failure=Failure("crash", "oops in kmap_local_basic: BUG: x; at f+0x3c a.c:1"))
        return RunResult(run_dir=run_dir, modules=[m], meminfo={}, phases=Phases())
    monkeypatch.setattr(bisect_step, "run", fake_run)
    monkeypatch.setattr(bisect_step, "_die_with_git", lambda: None)
    monkeypatch.chdir(tree)
    log = tree.parent / "artifacts" / "b" / "steps.jsonl"
    log.parent.mkdir(parents=True)
    argv = ["bisect-step", "--log", str(log), "--", "--module", "kmap_local_basic"]
    assert [cli.main(argv) for _ in range(3)] == [1, 125, 128]
    steps = bi.read_steps(log.read_text())
    assert [(s.number, s.verdict) for s in steps] == [(1, bi.BAD), (2, bi.SKIP), (3, bi.ABORT)]
    assert steps[0].evidence.case == "kmap_local_basic"
    again = (Path(steps[0].run_dir) / "reproduce.txt").read_text()
    assert f"checkout {steps[0].commit} && cd " in again
    assert again.rstrip().endswith(f"highmem run --module kmap_local_basic --source {tree}")
    assert steps[1].evidence.line.startswith("does not build: ")
    assert "ValueError: a bug of ours" in steps[2].evidence.line
    assert (Path(steps[2].run_dir) / "traceback.txt").read_text().startswith("Traceback")


def test_a_checkout_git_refuses_is_an_error_and_the_tree_stays(tree, capsys):
    base = git(tree, "rev-parse", "HEAD")
    git(tree, "checkout", "-q", "-b", "other")
    (tree / "mm" / "new.c").write_text("tracked\n")
    git(tree, "add", "mm/new.c")
    git(tree, "commit", "-qm", "add new.c")
    bad = commit(tree, "/* pfn + 1 */", "break")
    git(tree, "checkout", "-q", "work")
    (tree / "mm" / "new.c").write_text("untracked, in the way\n")
    assert bisect_cli(tree, base, bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("error: git bisect start failed") and err[-1].startswith("fix: ")
    untouched(tree, base)
    assert (tree / "mm" / "new.c").read_text() == "untracked, in the way\n"
