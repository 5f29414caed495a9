"""The main job (`make run` / `highmem run`): the whole pipeline, then the report.

source -> config -> build (kernel + modules) -> image -> boot -> guest channel -> module with
gdb checkpoints -> report (lab.py decides the stages up to the module, operations.py does
them). Every run gets an artifacts directory that is kept whether the run passes or fails.
No I/O library is imported here: the unit tests drive run() with fake operations.

An environment error (core/host_errors.py: ENOSPC, EROFS, EACCES, a directory gone, on the
artifacts, the cache or /dev/shm) is not a test result: during the preparation it ends the
run as one error and fix (exit 2); during the modules it stops the loop, the modules not
run are marked "not run" with it, the report names the directory and the errno, exit 2.
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
from .core.host_errors import HOST_ERRNOS, HostIOError, errno_in_text, from_oserror, host_error
from .core.junit import junit_xml
from .core.kcidb import ORIGIN, kcidb_report, kernel_identity
from .core.options import RunOptions
from .core.phases import Phases
from .core.results import RunResult, exit_status, not_run
from .core.shard import Shard, WorkItem, cell_id, select
from .core.suite import ModuleSpec
from .lab import Lab, Operations
from .stages.atomic_file import write_atomic
from .stages.paths import host_roots, refusing_root
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
        ops: Operations, shard: Shard = Shard(),
        after: Callable[[Lab], None] | None = None,
        before_module: Callable[[Lab, ModuleSpec], None] | None = None) -> RunResult:
    """Prepare (a HarnessError here ends the run: nothing could be tested), then every
    module of `suite` that `shard` runs, in order (the others are not run nor reported);
    Ctrl-C or SIGTERM stops QEMU and gdb and marks the rest NOT RUN. report.json is written
    whatever happens after the preparation. `after(lab)`: called on the last guest, once
    every module ran, `before_module(lab, spec)` before each module (`highmem coverage`
    reads the kernel's gcov data there, and before a module that crashes by design)."""
    phases = Phases()
    deps = _deps_seconds()
    if deps is not None:
        phases.add("deps", deps)
    say(f"highmem-harness run: artifacts in {run_dir}")
    result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=phases)
    lab = Lab(opts, run_dir, phases, ops)
    try:
        lab.prepare()
        _check_module_builds(lab)
        picked, extra = plan(lab, suite, shard)
    except OSError as e:
        host = as_host_error(e, run_dir, "preparing the run")
        if host is None:
            raise
        lab.close()
        raise host from None
    suite = tuple(suite[i] for i in picked)
    if shard.count > 1:
        items = extra["plan"]["items"]  # type: ignore[index]  # plan()'s own dict
        say(f"shard {shard}: {len(suite)} of {len(items)} modules")
    try:
        ahead = None if before_module is None else \
            (lambda i, _n: before_module(lab, suite[i]))
        run_modules(lab, suite, result, before=ahead)
        if after is not None and not result.interrupted:  # e.g. read the guest's coverage
            after(lab)
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
    why = "the run was interrupted before this module"
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
    except (HostIOError, OSError) as e:
        host = as_host_error(e, result.run_dir, "running the modules")
        if host is None:
            raise
        result.environment = host.as_dict()
        why = f"not run: {host.what}"
        say(f"stopped: {host.what}; the report lists what did not run")
        lab.close()
    finally:
        for spec in suite[len(result.modules):]:
            result.modules.append(not_run(spec, why))
    return result


def _check_module_builds(lab: Lab) -> None:
    """A test module that did not build because the host refused (the compiler's "No
    space left on device", "Read-only file system") is an environment error, not the
    module's NO BUILD."""
    for name, why in (lab.built.failures if lab.built else {}).items():
        errno_name = errno_in_text(why)
        if errno_name in ("ENOSPC", "EDQUOT", "EROFS"):
            lab.close()
            raise host_error(errno_name, refusing_root(lab.run_dir, errno_name),
                             f"building the module {name} ({why})", host_roots(lab.run_dir))


def as_host_error(e: BaseException, run_dir: Path, doing: str) -> HostIOError | None:
    """The environment error `e` is (None: it is not one: our bug, or a test result). A
    missing file counts only when a directory it was in is gone (the run directory
    removed under the run), never a file merely absent."""
    name = getattr(e, "filename", None)
    gone = not run_dir.is_dir() or (isinstance(name, str) and not Path(name).parent.is_dir())
    if isinstance(e, OSError) and not name and e.errno in HOST_ERRNOS:
        e = OSError(e.errno, e.strerror, refusing_root(run_dir, HOST_ERRNOS[e.errno]))
    top = Path(name) if isinstance(name, str) else run_dir
    for parent in top.parents:  # the topmost directory that is gone
        if parent.exists():
            break
        top = parent
    return from_oserror(e, doing, host_roots(run_dir), dir_gone=gone, gone=str(top))


def write_reports(result: RunResult, extra: dict[str, object] | None = None,
                  to: Path | None = None) -> str:
    """report.json and report.txt of `result` in its run directory, or in `to` (their one
    writer; each written atomically); the report's text. HostIOError (error and fix) when
    the host will not hold them."""
    if result.environment:
        extra = {**(extra or {}), "environment": result.environment}
    out = result.run_dir if to is None else to
    text = report_text(result)
    try:
        write_atomic(out / "report.json", report.report_json(result, extra))
        write_atomic(out / "report.txt", text + "\n")
    except OSError as e:
        host = as_host_error(e, result.run_dir, "writing the report")
        if host is None:
            raise
        raise host from None
    return text


def report_text(result: RunResult) -> str:
    """The report; an environment error that stopped the run first."""
    text = report.format_report(result)
    env = result.environment
    if env:
        text = (f"ENVIRONMENT ERROR (not a test result): {env['what']}\n"
                f"  fix: {env['fix']}\n{text}")
    return text


def print_report(result: RunResult) -> str:
    """The report on stdout (run() wrote it to report.txt)."""
    text = report_text(result)
    print(text, flush=True)
    return text


def write_outputs(out: Outputs, report_json: Path) -> None:
    """JUnit XML and KCIDB JSON, when asked for, from report.json."""
    data = json.loads(report_json.read_text())
    if out.junit is not None:
        write_atomic(out.junit, junit_xml([data]))
    if out.kcidb is not None:
        write_atomic(out.kcidb, json.dumps(kcidb_report([data], out.origin), indent=1) + "\n")


def run_and_report(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
                   ops: Operations, out: Outputs = Outputs()) -> int:
    """`highmem run` once its options are checked: the run, the report, the exit status."""
    try:
        result = run(opts, suite, run_dir, ops, out.shard)
    except (HarnessError, KeyboardInterrupt):
        print(f"artifacts kept in {run_dir}", file=sys.stderr)
        raise
    print_report(result)
    if result.environment:
        print(f"artifacts kept in {run_dir}", file=sys.stderr)
        env = result.environment
        raise HostIOError(env["what"], env["fix"], env["path"], env["errno"])
    write_outputs(out, run_dir / "report.json")
    return exit_status(result)
