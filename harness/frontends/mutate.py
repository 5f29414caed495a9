"""`highmem mutate`: how much the suite catches. Each patch (a mutant: a small bug planted in
the kernel) is applied in turn to a git copy of the kernel tree, the suite runs on the
patched kernel exactly as `highmem run` runs it (run.run, in this process), the patch is
reverted, and a matrix says for each one whether a check caught it, the kernel fell over,
or nothing noticed (core/mutation.py classifies and formats).

The copy lives in $HIGHMEM_CACHE/mutate/NAME/linux and is made once: a git tree is cloned
with `git clone --shared` (its uncommitted changes to tracked files committed on top), any
other tree (the unpacked tarball by default) is copied and committed as "pristine". The
user's tree is never written. The build directory is keyed by the copy's path, so one cold
build is followed by incremental ones: a mutant recompiles the files it touches (and, after
its revert, the next build recompiles them back). One session at a time per copy (flock).
"""

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core import mutation as mu
from ..core import report
from ..core.errors import BuildError, HarnessError, Terminated
from ..core.options import RunOptions
from ..core.results import RunResult
from ..core.suite import ModuleSpec
from ..operations import StageOperations
from ..run import run
from ..stages.host import check_tools
from ..stages.paths import cache_dir, new_run_dir
from ..stages.progress import say
from ..stages.source import KernelSource, one_line, resolve_source
from .cli import checked_run

GIT_IDENTITY = ("-c", "user.name=highmem mutate", "-c", "user.email=highmem-mutate@localhost")
MARKER = "source.json"


def _git(tree: Path, *args: str, stdin: bytes | None = None, timeout: float = 1800) -> bytes:
    """stdout of `git -C tree ARGS`; a HarnessError with git's message if it fails."""
    argv = ["git", "-C", str(tree), *GIT_IDENTITY, *args]
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HarnessError(f"git {args[0]} in {tree} failed: {one_line(str(e))}",
                           "check that git works and the disk is not full") from None
    if r.returncode != 0:
        raise HarnessError(f"git {' '.join(args[:2])} in {tree} failed: "
                           f"{one_line(r.stderr.decode(errors='replace')) or r.returncode}",
                           f"check {tree}, or remove {tree.parent} to make the copy again")
    return r.stdout


