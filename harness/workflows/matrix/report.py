"""The summary of a kernel matrix: one table, cell × module (pure).

    Matrix matrices/default.yaml: 2 cells, suite suites/default.yaml
      [1] 6.12-highmem64g-smp2-8G   PASS  configure 0.0 s, build 0.4 s, ...; total 41.2 s
      [2] 6.12-highmem4g-smp2-4G    PASS  ...
      module                              [1]         [2]
      boot                                PASS        PASS
      kmap_local_basic                    PASS        PASS s1
    Matrix verdict: PASS (2 of 2 cells passed)

An entry is the module's verdict with its expected failures (`x1`) and skipped cases (`s3`);
`-` where the cell does not run the module, `NOT RUN` where the cell could not run at all.
"""

from dataclasses import dataclass

from ...core.ktap import Case
from .model import Cell
from ...core.results import ModuleResult, RunResult

COL = 12


@dataclass
class CellOutcome:
    """A cell once run: its RunResult, or the error that stopped it before any module ran
    (a source not installed, a build that failed), and its wall-clock seconds."""

    cell: Cell
    result: RunResult | None = None
    error: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.result is not None and not self.error and self.result.passed

    @property
    def verdict(self) -> str:
        if self.result is None:
            return "ERROR"
        return "PASS" if self.passed else "FAIL"


def _module_entry(m: ModuleResult) -> str:
    cases: list[Case] = m.cases
    word = "PASS" if m.passed else {"not-run": "NOT RUN", "build": "NO BUILD"}.get(
        m.failure.kind if m.failure else "", "FAIL")
    xfail = sum(c.status == "XFAIL" for c in cases)
    skip = sum(c.status == "SKIP" for c in cases)
    return " ".join([word] + ([f"x{xfail}"] if xfail else []) + ([f"s{skip}"] if skip else []))


def _boot_entry(o: CellOutcome) -> str:
    if o.result is None:
        return "ERROR"
    if not o.result.boots:
        return "-"
    return "PASS" if all(b.passed for b in o.result.boots) else "FAIL"


def module_titles(outcomes: list[CellOutcome]) -> list[str]:
    """Every module title any cell ran, in first-seen order."""
    seen: dict[str, None] = {}
    for o in outcomes:
        for m in (o.result.modules if o.result else []):
            seen.setdefault(m.title, None)
    return list(seen)


def _entry(o: CellOutcome, title: str) -> str:
    if o.result is None:
        return "NOT RUN"
    hits = [m for m in o.result.modules if m.title == title]
    if not hits:
        return "-"
    entries = [_module_entry(m) for m in hits]
    return entries[0] if len(set(entries)) == 1 else "/".join(entries)


def _cell_line(n: int, o: CellOutcome, width: int) -> str:
    if o.result is None:
        detail = o.error
    else:
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in o.result.phases.times.items())
        detail += f"; total {o.seconds:.1f} s"
        if o.error:
            detail += f"; {o.error}"
    return f"  [{n}] {o.cell.id:<{width}}  {o.verdict:<5} {detail}"


def format_matrix(path: str, suite: str, outcomes: list[CellOutcome]) -> str:
    """The whole summary: one line per cell (verdict, time per phase), the cell × module
    table, the verdict line."""
    width = max((len(o.cell.id) for o in outcomes), default=4)
    lines = [f"Matrix {path}: {len(outcomes)} cells, suite {suite}"]
    lines += [_cell_line(i + 1, o, width) for i, o in enumerate(outcomes)]
    titles = module_titles(outcomes)
    name_w = max([len(t) for t in titles] + [6])
    head = f"  {'module':<{name_w}}" + "".join(f"  {f'[{i + 1}]':<{COL}}"
                                               for i in range(len(outcomes)))
    lines.append(head.rstrip())
    rows = [("boot", [_boot_entry(o) for o in outcomes])]
    rows += [(t, [_entry(o, t) for o in outcomes]) for t in titles]
    for title, entries in rows:
        lines.append((f"  {title:<{name_w}}" + "".join(f"  {e:<{COL}}" for e in entries))
                     .rstrip())
    passed = sum(o.passed for o in outcomes)
    lines.append(f"Matrix verdict: {'PASS' if passed == len(outcomes) else 'FAIL'} "
                 f"({passed} of {len(outcomes)} cells passed)")
    return "\n".join(lines)


def matrix_json(path: str, outcomes: list[CellOutcome]) -> dict[str, object]:
    """matrix.json: per cell its id, verdict, seconds, run directory, and per module its
    entry."""
    return {"matrix": path, "cells": [
        {"id": o.cell.id, "verdict": o.verdict, "seconds": round(o.seconds, 1),
         "error": o.error or None,
         "run_dir": str(o.result.run_dir) if o.result else None,
         "phases": {k: round(v, 1) for k, v in o.result.phases.times.items()} if o.result
         else {},
         "modules": {m.title: _module_entry(m) for m in o.result.modules} if o.result else {}}
        for o in outcomes]}
