"""The main job (`make run` / `highmem run`): the whole pipeline, then the report.

source -> kconfig -> build (kernel + modules) -> image -> qemu boot -> serial shell ->
module with gdb checkpoints -> report (lab.py owns the stages up to the module). Every run
gets an artifacts directory that is kept whether the run passes or fails.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .errors import Terminated
from .lab import Lab, LabOptions
from .layout import Layout
from .paths import new_run_dir
from .progress import Phases, say
from .results import BootResult, ModuleResult, not_run
from .suite import ModuleSpec


@dataclass
class RunOptions:
    lab: LabOptions = field(default_factory=LabOptions)
    suite: tuple[ModuleSpec, ...] = ()


@dataclass
class RunResult:
    run_dir: Path
    modules: list[ModuleResult]
    meminfo: dict[str, int]
    phases: Phases
    layout: Layout | None = None
    boots: list[BootResult] = field(default_factory=list)
    interrupted: str = ""  # "SIGINT" or "SIGTERM" when the run was cut short

    @property
    def passed(self) -> bool:
        return (bool(self.modules) and not self.interrupted
                and all(m.passed for m in self.modules) and all(b.passed for b in self.boots))


def _deps_seconds() -> float | None:
    started = os.environ.get("HIGHMEM_DEPS_STARTED")
    try:
        return time.time() - float(started) if started else None
    except ValueError:
        return None


def run(opts: RunOptions, run_dir: Path | None = None) -> RunResult:
    phases = Phases()
    deps = _deps_seconds()
    if deps is not None:
        phases.add("deps", deps)
    run_dir = run_dir or new_run_dir()
    say(f"highmem-harness run: artifacts in {run_dir}")
    result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=phases)
    lab = Lab(opts.lab, run_dir, phases)
    try:
        for spec in opts.suite:
            result.modules.append(lab.run_spec(spec))
            result.meminfo, result.layout = lab.meminfo, lab.layout
    except KeyboardInterrupt as e:
        result.interrupted = "SIGTERM" if isinstance(e, Terminated) else "SIGINT"
        say("interrupted: stopping QEMU and gdb; the report lists what did not run")
    finally:
        lab.close()
        result.boots = lab.boots
        for spec in opts.suite[len(result.modules):]:
            result.modules.append(not_run(spec, "the run was interrupted before this module"))
        report.write_json(run_dir / "report.json", result)
    return result


def print_report(result: RunResult) -> str:
    text = report.format_report(result)
    (result.run_dir / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    return text
