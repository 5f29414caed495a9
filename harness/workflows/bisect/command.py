"""`highmem bisect --good REV --bad REV [--source TREE] -- RUN_ARGS`: which commit broke it.

It drives `git bisect run` on a kernel tree with the harness as the test: each commit git
checks out is built in the tree's one build directory (incremental) and the suite runs on it
with RUN_ARGS (`highmem bisect-step`, bisect_step.py: 0 good, 1 bad, 125 skip, 128 abort).
At the end it prints the first bad commit with its failing case and PTE field, and every
commit tested.

The tree: --source when it is the top of a git repository of the user's; otherwise (the
default tarball, any other tree) the git copy `highmem mutate` keeps of it in the cache
(workflows/gitcopy.py), where a patch series can be committed and bisected. Before anything
is checked out: the revisions must name commits, --good must be an ancestor of --bad, the
tree must have no uncommitted changes to tracked files, no bisect in progress, no in-tree
build. `git bisect reset` always ends the session (Ctrl-C, SIGTERM and errors too), so the
tree is back at the branch it was on; nothing else of the tree is written.
"""

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from . import model as bi
from ...core.errors import HarnessError, Terminated
from ...core.repo import REPO
from ...stages.atomic_file import write_atomic
from ..gitcopy import copy_lock, copy_top, git
from ...stages.host import check_tools
from ...stages.paths import new_run_dir
from ...stages.procutil import die_with_parent
from ...stages.progress import say
from ...stages.source import resolve_source
from .step import PROGRESS_FD, parse_run_args, run_args
from ...frontends.cli import checked_run

STEP_BUDGET_S = 2 * 3600  # one step: a cold build on shared cores and a whole suite
STOP_GRACE_S = 90         # a step stopping QEMU and gdb after Ctrl-C


def _fix(tree: Path) -> str:
    return f"check the tree with `git -C {tree} status`, then run again"


def _git_out(tree: Path, *args: str) -> str:
    return git(tree, *args, fix=_fix(tree)).decode(errors="replace").strip()


def _git_ok(tree: Path, *args: str) -> bool:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True,
                          timeout=300).returncode == 0


def bisect_tree(spec: Path) -> tuple[Path, contextlib.AbstractContextManager[None]]:
    """The git tree to bisect and the lock to hold while doing it: the user's own git tree,
    or the cache copy of a tree without git (with the copy's lock)."""
    src = resolve_source(spec)
    if src.identity.startswith("git:"):
        return src.tree, contextlib.nullcontext()
    top = copy_top(src)
    if not (top / "linux" / ".git").is_dir():
        raise HarnessError(f"{spec} is not the top of a git tree, and has no git copy in the "
                           "cache to bisect in",
                           "pass --source with the top directory of a git kernel tree (e.g. a "
                           "clone of linux-stable 6.12)")
    return top / "linux", copy_lock(top)


def check_tree(tree: Path) -> None:
    """Refuse a tree git bisect must not touch: a bisect already in progress (ours from a
    killed session, or the user's), uncommitted changes to tracked files, an in-tree build."""
    gitdir = Path(_git_out(tree, "rev-parse", "--absolute-git-dir"))
    if (gitdir / "BISECT_START").exists():
        raise HarnessError(f"a git bisect is already in progress in {tree}",
                           f"finish it, or end it with `git -C {tree} bisect reset`")
    dirty = _git_out(tree, "status", "--porcelain", "--untracked-files=no")
    if dirty:
        first = ", ".join(x.strip() for x in dirty.splitlines()[:3])
        raise HarnessError(f"{tree} has uncommitted changes ({first}"
                           f"{', ...' if len(dirty.splitlines()) > 3 else ''})",
                           f"commit or stash them (`git -C {tree} stash`), then run again: a "
                           "bisect checks out other commits")
    if (tree / ".config").exists():
        raise HarnessError(f"{tree} holds an in-tree build (.config)",
                           f"run `make -C {tree} mrproper`: the harness builds out of tree")


