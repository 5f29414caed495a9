"""`highmem bisect-step`: one step of `highmem bisect`, the command `git bisect run` calls in
the kernel tree for each commit it checks out.

It builds the checked-out commit (the build directory is the tree's one, so the build is
incremental), runs the suite with the RUN_ARGS `highmem bisect` was given, exactly as
`highmem run` runs it (run.run, in this process; its output goes to the step's artifacts
directory), and exits with what `git bisect run` reads (workflows/bisect/model.py: 0 good, 1
bad, 125 skip, 128 abort), after one JSON line in the step log (--log) and one progress
line.

It can be used by hand too, in a tree where a `git bisect` is in progress: `git bisect run
.venv/bin/highmem bisect-step -- --module kmap_local_basic`.
"""

import argparse
import os
import shlex
import signal
import subprocess
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from . import model as bi
from ...core.errors import BuildError, ConfigError, HarnessError, SourceError, Terminated
from ...core.repo import REPO
from ...operations import StageOperations
from ...run import run
from ...stages.paths import new_run_dir
from ...stages.procutil import die_with_parent
from ...stages.progress import say
from ...frontends.cli import checked_run, parser
from ..mutate.command import build_error_line, report_with_diagnostics

PROGRESS_FD = "HIGHMEM_BISECT_PROGRESS_FD"  # where `highmem bisect` wants our progress lines


def progress(line: str) -> None:
    """A progress line to `highmem bisect`'s stderr (git's own stderr, and ours, go to the
    session's git-bisect.log), else to stderr."""
    fd = os.environ.get(PROGRESS_FD, "")
    if fd.isdigit():
        try:
            os.write(int(fd), (line + "\n").encode())
            return
        except OSError:
            pass
    say(line)


def _git_text(tree: Path, *args: str) -> str:
    """stdout of a read-only git command, "" if it fails."""
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              errors="replace", timeout=120).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def suspects(tree: Path) -> dict[str, str]:
    """`git rev-list --bisect-vars` of the bisect in progress: how many commits are still
    suspect and about how many steps are left after this one ({} outside a bisect)."""
    goods = _git_text(tree, "for-each-ref", "--format=%(refname)", "refs/bisect/good-*")
    if not _git_text(tree, "rev-parse", "--verify", "--quiet", "refs/bisect/bad"):
        return {}
    return bi.bisect_vars(_git_text(tree, "rev-list", "--bisect-vars", "refs/bisect/bad",
                                    "--not", *goods.split()))


def run_args(items: list[str]) -> list[str]:
    """RUN_ARGS without the `--` that separates them."""
    return items[1:] if items[:1] == ["--"] else items


def parse_run_args(args: list[str], tree: Path) -> argparse.Namespace:
    """RUN_ARGS as `highmem run` parses them, on `tree` (argparse's SystemExit(2), having
    printed error: and fix:, for a usage error)."""
    ns = parser().parse_args(["run", *args, "--source", str(tree)])
    ns.argv = ["run", *args]
    return ns


def _test_commit(tree: Path, args: list[str], run_dir: Path,
                 no_boot: str) -> tuple[str, bi.Evidence]:
    """Build and run the suite on the checked-out commit: its verdict and evidence. The
    run's progress and report go to run_dir/output.txt."""
    try:
        opts, suite = checked_run(parse_run_args(args, tree))
    except SystemExit:
        return bi.ABORT, bi.Evidence(f"RUN_ARGS {' '.join(args)} are not `highmem run`'s")
    except HarnessError as e:
        return bi.ABORT, bi.Evidence(f"{e.what} ({e.fix})")
    run_dir.mkdir(parents=True, exist_ok=True)
    sha = _git_text(tree, "rev-parse", "HEAD")
    (run_dir / "reproduce.txt").write_text(
        f"git -C {shlex.quote(str(tree))} checkout {sha} && cd {shlex.quote(str(REPO))} && "
        f"{shlex.join(['.venv/bin/highmem', 'run', *args, '--source', str(tree)])}\n")
    with (run_dir / "output.txt").open("w") as out, redirect_stdout(out), redirect_stderr(out):
        try:
            result = run(opts, suite, run_dir, StageOperations())
        except (BuildError, ConfigError) as e:
            return bi.SKIP, bi.Evidence(f"does not build: {build_error_line(e, tree)}")
        except SourceError as e:
            return bi.SKIP, bi.Evidence(f"not a usable kernel tree: {e.what}")
        except HarnessError as e:
            return bi.ABORT, bi.Evidence(f"{e.what} ({e.fix})")
    if result.interrupted:
        raise Terminated() if result.interrupted == "SIGTERM" else KeyboardInterrupt()
    return bi.step_verdict(report_with_diagnostics(result), no_boot)


def _die_with_git() -> None:
    """SIGTERM when git (our parent) dies: `highmem bisect` killed with -9 takes git with it
    (PDEATHSIG), and so this step, which stops QEMU and gdb on the way out."""
    die_with_parent(signal.SIGTERM)


def cmd_bisect_step(args: argparse.Namespace) -> int:
    """Test HEAD of the tree (default: the current directory, where `git bisect run` runs
    us); the exit status `git bisect run` reads."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # highmem bisect ignores it in git
    _die_with_git()
    tree = Path(args.source).resolve()
    log = Path(args.log) if args.log else None
    session = log.parent if log else new_run_dir("bisect")
    prior = bi.read_steps(log.read_text()) if log and log.exists() else []
    number = len(prior) + 1
    sha = _git_text(tree, "rev-parse", "HEAD")
    subject = _git_text(tree, "log", "-1", "--format=%s", "HEAD")
    if not sha:
        progress(f"error: {tree} is not a git tree with a HEAD\nfix: run this where `git "
                 "bisect run` runs it: the top of the kernel tree")
        return bi.exit_code(bi.ABORT)
    progress(bi.progress_line(number, sha, subject, suspects(tree)))
    run_dir = session / f"step-{number:02d}-{sha[:12]}"
    t0 = time.monotonic()
    try:
        verdict, evidence = _test_commit(tree, run_args(args.run_args), run_dir,
                                         args.boot_failure)
    except KeyboardInterrupt:
        progress(f"bisect: step {number} interrupted: QEMU and gdb were stopped")
        raise
    except Exception as e:  # our bug: stop the bisect rather than call the commit bad
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "traceback.txt").write_text(traceback.format_exc())
        verdict, evidence = bi.ABORT, bi.Evidence(
            f"harness error {type(e).__name__}: {e} (see {run_dir / 'traceback.txt'})")
    step = bi.Step(number, sha, subject, verdict, evidence, time.monotonic() - t0,
                   str(run_dir) if run_dir.exists() else "")
    if log is not None:
        with log.open("a") as f:
            f.write(step.to_line())
    progress(bi.step_line(step))
    return bi.exit_code(verdict)

