"""Report stage, pure formatting: per-checkpoint PTE rows, a summary table, memory, layout,
phase times, from a RunResult. run.py writes it to the terminal and report.txt, and
report.json next to it.
"""

import json
import re
import shlex
import uuid
from typing import Callable

from . import ktap
from .checkpoint import PteCheck
from .failure import Failure
from .results import BootResult, ModuleResult, RunResult, Stop

MAX_RANGE_ROWS = 6


def _row(label: str, cpu: int, c: PteCheck) -> str:
    pte = f"{c.actual:#018x}" if c.actual is not None else "(none)"
    pfn = f"{c.pfn:#x}" if c.pfn is not None and c.actual else "-"
    return (f"  {label[:55]:<55} {cpu:>3} {c.va:#010x}  {pte:<18}  {c.flags[:16]:<16} "
            f"{pfn:>9}  {'PASS' if c.passed else 'FAIL'}")


def checkpoint_rows(stops: list[Stop]) -> list[str]:
    rows = [f"  {'checkpoint':<55} {'cpu':>3} {'VA':>10}  {'PTE':<18}  {'flags':<16} "
            f"{'PFN':>9}  result"]
    for s in stops:
        if s.error is not None:
            rows.append(f"  checkpoint {s.index} {'':<44} {s.cpu:>3} {s.expect.va:#010x}  "
                        f"malformed: {s.error}")
            continue
        shown = s.checks
        if len(s.checks) > MAX_RANGE_ROWS:  # a range: first, last, and every failure
            bad = [c for c in s.checks if not c.passed]
            ok = len(s.checks) - len(bad)
            rows.append(f"  {s.expect.label[:55]:<55} {s.cpu:>3} {len(s.checks)} PTEs "
                        f"({s.expect.kind}): {ok} PASS, {len(bad)} FAIL")
            shown = [s.checks[0], *bad[:MAX_RANGE_ROWS], s.checks[-1]]
        for c in shown:
            rows.append(_row(c.label, s.cpu, c))
            rows += [f"      ^ {m}" for m in c.mismatches]
    return rows


def module_section(m: ModuleResult) -> list[str]:
    lines = [f"Module {m.spec.title}"]
    if m.stops:
        lines += checkpoint_rows(m.stops)
    for c in m.cases:
        extra = f"  # {c.directive}" if c.directive else ""
        lines.append(f"  KTAP {c.name}: {c.status}{extra}")
    lines += [f"  ! {r}" for r in m.reasons()]
    if m.artifacts is not None and not m.passed:
        lines.append(f"  artifacts: {m.artifacts}")
    return lines


def boot_section(boots: list[BootResult]) -> list[str]:
    """The `boot` item: every boot of the run, with the cause and console tail of a
    failed one and the kernel's own warnings of a booted one."""
    if not boots:
        return []
    lines = ["Boot"]
    restores = [b for b in boots if b.restored and b.passed]
    for b in boots:
        if b in restores:
            continue
        verdict = "PASS" if b.passed else "FAIL"
        how = " (restored from the snapshot)" if b.restored else ""
        lines.append(f"  boot {b.number}: {b.seconds:.1f} s{how}  {verdict}")
        lines += [f"  note: {n}" for n in b.notes]
        lines += [f"  ! {r}" for r in b.reasons()]
        if b.failure is not None:
            lines.append("  console (last lines):")
            lines += [f"    | {x[:150]}" for x in b.console_tail]
        if b.artifacts is not None and not b.passed:
            lines.append(f"  artifacts: {b.artifacts}")
    if restores:
        secs = sorted(b.seconds for b in restores)
        lines.append(f"  {len(restores)} guests restored from the snapshot (a clean kernel "
                     f"per module): median {secs[len(secs) // 2]:.2f} s, all PASS")
    return lines


def _verdict(m: ModuleResult) -> str:
    if m.passed:
        return "PASS"
    return {"not-run": "NOT RUN", "build": "NO BUILD"}.get(
        m.failure.kind if m.failure else "", "FAIL")


