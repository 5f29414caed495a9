"""The main job (`make run` / `highmem run`): the whole pipeline, then the report.

source -> config -> build (kernel + modules) -> image -> boot -> guest channel -> module with
gdb checkpoints -> report (lab.py decides the stages up to the module, operations.py does
them). Every run gets an artifacts directory that is kept whether the run passes or fails.
No I/O library is imported here: the unit tests drive run() with fake operations.
"""

import os
import sys
import time
from pathlib import Path

from .core import report
from .core.errors import HarnessError, Terminated
from .core.options import RunOptions
from .core.phases import Phases
from .core.results import RunResult, exit_status, not_run
from .core.suite import ModuleSpec
from .lab import Lab, Operations
from .stages.progress import say


def _deps_seconds() -> float | None:
    started = os.environ.get("HIGHMEM_DEPS_STARTED")
    try:
        return time.time() - float(started) if started else None
    except ValueError:
        return None


def run(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
        ops: Operations) -> RunResult:
    """Prepare (a HarnessError here ends the run: nothing could be tested), then every
    module of `suite` in order; Ctrl-C or SIGTERM stops QEMU and gdb and marks the rest NOT
    RUN. report.json is written whatever happens after the preparation."""
    phases = Phases()
    deps = _deps_seconds()
    if deps is not None:
        phases.add("deps", deps)
    say(f"highmem-harness run: artifacts in {run_dir}")
    result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=phases)
    lab = Lab(opts, run_dir, phases, ops)
    lab.prepare()
    try:
        for spec in suite:
            result.modules.append(lab.run_spec(spec))
            result.meminfo, result.layout = lab.meminfo, lab.layout
    except KeyboardInterrupt as e:
        result.interrupted = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        say("interrupted: stopping QEMU and gdb; the report lists what did not run")
    finally:
        lab.close()
        result.boots = lab.boots
        for spec in suite[len(result.modules):]:
            result.modules.append(not_run(spec, "the run was interrupted before this module"))
        report.write_json(run_dir / "report.json", result)
    return result


def print_report(result: RunResult) -> str:
    """The report on stdout and in report.txt."""
    text = report.format_report(result)
    (result.run_dir / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    return text


def run_and_report(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
                   ops: Operations) -> int:
    """`highmem run` once its options are checked: the run, the report, the exit status."""
    try:
        result = run(opts, suite, run_dir, ops)
    except (HarnessError, KeyboardInterrupt):
        print(f"artifacts kept in {run_dir}", file=sys.stderr)
        raise
    print_report(result)
    return exit_status(result)
