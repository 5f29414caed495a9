"""Stage 11, report: per-checkpoint PTE table, KTAP summary, meminfo, phase times."""

import json
from pathlib import Path

from . import ktap
from .checker import Stop
from .module_run import ModuleResult


def checkpoint_rows(stops: list[Stop]) -> list[str]:
    rows = [f"  {'checkpoint':<40} {'cpu':>3} {'VA':>10}  {'PTE':<18}  {'flags':<16} "
            f"{'PFN':>9}  result"]
    for s in stops:
        for c in s.checks:
            pte = f"{c.actual:#018x}" if c.actual is not None else "(none)"
            pfn = f"{c.pfn:#x}" if c.pfn is not None and c.actual else "-"
            verdict = "PASS" if c.passed else "FAIL"
            rows.append(f"  {c.label[:40]:<40} {s.cpu:>3} {c.va:#010x}  {pte:<18}  "
                        f"{c.flags[:16]:<16} {pfn:>9}  {verdict}")
            for m in c.mismatches:
                rows.append(f"      ^ {m}")
    return rows


def module_section(m: ModuleResult) -> list[str]:
    head = f"Module {m.name}" + (f" ({m.params})" if m.params else "")
    lines = [head, *checkpoint_rows(m.stops)]
    if m.insmod_rc != 0:
        lines.append(f"  insmod exit {m.insmod_rc}: {m.insmod_out[-200:]}")
    for suite in m.suites:
        for c in suite.cases:
            extra = f"  # {c.directive}" if c.directive else ""
            lines.append(f"  KTAP {suite.name or m.name}.{c.name}: {c.status}{extra}")
    if not m.suites:
        lines.append("  KTAP: no results found in dmesg")
    counts = ktap.summarize(m.suites)
    lines.append(f"  {sum(counts.values())} KTAP cases ({_counts(counts)}), {m.pte_checks} PTE "
                 f"assertions at {len(m.stops)} checkpoints, {m.seconds:.1f} s "
                 f"(gdb {m.gdb_seconds:.1f} s) -> {'PASS' if m.passed else 'FAIL'}")
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.lower()}" for k, v in counts.items() if v) or "none"


def write_json(path: Path, modules: list[ModuleResult], meminfo: dict[str, int],
               phases: dict[str, float]) -> None:
    data = {
        "meminfo_kB": meminfo,
        "phases_s": phases,
        "modules": [{
            "name": m.name, "params": m.params, "passed": m.passed, "insmod_rc": m.insmod_rc,
            "checkpoints": [{"cpu": s.cpu, "label": s.expect.label, "kind": s.expect.kind,
                             "checks": [c.to_json() for c in s.checks]} for s in m.stops],
            "ktap": [{"suite": s.name, "crashed": s.crashed,
                      "cases": [{"name": c.name, "status": c.status, "directive": c.directive}
                                for c in s.cases]} for s in m.suites],
        } for m in modules],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