def _counts(cases: list[ktap.Case]) -> dict[str, int]:
    out = {s: 0 for s in ktap.STATUSES}
    for c in cases:
        out[c.status] = out.get(c.status, 0) + 1
    return out


SUMMARY_HEAD = (f"  {'module':<34} {'cases':>5} {'pass':>4} {'fail':>4} {'xfail':>5} "
                f"{'skip':>4} {'PTEs':>6} {'time s':>7}  verdict")


def summary_row(title: str, statuses: list[str], ptes: int, seconds: float,
                verdict: str) -> str:
    """One row of the summary table: a module's KTAP case statuses counted."""
    n = {s: statuses.count(s) for s in ktap.STATUSES}
    return (f"  {title[:34]:<34} {len(statuses):>5} {n['PASS']:>4} "
            f"{n['FAIL'] + n['CRASHED']:>4} {n['XFAIL']:>5} {n['SKIP']:>4} "
            f"{ptes:>6} {seconds:>7.1f}  {verdict}")


def summary_table(modules: list[ModuleResult]) -> list[str]:
    lines = ["Summary", SUMMARY_HEAD]
    for m in modules:
        lines.append(summary_row(m.spec.title, [c.status for c in m.cases], m.pte_checks,
                                 m.seconds, _verdict(m)
                                 + (f" ({m.failure.kind})" if m.failure and m.ran else "")))
    return lines


def totals_line(modules: list[ModuleResult]) -> str:
    cases = [c for m in modules for c in m.cases]
    n = _counts(cases)
    ptes = sum(m.pte_checks for m in modules)
    secs = sum(m.seconds for m in modules)
    gdb = sum(m.gdb_seconds for m in modules)
    per = f", {1000 * gdb / ptes:.1f} ms of gdb time per assertion" if ptes else ""
    desc = ", ".join(f"{v} {k.lower()}" for k, v in n.items() if v) or "none"
    return (f"Suite: {len(cases)} KTAP cases ({desc}); {ptes} PTE assertions at "
            f"{sum(len(m.stops) for m in modules)} checkpoints; suite time {secs:.1f} s{per}")


def format_report(result: RunResult) -> str:
    lines: list[str] = boot_section(result.boots)
    for m in result.modules:
        lines += module_section(m)
    lines += summary_table(result.modules)
    lines.append(totals_line(result.modules))
    if any(s.expect.kind == "range_unmapped" for m in result.modules for s in m.stops):
        lines.append("Note: after vunmap the PTEs are 0 at once; the TLB flush is lazy "
                     "(vmap_lazy_nr, purged later by __purge_vmap_area_lazy).")
    mi = result.meminfo
    lines.append(f"Memory: HighTotal {mi.get('HighTotal', 0)} kB, LowTotal "
                 f"{mi.get('LowTotal', 0)} kB, MemTotal {mi.get('MemTotal', 0)} kB"
                 + (f"; {result.memory_note}" if result.memory_note else ""))
    if result.layout is not None:
        lo = result.layout
        lines.append(
            f"Layout: PAGE_OFFSET {lo.page_offset:#x}, high_memory {lo.high_memory:#x}, "
            f"vmalloc [{lo.vmalloc_start:#x}, {lo.vmalloc_end:#x}), PKMAP_BASE "
            f"{lo.pkmap_base:#x} x {lo.last_pkmap}, FIXADDR_TOP {lo.fixaddr_top:#x}, "
            f"FIX_KMAP_BEGIN {lo.fix_kmap_begin}, KM_MAX_IDX {lo.km_max_idx} "
            f"(DEBUG_KMAP_LOCAL {'on' if lo.debug_kmap_local else 'off'})")
    lines.append(result.phases.format())
    bad = [m for m in result.modules if not m.passed]
    if result.interrupted:
        lines.append("Interrupted: the modules marked NOT RUN did not run")
    failed_boot = not all(b.passed for b in result.boots)
    why = ", ".join(x for x in (f"{len(bad)} of {len(result.modules)} modules failed"
                                if bad else "", "boot failed" if failed_boot else "") if x)
    lines.append(f"Verdict: {'PASS' if result.passed else 'FAIL'}"
                 + (f" ({why})" if why else "") + f" (artifacts: {result.run_dir})")
    return "\n".join(lines)


