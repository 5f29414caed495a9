"""`highmem matrix [FILE]`: the suite on every cell of a kernel matrix
(harness/workflows/matrix/model.py), one cell after the other, each exactly as `highmem run`
runs it (its own run directory under `artifacts/matrix-DATE-N/<cell id>/`), then one summary
table, cell × module (workflows/matrix/report.py), also in `matrix.txt` and `matrix.json`
there.

A cell whose source is not installed stops the matrix before anything is built (error/fix:
`make deps MATRIX=FILE` installs it); a cell that cannot be built or booted is an ERROR row
and the next cell runs. Exit 0 only if every cell passed.
"""

import argparse
import difflib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from ...core.errors import HarnessError, Terminated
from .model import Cell, Matrix, from_unstable, load_matrix, missing_sources
from .report import CellOutcome, format_matrix, matrix_json
from ...core.options import RunOptions
from ...core.preflight import check_timeout
from ...core.suite import ModuleSpec, select
from ...core.suitefile import load_suite
from ...operations import StageOperations
from ...run import run
from ...stages.atomic_file import write_atomic
from ...stages.host import RUN_TOOLS, check_tools, check_writable_dir
from ...stages.paths import artifacts_root, cache_dir, new_run_dir
from ...stages.progress import say
from ...stages.source import find_named
from ...frontends.cli import run_options


def chosen_cells(m: Matrix, ids: list[str]) -> list[Cell]:
    """The cells `--cell` names (in the matrix's order), all of them when none."""
    known = [c.id for c in m.cells]
    for i in ids:
        if i not in known:
            near = difflib.get_close_matches(i, known, n=1)
            raise HarnessError(f"--cell {i!r} is not a cell of {m.path}",
                               (f"did you mean {near[0]}? " if near else "")
                               + f"use one of: {', '.join(known)}")
    return [c for c in m.cells if not ids or c.id in ids]


def check_sources(m: Matrix, chosen: list[Cell]) -> None:
    """Every chosen cell's source on this machine, or one error naming the fix."""
    missing = [c for c in missing_sources(m, find_named) if c in chosen]
    if not missing:
        return
    pkgs = sorted({c.package for c in missing if c.package})
    unstable = sorted(c.version for c in missing if c.version and from_unstable(c.version))
    if unstable:
        kernel = unstable[-1]
        raise HarnessError("; ".join(f"cell {c.id} needs {c.source_path}" for c in missing)
                           + f" (Debian unstable's linux-source-{kernel}, not fetched)",
                           f"run 'make deps MATRIX={m.path}' (fetches it into the cache; "
                           f"or 'make deps KERNEL={kernel}')")
    what = "; ".join(f"cell {c.id} needs {c.source_path}" for c in missing)
    fix = (f"run 'make deps MATRIX={m.path}' (installs {', '.join(pkgs)})" if pkgs
           else "fix the cell's source: path")
    raise HarnessError(what + (f" (Debian package {', '.join(pkgs)}, not installed)"
                               if pkgs else ""), fix)


def cell_suite(m: Matrix, cell: Cell, timeout: float | None) -> tuple[tuple[ModuleSpec, ...],
                                                                     list[str], dict[str, Path]]:
    """(the cell's modules, the suite's fragments, user module directories)."""
    specs, configs, dirs = load_suite(m.suite)
    return select(specs, list(cell.modules), {}, timeout), configs, dirs


def run_cell(m: Matrix, cell: Cell, base: RunOptions, matrix_dir: Path) -> CellOutcome:
    """One cell, as `highmem run` runs it; a HarnessError before any module ran (build,
    config, smp above NR_CPUS, ...) becomes the cell's error."""
    t0 = time.monotonic()
    suite, configs, dirs = cell_suite(m, cell, base.timeout)
    opts = cell.options(replace(base, configs=[*configs, *base.configs], module_dirs=dirs))
    run_dir = matrix_dir / cell.id
    run_dir.mkdir()
    say(f"== cell {cell.id}: {opts.source.name}, "
        f"{' + '.join(['the profile', *opts.configs])}, -m {opts.memory} -smp {opts.smp}")
    try:
        result = run(opts, suite, run_dir, StageOperations())
    except HarnessError as e:
        return CellOutcome(cell, None, e.what, time.monotonic() - t0)
    out = CellOutcome(cell, result, "", time.monotonic() - t0)
    if result.interrupted:
        out.error = f"interrupted ({result.interrupted})"
    say(f"   cell {cell.id}: {out.verdict} in {out.seconds:.1f} s (report: "
        f"{run_dir / 'report.txt'})")
    return out


def cmd_matrix(args: argparse.Namespace) -> int:
    m = load_matrix(Path(args.matrix))
    if args.packages:
        print("\n".join(m.packages))
        return 0
    check_timeout(args.timeout)
    chosen = chosen_cells(m, args.cell)
    check_sources(m, chosen)
    check_tools(RUN_TOOLS)
    check_writable_dir(cache_dir(), "HIGHMEM_CACHE")
    check_writable_dir(artifacts_root(), "HIGHMEM_ARTIFACTS")
    base = run_options(args, ("accel", "timeout", "append", "snapshot", "reset"))
    matrix_dir = new_run_dir("matrix")
    outcomes: list[CellOutcome] = []
    status = 0
    try:
        for cell in chosen:
            outcomes.append(run_cell(m, cell, base, matrix_dir))
            if outcomes[-1].error.startswith("interrupted"):
                raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        status = 143 if isinstance(e, Terminated) else 130
        say("interrupted: the cells that did not run are left out of the table")
    text = format_matrix(str(m.path), str(m.suite), outcomes)
    write_atomic(matrix_dir / "matrix.txt", text + "\n")
    doc = matrix_json(str(m.path), outcomes)
    write_atomic(matrix_dir / "matrix.json", json.dumps(doc, indent=2) + "\n")
    if args.json:
        write_atomic(Path(args.json), json.dumps(doc, indent=2) + "\n")
    print(text, flush=True)
    print(f"(artifacts: {matrix_dir})", file=sys.stderr)
    if status:
        return status
    return 0 if outcomes and all(o.passed for o in outcomes) else 1
