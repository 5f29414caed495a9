"""The main job (`make run` / `highmem run`): the whole pipeline, then the report.

source -> config -> build (kernel + modules) -> image -> boot -> guest channel -> module with
gdb checkpoints -> report (lab.py decides the stages up to the module, operations.py does
them). Every run gets an artifacts directory that is kept whether the run passes or fails.
No I/O library is imported here: the unit tests drive run() with fake operations.
"""

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .core import report
from .core.errors import HarnessError, Terminated
from .core.junit import junit_xml
from .core.kcidb import ORIGIN, kcidb_report, kernel_identity
from .core.options import RunOptions
from .core.phases import Phases
from .core.results import RunResult, exit_status, not_run
from .core.shard import Shard, WorkItem, cell_id, select
from .core.suite import ModuleSpec
from .lab import Lab, Operations
from .stages.progress import say


@dataclass(frozen=True)
class Outputs:
    """What `highmem run` does besides report.txt and report.json: which shard of the
    modules it runs (--shard), and where it also writes JUnit XML and KCIDB JSON."""

    shard: Shard = Shard()
    junit: Path | None = None
    kcidb: Path | None = None
    origin: str = ORIGIN            # KCIDB origin (the lab's name at KernelCI)


def _deps_seconds() -> float | None:
    started = os.environ.get("HIGHMEM_DEPS_STARTED")
    try:
        return time.time() - float(started) if started else None
    except ValueError:
        return None


def plan(lab: Lab, suite: tuple[ModuleSpec, ...],
         shard: Shard) -> tuple[list[int], dict[str, object]]:
    """After prepare(): the positions in `suite` that `shard` runs (core/shard.py's rule),
    and report.json's `kernel` (what was tested) and `plan` (for KCIDB and `highmem merge`).
    The run id is $HIGHMEM_RUN_ID (a CI pipeline's id: its shards share one KCIDB checkout
    and build), else the run directory's name."""
    o = lab.opts
    kernel = kernel_identity(str(o.source), lab.kernel.source.identity, lab.kernel.release,
                             o.configs, o.memory, o.smp,
                             (lab.run_dir / "kernel.config").read_text(errors="replace"))
    cell = cell_id(kernel["release"], kernel["fragments"], o.memory, o.smp)
    items = [WorkItem(cell, s.title) for s in suite]
    picked = select(items, shard)
    return picked, {"kernel": kernel, "plan": {
        "run_id": os.environ.get("HIGHMEM_RUN_ID") or lab.run_dir.name, "cell": cell,
        "shard": str(shard), "items": [[i.cell, i.module] for i in items], "picked": picked}}


def run(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
        ops: Operations, shard: Shard = Shard()) -> RunResult:
    """Prepare (a HarnessError here ends the run: nothing could be tested), then every
    module of `suite` that `shard` runs, in order (the others are not run nor reported);
    Ctrl-C or SIGTERM stops QEMU and gdb and marks the rest NOT RUN. report.json is written
    whatever happens after the preparation."""
    phases = Phases()
    deps = _deps_seconds()
    if deps is not None:
        phases.add("deps", deps)
    say(f"highmem-harness run: artifacts in {run_dir}")
    result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=phases)
    lab = Lab(opts, run_dir, phases, ops)
    lab.prepare()
    picked, extra = plan(lab, suite, shard)
    suite = tuple(suite[i] for i in picked)
    if shard.count > 1:
        say(f"shard {shard}: {len(suite)} of {len(extra['plan']['items'])} modules")
    try:
        run_modules(lab, suite, result)
    finally:
        lab.close()
        result.boots = lab.boots
        write_reports(result, extra)
    return result


def run_modules(lab: Lab, suite: tuple[ModuleSpec, ...], result: RunResult,
                before: Callable[[int, int], None] | None = None) -> RunResult:
    """The run loop, the one every way in uses (`highmem run`, matrix, mutate, bisect, the
    warm guest): each module of `suite` on the prepared Lab, in order, its result into
    `result`; Ctrl-C or SIGTERM stops and marks the rest NOT RUN. `before(i, n)`: called
    before module i of n (the warm guest drops no guest after its last module)."""
    try:
        for i, spec in enumerate(suite):
            if before is not None:
                before(i, len(suite))
            result.modules.append(lab.run_spec(spec))
            result.meminfo, result.layout = lab.meminfo, lab.layout
            result.memory_note = lab.memory_note
    except KeyboardInterrupt as e:
        result.interrupted = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        say("interrupted: stopping QEMU and gdb; the report lists what did not run")
    finally:
        for spec in suite[len(result.modules):]:
            result.modules.append(not_run(spec, "the run was interrupted before this module"))
    return result


def write_reports(result: RunResult, extra: dict[str, object] | None = None) -> str:
    """report.json and report.txt of `result` in its run directory (their one writer);
    the report's text."""
    report.write_json(result.run_dir / "report.json", result, extra)
    text = report.format_report(result)
    (result.run_dir / "report.txt").write_text(text + "\n")
    return text


def print_report(result: RunResult) -> str:
    """The report on stdout (run() wrote it to report.txt)."""
    text = report.format_report(result)
    print(text, flush=True)
    return text


def write_outputs(out: Outputs, report_json: Path) -> None:
    """JUnit XML and KCIDB JSON, when asked for, from report.json."""
    data = json.loads(report_json.read_text())
    if out.junit is not None:
        out.junit.write_text(junit_xml([data]))
    if out.kcidb is not None:
        out.kcidb.write_text(json.dumps(kcidb_report([data], out.origin), indent=1) + "\n")


def run_and_report(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
                   ops: Operations, out: Outputs = Outputs()) -> int:
    """`highmem run` once its options are checked: the run, the report, the exit status."""
    try:
        result = run(opts, suite, run_dir, ops, out.shard)
    except (HarnessError, KeyboardInterrupt):
        print(f"artifacts kept in {run_dir}", file=sys.stderr)
        raise
    print_report(result)
    write_outputs(out, run_dir / "report.json")
    return exit_status(result)