class KernelCopy:
    """The git copy the mutants are applied to: check, apply, revert, nothing else."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.tree = top / "linux"

    def apply_error(self, patch: Path) -> str | None:
        """Why `patch` does not apply to the pristine copy (git's first line), or None."""
        r = subprocess.run(["git", "-C", str(self.tree), "apply", "--check", str(patch.resolve())],
                           capture_output=True, text=True, errors="replace", timeout=120)
        if r.returncode == 0:
            return None
        return one_line(r.stderr, 160) or f"git apply --check exited {r.returncode}"

    def apply(self, patch: Path) -> None:
        _git(self.tree, "apply", str(patch.resolve()))

    def revert(self) -> None:
        """Back to the pristine commit: tracked files restored, new files removed."""
        _git(self.tree, "checkout", "-q", "--", ".")
        _git(self.tree, "clean", "-fdq")

    def make_clean(self) -> None:
        """A copy left patched (a session killed with -9) is reset before use."""
        if _git(self.tree, "status", "--porcelain", "--untracked-files=normal").strip():
            say(f"  {self.tree} was left modified (an interrupted session?): resetting it")
            _git(self.tree, "reset", "-q", "--hard")
            _git(self.tree, "clean", "-fdq")


@contextmanager
def copy_lock(top: Path) -> Iterator[None]:
    """One `highmem mutate` at a time on one copy (flock, released when we die)."""
    top.parent.mkdir(parents=True, exist_ok=True)
    with (top.parent / f"{top.name}.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"another `highmem mutate` is using the kernel copy {top}",
                               "wait for it to finish, or pass another --source") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _commit_all(tree: Path, message: str) -> None:
    _git(tree, "add", "-A", "-f", ".")
    _git(tree, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)


def _sync_git(src: KernelSource, tree: Path) -> None:
    """The copy at the user's HEAD, with the user's uncommitted changes (to tracked files)
    committed on top; files whose content does not change keep their mtime."""
    head = _git(src.tree, "rev-parse", "HEAD").decode().strip()
    _git(tree, "reset", "-q", "--hard")
    _git(tree, "clean", "-fdq")
    _git(tree, "checkout", "-q", "--detach", head)
    diff = _git(src.tree, "--no-optional-locks", "diff", "HEAD", "--binary")
    if diff.strip():
        _git(tree, "apply", "--binary", "-", stdin=diff)
        _commit_all(tree, f"pristine: the uncommitted changes of {src.tree}")


def _new_copy(src: KernelSource, top: Path) -> None:
    """Make the copy in a scratch directory, then rename it into place (an interrupted copy
    leaves nothing behind)."""
    part = Path(tempfile.mkdtemp(prefix=f".{top.name}.", suffix=".part", dir=top.parent))
    try:
        tree = part / "linux"
        if src.identity.startswith("git:"):
            say(f"  cloning {src.tree} (git clone --shared) into {top}")
            _git(part, "clone", "-q", "--shared", "--no-checkout", str(src.tree), "linux")
            _sync_git(src, tree)
        else:
            say(f"  copying {src.tree} into {top} and committing it as 'pristine' (once)")
            r = subprocess.run(["cp", "-a", "--reflink=auto", str(src.tree), str(tree)],
                               capture_output=True, text=True, errors="replace", timeout=3600)
            if r.returncode != 0:
                raise HarnessError(f"cannot copy {src.tree}: {one_line(r.stderr)}",
                                   f"check the free space in {top.parent}")
            _git(tree, "init", "-q")
            _git(tree, "config", "gc.auto", "0")
            _commit_all(tree, f"pristine: {src.tree}")
        _write_marker(part, src)
        os.rename(part, top)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def _write_marker(top: Path, src: KernelSource) -> None:
    (top / MARKER).write_text(json.dumps({"tree": str(src.tree), "identity": src.identity,
                                          "made": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


def _marker(top: Path) -> dict[str, str]:
    try:
        data = json.loads((top / MARKER).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def kernel_copy(src: KernelSource, top: Path) -> KernelCopy:
    """The copy of `src` at `top`, made now or brought up to date (call under copy_lock)."""
    kc = KernelCopy(top)
    seen = _marker(top)
    if not seen or not (kc.tree / ".git").is_dir():
        if top.exists():
            shutil.rmtree(top)
        _new_copy(src, top)
        return kc
    kc.make_clean()
    if seen.get("identity") == src.identity:
        say(f"  kernel copy {kc.tree} is up to date (made {seen.get('made', '?')})")
    elif src.identity.startswith("git:"):
        say(f"  {src.tree} changed since the copy was made: bringing {kc.tree} up to date")
        _sync_git(src, kc.tree)
        _write_marker(top, src)
    else:
        say(f"  reusing the copy of {src.tree} made {seen.get('made', '?')} (not a git "
            f"tree: later changes to it are not seen; remove {top} to copy it again)")
    return kc


def _build_error(e: BuildError, kc: KernelCopy) -> str:
    """The first error line of the kernel build log a BuildError points at (`read LOG`)."""
    log = Path(e.fix.removeprefix("read ").strip())
    try:
        line = mu.first_build_error(log.read_text(errors="replace"))
    except OSError:
        line = e.what
    return line.replace(f"{kc.tree}/", "")


def _with_diagnostics(result: RunResult) -> dict[str, object]:
    """report.json's dict, each KTAP case with the module's own diagnostic lines (why a
    case failed, in the module's words) for the evidence."""
    data = json.loads(report.report_json(result))
    for m, md in zip(result.modules, data["modules"]):
        for case, cd in zip(m.cases, md["ktap"]):
            cd["diagnostics"] = case.diagnostics
    return data


def _phase_text(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f} s" for k, v in phases.items() if v >= 0.5)


def run_mutant(kc: KernelCopy, mutant: mu.Mutant, opts: RunOptions,
               suite: tuple[ModuleSpec, ...], run_dir: Path) -> mu.Outcome:
    """Apply, run the suite, revert (in `finally`, Ctrl-C included); the verdict.
    KeyboardInterrupt (Terminated for SIGTERM) is raised again after the revert."""
    t0 = time.monotonic()
    why = kc.apply_error(mutant.path)
    if why is not None:
        return mu.Outcome(mutant, mu.NO_APPLY, why, seconds=time.monotonic() - t0)
    run_dir.mkdir(parents=True, exist_ok=True)
    kc.apply(mutant.path)
    try:
        try:
            result = run(opts, suite, run_dir, StageOperations())
        except BuildError as e:
            return mu.Outcome(mutant, mu.NO_BUILD, _build_error(e, kc), e.what,
                              seconds=time.monotonic() - t0, run_dir=run_dir)
        except HarnessError as e:
            return mu.Outcome(mutant, mu.ERROR, e.what, f"{e.what} ({e.fix})",
                              seconds=time.monotonic() - t0, run_dir=run_dir)
        (run_dir / "report.txt").write_text(report.format_report(result) + "\n")
        if result.interrupted:
            raise Terminated() if result.interrupted == "SIGTERM" else KeyboardInterrupt()
        verdict, evidence, detail = mu.classify(_with_diagnostics(result))
        return mu.Outcome(mutant, verdict, evidence, detail, seconds=time.monotonic() - t0,
                          phases=dict(result.phases.times), run_dir=run_dir)
    finally:
        kc.revert()


def _resolve(args: argparse.Namespace) -> tuple[list[mu.Mutant], RunOptions,
                                                 tuple[ModuleSpec, ...]]:
    """Every usage and host check: the mutants, the run options, the suite."""
    suite_file, patches = mu.split_arguments(args.paths)
    if suite_file is not None:
        args.suite = str(suite_file)
    mutants = [mu.load_mutant(p) for p in patches]
    opts, suite = checked_run(args)
    check_tools(("git", "cp"))
    return mutants, opts, suite


def _finish(outcomes: list[mu.Outcome], meta: dict[str, object], session: Path,
            json_file: str | None, expect_fail: bool) -> int:
    """Print the matrix, write matrix.txt and mutate.json (and --json FILE); exit status."""
    status = mu.exit_status(outcomes, expect_fail)
    caught = "caught by a check" if expect_fail else "caught"
    verdict = "PASS" if status == 0 else "FAIL"
    text = "\n".join([
        f"Mutation matrix: {meta['source']} (copy {meta['copy']}), suite {meta['suite']}",
        mu.matrix_table(outcomes),
        f"Summary: {mu.summary_line(outcomes)}",
        f"Time: copy {meta['copy_s']:.0f} s, mutants {sum(o.seconds for o in outcomes):.0f} s; "
        f"total {meta['total_s']:.0f} s",
        f"Verdict: {verdict} ({'every' if status == 0 else 'not every'} mutant {caught}) "
        f"(artifacts: {session})"])
    print(text, flush=True)
    (session / "matrix.txt").write_text(text + "\n")
    doc = json.dumps(mu.matrix_json(outcomes, {**meta, "exit_status": status}), indent=2) + "\n"
    (session / "mutate.json").write_text(doc)
    if json_file:
        Path(json_file).write_text(doc)
    return status


def cmd_mutate(args: argparse.Namespace) -> int:
    """`highmem mutate`: the copy, each mutant in turn, the matrix."""
    mutants, opts, suite = _resolve(args)
    started = time.monotonic()
    src = resolve_source(opts.source)
    top = cache_dir() / "mutate" / mu.copy_name(src.tree, src.identity)
    with copy_lock(top):
        t0 = time.monotonic()
        kc = kernel_copy(src, top)
        copy_s = time.monotonic() - t0
        opts.source = kc.tree
        session = new_run_dir("mutate")
        say(f"highmem mutate: {len(mutants)} mutants on {kc.tree} (copy ready in "
            f"{copy_s:.0f} s); artifacts in {session}")
        meta: dict[str, object] = {
            "source": str(args.source), "copy": str(kc.tree), "suite": str(args.suite),
            "modules": list(args.module), "expect_fail": bool(args.expect_fail),
            "copy_s": copy_s, "total_s": 0.0}
        outcomes: list[mu.Outcome] = []
        try:
            for k, m in enumerate(mutants, 1):
                say(f"[{k}/{len(mutants)}] {m.name}: {m.description}")
                run_dir = session / m.name
                if run_dir.exists():  # two patches of one name, from two directories
                    run_dir = session / f"{m.name}-{k}"
                o = run_mutant(kc, m, opts, suite, run_dir)
                outcomes.append(o)
                say(f"[{k}/{len(mutants)}] {m.name}: {mu.label(o.verdict)} in {o.seconds:.0f} s"
                    + (f" ({_phase_text(o.phases)})" if o.phases else "")
                    + f"; {time.monotonic() - started:.0f} s since the start")
        except KeyboardInterrupt:
            outcomes += [mu.Outcome(m, mu.NOT_RUN, "the session was interrupted")
                         for m in mutants[len(outcomes):]]
            meta["total_s"] = time.monotonic() - started
            _finish(outcomes, meta, session, args.json, args.expect_fail)
            raise
        meta["total_s"] = time.monotonic() - started
        return _finish(outcomes, meta, session, args.json, args.expect_fail)