def _failure_json(f: Failure | None) -> dict[str, str] | None:
    return {"kind": f.kind, "cause": f.cause, "line": f.line} if f else None


def _report_data(result: RunResult, checks_json: Callable[[list[PteCheck]], object],
                 extra: dict[str, object] | None = None) -> dict[str, object]:
    """report.json's dict; a checkpoint's "checks" is `checks_json(stop.checks)`; `extra`:
    more top-level keys (run.py adds the kernel's identity and the shard plan, which KCIDB,
    JUnit and `highmem merge` read)."""
    return {
        "passed": result.passed,
        "interrupted": result.interrupted,
        "boots": [{"number": b.number, "passed": b.passed, "seconds": b.seconds,
                   "restored": b.restored,
                   **({"notes": b.notes} if b.notes else {}),  # e.g. a bad snapshot dropped
                   "reasons": b.reasons(), "failure": _failure_json(b.failure),
                   "checks": b.checks,
                   "console_tail": b.console_tail,
                   "artifacts": str(b.artifacts) if b.artifacts else None}
                  for b in result.boots],
        "meminfo_kB": result.meminfo,
        **({"memory_note": result.memory_note} if result.memory_note else {}),
        "phases_s": result.phases.times,
        "layout": result.layout.to_json() if result.layout else None,
        "modules": [{
            "name": m.name, "params": m.params, "passed": m.passed, "reasons": m.reasons(),
            "why": [r.to_json() for r in m.verdict().reasons],   # the reasons as data
            "reproduce": shlex.join(["highmem", "run", "--module", m.name]
                                    + (["--param", f"{m.name}:{m.params}"] if m.params else [])),
            "status": _verdict(m), "failure": _failure_json(m.failure),
            "artifacts": str(m.artifacts) if m.artifacts else None,
            "insmod_rc": m.insmod_rc, "seconds": m.seconds, "gdb_seconds": m.gdb_seconds,
            "started_s": round(m.started_s, 2), "ended_s": round(m.ended_s, 2),
            "checkpoints": [{"cpu": s.cpu, "index": s.index, "label": s.expect.label,
                             "kind": s.expect.kind, "error": s.error,
                             "seconds": round(s.seconds, 5),
                             "checks": checks_json(s.checks)} for s in m.stops],
            "ktap": [{"name": c.name, "number": c.number, "status": c.status,
                      "directive": c.directive, "seconds": round(c.seconds, 3)}
                     for c in m.cases],
        } for m in result.modules],
        **(extra or {}),
    }


def report_json(result: RunResult, extra: dict[str, object] | None = None) -> str:
    """report.json's text (`extra`: see _report_data): indented two spaces, but each PTE
    assertion on one line (a range has thousands: Python's indenting encoder would take
    seconds over them, the compact one milliseconds; the parsed JSON is the same). The
    checks lists go in as marker strings that the compact lines then replace."""
    marker = f"hm-checks-{uuid.uuid4().hex}-"
    lists: list[list[PteCheck]] = []

    def checks_ref(checks: list[PteCheck]) -> str:
        lists.append(checks)
        return f"{marker}{len(lists) - 1}"

    def checks_lines(match: re.Match[str]) -> str:
        indent, checks = match.group(1), lists[int(match.group(2))]
        if not checks:
            return f'{indent}"checks": []'
        rows = f",\n{indent}  ".join(json.dumps(c.to_json()) for c in checks)
        return f'{indent}"checks": [\n{indent}  {rows}\n{indent}]'

    text = json.dumps(_report_data(result, checks_ref, extra), indent=2)
    return re.sub(f'^( *)"checks": "{marker}(\\d+)"', checks_lines, text, flags=re.M) + "\n"
