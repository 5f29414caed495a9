"""Verdict stage, pure: the one place a module run's verdict is decided.

Every way in (`highmem run`, the pytest plugin, the warm guest and `watch`, matrix, mutate,
bisect, merge) renders what `judge()` returns; none decides on its own. A reason is data
(kind, module, case, checkpoint, field, text), never a sentence parsed back by prefix.

The rules, and why they hold against a module that lies:
- a KTAP case is judged by what the module printed *and* by the harness's own checks of the
  checkpoints it reached (attributed to it by label, `case_of`): a case that printed `ok`
  (or SKIP, or XFAIL) while one of its checkpoints failed is FAIL — the harness judged the
  live PTE, the module only repeats (or ignores, or inverts) that verdict;
- a case is FAIL when any of its nested subtests failed or crashed, at any depth;
- a failed checkpoint that no case claims fails the module (`kernel_log` in pytest);
- a kernel log whose start was overwritten (the ring buffer overflowed while the module
  ran) is a FAIL: results that may be missing are never read as a PASS.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from . import ktap

# results.py's ModuleResult and Stop (it imports this module, so not the other way round)
ModuleResult: TypeAlias = Any
Stop: TypeAlias = Any

# what kind of thing went wrong; a Failure's kind (failure.KINDS) is one too
REASON_KINDS = ("case", "subtest", "pte", "checkpoint", "no-ktap", "insmod-exit",
                "expected-log", "kernel-message", "log-lost")
PASSING = ("PASS", "SKIP", "XFAIL")


@dataclass(frozen=True)
class Reason:
    """One reason a module (or one of its cases) failed. `field`: the PTE field that
    differs (PFN, NX, RW, G, P, PTE) for a `pte` reason; `checkpoint`: its label."""

    kind: str
    module: str
    text: str
    case: str = ""
    checkpoint: str = ""
    field: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "module": self.module, "case": self.case,
                "checkpoint": self.checkpoint, "field": self.field, "text": self.text}


@dataclass(frozen=True)
class Verdict:
    """A module's verdict: `status` PASS, FAIL, NOT RUN or NO BUILD; `reasons` every reason,
    the cause first; `cases` its KTAP cases as judged (status and diagnostics final)."""

    status: str
    reasons: tuple[Reason, ...]
    cases: tuple[ktap.Case, ...]

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def module_reasons(self) -> list[Reason]:
        """The reasons no case carries (the module's `kernel_log` item in pytest)."""
        return [r for r in self.reasons if not r.case]

    def case_reasons(self, case: str) -> list[Reason]:
        return [r for r in self.reasons if r.case == case]


def case_key(case: ktap.Case) -> str:
    """A case's name in reasons and test ids: its KTAP name, `#N` for one never reported."""
    return case.name or f"#{case.number}"


def case_of(label: str, names: list[str]) -> str:
    """The case a checkpoint label belongs to: the case named by the label's part before
    ':' (the modules' convention, `CASE: what`), else the longest case name the label
    starts with; "" when none."""
    head = label.split(":")[0].strip()
    if head in names:
        return head
    hits = [n for n in names if n and label.startswith(n)]
    return max(hits, key=len) if hits else ""


def field_of(mismatch: str) -> str:
    """`PFN: expected 0x23f401, got 0x23f400` -> `PFN` (the field a mismatch names)."""
    head = mismatch.split(":")[0].strip()
    return head if head and " " not in head else ""


def failed_subtests(case: ktap.Case, path: str = "") -> list[str]:
    """`parent/child: FAIL` for every nested case, at any depth, that failed or crashed."""
    out = []
    for sub in case.subtests:
        where = f"{path}{sub.name or f'#{sub.number}'}"
        if sub.status not in PASSING:
            out.append(f"{where}: {sub.status}")
        out += failed_subtests(sub, where + "/")
    return out


def stop_reasons(module: str, stop: Stop, case: str, who: str = "") -> list[Reason]:
    """The reasons of one checkpoint stop: malformed, or one per mismatching PTE field;
    `who` names the module in the text (its name, without the params of its title)."""
    label = stop.expect.label
    if stop.error is not None:
        return [Reason("checkpoint", module, f"checkpoint {stop.index} of {who or module}: "
                       f"{stop.error}", case, label)]
    out = []
    for c in stop.checks:
        what = label if c.label == label else f"{label}: {c.label}"
        out += [Reason("pte", module, f"checkpoint {what} at {c.va:#x}: {m}",
                       case, label, field_of(m)) for m in c.mismatches]
    return out


def _judge_case(module: str, case: ktap.Case, stop_why: list[Reason]) -> tuple[ktap.Case,
                                                                              list[Reason]]:
    name, key = case.name or f"#{case.number} (never reported)", case_key(case)
    why = [Reason("subtest", module, f"KTAP case {name}: subtest {s}", key)
           for s in failed_subtests(case)]
    status = case.status
    if status not in PASSING:
        why.insert(0, Reason("case", module, f"KTAP case {name}: {status}", key))
    elif stop_why or why:
        claimed = status
        status = "FAIL"
        if stop_why:
            why.insert(0, Reason("case", module, f"KTAP case {name}: reported {claimed}, but "
                                 f"the harness failed its checkpoint "
                                 f"'{stop_why[0].checkpoint}'", key))
    if status == case.status:
        return case, why + stop_why
    notes = [f"harness: {r.text}" for r in why + stop_why]
    return replace(case, status=status, directive="",
                   diagnostics=[*case.diagnostics, *notes]), why + stop_why


def judge(m: ModuleResult) -> Verdict:
    """The verdict of one module run (see the module docstring for the rules)."""
    name = m.spec.title
    raw = m.ktap_cases
    if m.spec.cases:  # --case: only the cases its globs match are judged
        raw = [c for c in raw if any(fnmatch.fnmatchcase(case_key(c), g)
                                     for g in m.spec.cases)]
    if m.failure is not None and m.failure.kind in ("build", "not-run"):
        status = "NO BUILD" if m.failure.kind == "build" else "NOT RUN"
        return Verdict(status, (Reason(m.failure.kind, name, m.failure.line),), tuple(raw))
    names = [c.name for c in m.ktap_cases]
    by_case: dict[str, list[Reason]] = {}
    for s in m.stops:
        owner = case_of(s.expect.label, names) if s.error is None else ""
        by_case.setdefault(owner, []).extend(stop_reasons(name, s, owner, m.spec.name))
    why = [Reason(m.failure.kind, name, m.failure.line)] if m.failure else []
    if m.log_lost:
        why.append(Reason("log-lost", name, f"kernel log lost: {m.log_lost}"))
    if not raw and m.failure is None:
        why.append(Reason("no-ktap", name, "no KTAP results in the kernel log" if not
                          m.spec.cases else f"no KTAP case matches --case "
                          f"{' '.join(m.spec.cases)} (its cases: "
                          f"{', '.join(case_key(c) for c in m.ktap_cases) or 'none'})"))
    cases, case_why = [], []
    for c in raw:
        judged, r = _judge_case(name, c, by_case.pop(c.name, []) if c.name else [])
        cases.append(judged)
        case_why += r
    why += case_why
    deselected = {case_key(c) for c in m.ktap_cases} - {case_key(c) for c in raw}
    why += [r for owner, rs in by_case.items() if owner not in deselected
            for r in rs]  # checkpoints no case claims
    if m.insmod_rc not in (0, -1) and not m.spec.crashes and m.failure is None:
        why.append(Reason("insmod-exit", name,
                          f"insmod exited {m.insmod_rc}: {m.insmod_out[-120:]}"))
    if m.failure is None or m.failure.kind != "hang":
        why += [Reason("expected-log", name, f"expected in the kernel log, not found: {p}")
                for p in m.missing_expected()]
    why += [Reason("kernel-message", name, f"unexpected kernel message: {t}")
            for t in m.unexpected_trouble()
            if not (m.failure and t in m.failure.cause)]
    return Verdict("FAIL" if why else "PASS", tuple(why), tuple(cases))
