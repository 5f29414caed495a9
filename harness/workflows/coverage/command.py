"""`highmem coverage [SUITE]`: the suite on a gcov kernel (kernel-configs/gcov.config), all
modules on one guest (no restore between them: a restore would reset the counters), then
the guest's .gcda read over SSH and the line/branch coverage of the highmem code written
as text per function and HTML (workflows/coverage/data.py, workflows/coverage/model.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ...core.errors import HarnessError
from ...core.results import exit_status
from ...core.suite import ModuleSpec
from ...lab import Lab
from ...operations import StageOperations
from ...run import print_report, run
from . import data as coverage_data
from ...stages.paths import new_run_dir
from ...stages.progress import say
from ...frontends.cli import checked_run

KEEP = ("mm/highmem.c", "mm/vmalloc.c", "include/linux/highmem.h",
        "include/linux/highmem-internal.h", "arch/x86/mm/highmem_32.c")


def cmd_coverage(args: argparse.Namespace) -> int:
    opts, suite = checked_run(args)
    opts.configs = [*opts.configs, "gcov"]
    opts.reset = False
    run_dir = new_run_dir("coverage")
    out = run_dir / "coverage"
    out.mkdir()
    gcdas: list[Path] = []
    source: list[Path] = []

    def gather(lab: Lab, why: str) -> None:
        session = lab.session
        if session is None or not hasattr(session, "run") or not session.alive():
            say(f"coverage: no guest is up {why}: the counters since the last read are lost")
            return
        part = out / f"part-{len(list(out.glob('part-*'))) + 1}"
        say(f"== coverage ({why})")
        got = coverage_data.collect(session.run, part)
        say(f"  {len(got)} .gcda files from the guest into {part.name}")
        gcdas.extend(got)
        source[:] = [lab.kernel.source.tree]

    def before(lab: Lab, spec: ModuleSpec) -> None:
        if spec.crashes:  # its crash restores the guest: read the counters first
            gather(lab, f"before {spec.title}, which crashes by design")

    ops = StageOperations()
    result = run(opts, suite, run_dir, ops, after=lambda lab: gather(lab, "after the suite"),
                 before_module=before)
    print_report(result)
    if not gcdas:
        raise HarnessError("no coverage data was read from the guest",
                           f"see the run's report in {run_dir}")
    text = coverage_data.report(gcdas, out, source[0], KEEP)
    print(text, end="")
    html = out / "html" / "index.html"
    print(f"Coverage: {out / 'coverage.txt'}" + (f", {html}" if html.exists() else ""))
    return exit_status(result)
