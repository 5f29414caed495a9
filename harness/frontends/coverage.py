"""`highmem coverage [SUITE]`: the suite on a gcov kernel (kernel-configs/gcov.config), all
modules on one guest (no restore between them: a restore would reset the counters), then
the guest's .gcda read over SSH and the line/branch coverage of the highmem code written
as text per function and HTML (stages/coverage_data.py, core/coverage.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import HarnessError
from ..core.results import exit_status
from ..lab import Lab
from ..operations import StageOperations
from ..run import print_report, run
from ..stages import coverage_data
from ..stages.paths import new_run_dir
from ..stages.progress import say
from .cli import checked_run

KEEP = ("mm/highmem.c", "mm/vmalloc.c", "include/linux/highmem.h",
        "include/linux/highmem-internal.h", "arch/x86/mm/highmem_32.c")


def cmd_coverage(args: argparse.Namespace) -> int:
    opts, suite = checked_run(args)
    opts.configs = [*opts.configs, "gcov"]
    opts.reset = False
    run_dir = new_run_dir("coverage")
    out = run_dir / "coverage"
    out.mkdir()
    found: dict[str, object] = {}

    def gather(lab: Lab) -> None:
        session = lab.session
        if session is None or not hasattr(session, "run"):
            say("coverage: no guest is up after the suite (it crashed): its counters are lost")
            return
        say("== coverage")
        gcdas = coverage_data.collect(session.run, out)
        say(f"  {len(gcdas)} .gcda files from the guest")
        found["gcdas"], found["source"] = gcdas, lab.kernel.source.tree

    result = run(opts, suite, run_dir, StageOperations(), after=gather)
    print_report(result)
    if "gcdas" not in found:
        raise HarnessError("no coverage data was read from the guest",
                           f"see the run's report in {run_dir}")
    text = coverage_data.report(found["gcdas"], out, Path(str(found["source"])), KEEP)
    print(text, end="")
    html = out / "html" / "index.html"
    print(f"Coverage: {out / 'coverage.txt'}" + (f", {html}" if html.exists() else ""))
    return exit_status(result)
