"""`highmem mutate`: how much the suite catches. Each patch (a mutant: a small bug planted in
the kernel) is applied in turn to a git copy of the kernel tree, the suite runs on the
patched kernel exactly as `highmem run` runs it (run.run, in this process), the patch is
reverted, and a matrix says for each one whether a check caught it, the kernel fell over,
or nothing noticed (workflows/mutate/model.py classifies and formats).

The copy (workflows/gitcopy.py) lives in $HIGHMEM_CACHE/mutate/NAME/linux and is made once;
the user's tree is never written. Its build directory is keyed by the copy's path, so one
cold build is followed by incremental ones: a mutant recompiles the files it touches (and,
after its revert, the next build recompiles them back). One session at a time per copy.
"""

import argparse
import json
import time
from pathlib import Path

from . import model as mu
from ...core import report
from ...core.errors import BuildError, ConfigError, HarnessError, Terminated
from ...core.options import RunOptions
from ...core.results import RunResult
from ...core.suite import ModuleSpec
from ...operations import StageOperations
from ...run import run
from ...stages.atomic_file import write_atomic
from ...stages.host import check_tools
from ..gitcopy import KernelCopy, copy_lock, copy_top, kernel_copy
from ...stages.paths import new_run_dir
from ...stages.progress import say
from ...stages.source import resolve_source
from ...frontends.cli import checked_run


def build_error_line(e: BuildError | ConfigError, tree: Path) -> str:
    """The first error line of the kernel build log a BuildError points at (`read LOG`)."""
    log = Path(e.fix.removeprefix("read ").strip())
    try:
        line = mu.first_build_error(log.read_text(errors="replace"))
    except OSError:
        line = e.what
    return line.replace(f"{tree}/", "")


def report_with_diagnostics(result: RunResult) -> dict[str, object]:
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
               suite: tuple[ModuleSpec, ...], run_dir: Path,
               version: tuple[int, ...] | None = None) -> mu.Outcome:
    """Apply, run the suite, revert (in `finally`, Ctrl-C included); the verdict. A mutant
    for another kernel (its `# kernel:` line; `version`: the tree's) does not apply.
    KeyboardInterrupt (Terminated for SIGTERM) is raised again after the revert."""
    t0 = time.monotonic()
    why = mutant.wrong_kernel(version) if version else None
    why = why or kc.apply_error(mutant.path)
    if why is not None:
        return mu.Outcome(mutant, mu.NO_APPLY, why, seconds=time.monotonic() - t0)
    run_dir.mkdir(parents=True, exist_ok=True)
    kc.apply(mutant.path)
    try:
        try:
            result = run(opts, suite, run_dir, StageOperations())
        except BuildError as e:
            return mu.Outcome(mutant, mu.NO_BUILD, build_error_line(e, kc.tree), e.what,
                              seconds=time.monotonic() - t0, run_dir=run_dir)
        except HarnessError as e:
            return mu.Outcome(mutant, mu.ERROR, e.what, f"{e.what} ({e.fix})",
                              seconds=time.monotonic() - t0, run_dir=run_dir)
        if result.interrupted:
            raise Terminated() if result.interrupted == "SIGTERM" else KeyboardInterrupt()
        verdict, evidence, detail = mu.classify(report_with_diagnostics(result))
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
    write_atomic(session / "matrix.txt", text + "\n")
    doc = json.dumps(mu.matrix_json(outcomes, {**meta, "exit_status": status}), indent=2) + "\n"
    write_atomic(session / "mutate.json", doc)
    if json_file:
        write_atomic(Path(json_file), doc)
    return status


def cmd_mutate(args: argparse.Namespace) -> int:
    """`highmem mutate`: the copy, each mutant in turn, the matrix."""
    mutants, opts, suite = _resolve(args)
    started = time.monotonic()
    src = resolve_source(opts.source)
    top = copy_top(src)
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
                o = run_mutant(kc, m, opts, suite, run_dir, src.version)
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