def resolve_commit(tree: Path, rev: str, option: str) -> str:
    r = subprocess.run(["git", "-C", str(tree), "rev-parse", "--verify", "--quiet",
                        f"{rev}^{{commit}}"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise HarnessError(f"{option} {rev} does not name a commit in {tree}",
                           f"pick one from `git -C {tree} log --oneline`")
    return r.stdout.strip()


def check_range(tree: Path, good: str, bad: str) -> int:
    """How many commits are suspect (good..bad); --good must be a proper ancestor of --bad."""
    if good == bad:
        raise HarnessError(f"--good and --bad are the same commit {good[:12]}",
                           "pass a --good older than --bad")
    if not _git_ok(tree, "merge-base", "--is-ancestor", good, bad):
        raise HarnessError(f"--good {good[:12]} is not an ancestor of --bad {bad[:12]}",
                           "pass a --good commit that --bad descends from (swapped?)")
    return int(_git_out(tree, "rev-list", "--count", f"{good}..{bad}"))


def _step_env() -> dict[str, str]:
    """The step runs in the kernel tree: it finds this harness through PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), env.get("PYTHONPATH")) if x)
    env["LC_ALL"] = "C"  # git's messages as _conclude() reads them
    return env


def step_argv(log: Path, tree: Path, args: list[str], boot_failure: str) -> list[str]:
    """The command `git bisect run` calls for each commit."""
    return [sys.executable, "-m", "harness.cli", "bisect-step", "--log", str(log),
            "--source", str(tree), "--boot-failure", boot_failure, "--", *args]


def _ignore_sigint() -> None:
    """preexec for git: Ctrl-C is for the step (it stops QEMU and gdb, then exits 130, which
    ends `git bisect run`); git ignoring it waits for that. And git dies with us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(proc: "subprocess.Popen[bytes]") -> None:
    """Ctrl-C to git's process group (the step, make, QEMU); wait for all of it to be gone,
    SIGKILL what is left after STOP_GRACE_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        proc.poll()
        if proc.returncode is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def run_in_group(argv: list[str], tree: Path, out: Path, timeout: float) -> int:
    """Run argv in the tree in a process group of its own, its output to `out` but the
    steps' progress lines (written to a copy of our stderr they are given); Ctrl-C and
    SIGTERM stop the whole group first."""
    progress = os.dup(2)
    env = {**_step_env(), PROGRESS_FD: str(progress)}
    with out.open("ab") as f, contextlib.closing(os.fdopen(progress, "wb")):
        proc = subprocess.Popen(argv, cwd=tree, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, env=env, pass_fds=(progress,),
                                process_group=0, preexec_fn=_ignore_sigint)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise HarnessError(f"{' '.join(argv[:4])} did not finish in {timeout:.0f} s",
                               f"read {out}; pass fewer modules in RUN_ARGS") from None
        except KeyboardInterrupt:
            say("bisect: interrupted: stopping the step under test")
            _stop_group(proc)
            raise


@contextlib.contextmanager
def bisecting(tree: Path, good: str, bad: str, log: Path) -> Iterator[None]:
    """`git bisect start BAD GOOD` ... `git bisect reset`, the reset whatever happens."""
    head = _git_out(tree, "rev-parse", "--abbrev-ref", "HEAD")
    if head == "HEAD":
        head = _git_out(tree, "rev-parse", "HEAD")[:12]
    started = Path(_git_out(tree, "rev-parse", "--absolute-git-dir")) / "BISECT_START"
    try:
        with log.open("ab") as f:
            r = subprocess.run(["git", "-C", str(tree), "bisect", "start", bad, good],
                               stdout=f, stderr=subprocess.STDOUT, timeout=600)
        if r.returncode != 0:
            raise HarnessError(f"git bisect start failed in {tree}",
                               f"read {log} (an untracked file in the way of a checkout?)")
        yield
    finally:
        if started.exists():  # else git bisect start failed before it began
            _reset(tree, head, log)


def _reset(tree: Path, head: str, log: Path) -> None:
    with log.open("ab") as f:
        r = subprocess.run(["git", "-C", str(tree), "bisect", "reset"], stdout=f,
                           stderr=subprocess.STDOUT, timeout=600)
    if r.returncode == 0:
        say(f"bisect: git bisect reset: {tree} is back at {head}")
    else:
        say(f"bisect: `git bisect reset` failed in {tree} (read {log}); "
            f"run `git -C {tree} bisect reset` by hand")


def _subject(tree: Path, sha: str) -> str:
    return _git_out(tree, "log", "-1", "--format=%s", sha)


def _conclude(tree: Path, step: list[str], steps_log: Path,
              git_log: Path) -> tuple[int, list[str]]:
    """After `git bisect run`: the first bad commit (tested now if git never tested it:
    the --bad end), or why there is none; the exit status and the summary lines."""
    out = git_log.read_text(errors="replace")
    sha = bi.first_bad(out)
    steps = bi.read_steps(steps_log.read_text()) if steps_log.exists() else []
    unlogged = bi.steps_run(out) - len(steps)
    if unlogged > 0:  # git read an exit status no step wrote: a verdict nobody gave
        return 1, bi.summary(None, [], steps, f"{unlogged} step(s) ended without a verdict "
                             f"(a crash of the step itself? read {git_log})")
    if sha is not None and all(s.commit != sha for s in steps):
        say(f"bisect: the first bad commit is --bad {sha[:12]} itself, never tested: testing it")
        _git_out(tree, "checkout", "-q", sha)
        run_in_group(step, tree, git_log, STEP_BUDGET_S)
        steps = bi.read_steps(steps_log.read_text())
    if sha is not None:
        last = next(s for s in reversed(steps) if s.commit == sha) if steps else None
        if last is not None and last.verdict != bi.BAD:
            why = f"git bisect named {sha[:12]}, but it is {last.verdict} when tested " \
                  f"({last.evidence.line}): is --bad really bad?"
            return 1, bi.summary(None, [], steps, why)
        return 0, bi.summary((sha, _subject(tree, sha)), [], steps)
    candidates = [(c, _subject(tree, c)) for c in bi.only_skipped(out)]
    aborted = next((s for s in reversed(steps) if s.verdict == bi.ABORT), None)
    why = aborted.evidence.line if aborted else (out.strip().splitlines() or ["?"])[-1]
    return 1, bi.summary(None, candidates, steps, why)


def cmd_bisect(args: argparse.Namespace) -> int:
    """Validate everything, bisect, print the first bad commit; `git bisect reset` always."""
    check_tools(("git",))
    rargs = run_args(args.run_args)
    if any(a == "--source" or a.startswith("--source=") for a in rargs):
        raise HarnessError("--source is among RUN_ARGS",
                           "give the tree to bisect as `highmem bisect --source TREE`")
    tree, lock = bisect_tree(Path(args.source))
    try:
        checked_run(parse_run_args(rargs, tree))
    except SystemExit as e:  # argparse printed error: and fix: for `highmem run`
        return int(e.code) if isinstance(e.code, int) else 2
    with lock:
        check_tree(tree)
        good = resolve_commit(tree, args.good, "--good")
        bad = resolve_commit(tree, args.bad, "--bad")
        n = check_range(tree, good, bad)
        session = new_run_dir("bisect")
        steps_log, git_log = session / "steps.jsonl", session / "git-bisect.log"
        estimate = max(1, round(math.log2(n + 1)))
        say(f"highmem bisect: {n} commit{'s' * (n != 1)} after good {good[:12]} up to bad "
            f"{bad[:12]} in {tree}: about {estimate} step{'s' * (estimate != 1)}; RUN_ARGS "
            f"{' '.join(rargs) or '(the default suite)'}; artifacts in {session}")
        budget = STEP_BUDGET_S * (math.log2(n + 1) + 3)
        t0 = time.monotonic()
        step = step_argv(steps_log, tree, rargs, args.boot_failure)
        with bisecting(tree, good, bad, git_log):
            try:
                if bi.first_bad(git_log.read_text(errors="replace")) is None:
                    run_in_group(["git", "-C", str(tree), "bisect", "run", *step], tree,
                                 git_log, budget)
                # else one commit: `git bisect start` named it (bisect run would test HEAD)
                status, lines = _conclude(tree, step, steps_log, git_log)
            except KeyboardInterrupt as e:
                steps = bi.read_steps(steps_log.read_text()) if steps_log.exists() else []
                lines = bi.summary(None, [], steps, "interrupted")
                write_atomic(session / "bisect.txt", "\n".join(lines) + "\n")
                print("\n".join(lines), flush=True)
                raise Terminated() if isinstance(e, Terminated) else KeyboardInterrupt()
    lines.append(f"Time: {time.monotonic() - t0:.0f} s; artifacts: {session}")
    write_atomic(session / "bisect.txt", "\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return status
