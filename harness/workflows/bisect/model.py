"""Bisection, pure: what one step's suite run says about its commit (the exit status `git
bisect run` reads), the step log, what `git bisect` printed, and the summary `highmem
bisect` ends with (workflows/bisect/command.py drives git and the runs).

A step's verdict, from the report.json dict of the suite run on the checked-out commit:

- GOOD (exit 0): every check, KTAP case and boot passed;
- BAD (exit 1): a test failed: a PTE or KTAP check (the evidence names the case and the PTE
  field, e.g. `kmap_local_basic/kmap_local_above_4g` and `G: expected set, got clear`), a
  boot check of the kmap_local maps made while booting, a module's crash or hang, an
  unexpected kernel message;
- SKIP (exit 125): the commit cannot be tested: the kernel or a test module does not build,
  or the kernel does not come up at all (a boot failure with no check of ours failing;
  `highmem bisect --boot-failure bad` calls that BAD, to hunt a commit that kills the boot);
- ABORT (exit 128, which stops `git bisect run`): the harness could not judge the commit
  (its own error, or Ctrl-C); the bisect ends with that reason rather than a wrong verdict.
"""

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from ..mutate import model as mu

GOOD, BAD, SKIP, ABORT = "good", "bad", "skip", "abort"
EXIT_CODES = {GOOD: 0, BAD: 1, SKIP: 125, ABORT: 128}
FIELD = re.compile(r"(?:^|: )([A-Z][A-Z0-9_]*): ")
FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit$", re.M)
ONLY_SKIPPED = re.compile(r"The first bad commit could be any of:\n((?:[0-9a-f]{40}\n)+)")
BISECT_VARS = re.compile(r"^bisect_(\w+)=['\"]?([^'\"\n]*)['\"]?$", re.M)


@dataclass(frozen=True)
class Evidence:
    """Why a commit is bad, in the report's words: the failing case (`module/case`), the
    checkpoint in it, the PTE field that differs and the whole mismatch line; `line` is the
    one-line form. Empty parts are unknown (a crash names no field)."""

    line: str
    case: str = ""
    checkpoint: str = ""
    field: str = ""
    mismatch: str = ""


@dataclass(frozen=True)
class Step:
    """One commit tested: its number in the session, sha, subject, verdict and evidence,
    seconds, and the run's artifacts directory. One JSON line each in the step log."""

    number: int
    commit: str
    subject: str
    verdict: str
    evidence: Evidence
    seconds: float = 0.0
    run_dir: str = ""

    def to_line(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    @staticmethod
    def from_line(line: str) -> "Step":
        d = json.loads(line)
        return Step(**{**d, "evidence": Evidence(**d["evidence"])})


def read_steps(text: str) -> list[Step]:
    """The steps of a step log (a line cut short by a killed step is left out)."""
    out: list[Step] = []
    for line in text.splitlines():
        try:
            out.append(Step.from_line(line))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def field_of(mismatch: str) -> str:
    """The PTE field a mismatch line names: `G: expected set, got clear` -> "G",
    `boot check: ... on CPU0: PFN: expected 0x1, got 0x2` -> "PFN"."""
    m = FIELD.search(mismatch)
    return m.group(1) if m else ""


def _boot_check(number: object, check: str) -> Evidence:
    """A failed boot check (stages/boot_probe.py), `boot check: CALL on CPUn: FIELD: ...`:
    the call as the checkpoint, the mismatch from its field on."""
    m = FIELD.search(check)
    mismatch = check[m.start(1):] if m else check
    call = check[:m.start(1)].removeprefix("boot check: ").rstrip(": ") if m else ""
    return Evidence(f"boot {number}: {check}", case=f"boot {number} checks",
                    checkpoint=call, field=field_of(check), mismatch=mismatch)


def _check_evidence(report: dict[str, Any]) -> Evidence | None:
    """The first failed PTE check of a boot or a module: case, checkpoint, field."""
    for b in report.get("boots", []):
        for c in b.get("checks") or []:
            return _boot_check(b.get("number"), c)
    for m in report.get("modules", []):
        title = m["name"] + (f" {m['params']}" if m.get("params") else "")
        for cp in m.get("checkpoints", []):
            for c in cp.get("checks", []):
                if c.get("mismatches"):
                    label = c.get("label") or cp.get("label") or "?"
                    case, _, where = label.partition(": ")
                    first = c["mismatches"][0]
                    return Evidence(f"{title}/{label}: {first}", case=f"{title}/{case}",
                                    checkpoint=where, field=field_of(first), mismatch=first)
    return None


def _did_not_boot(report: dict[str, Any]) -> bool:
    """The first boot failed and no module ran: the kernel never came up."""
    boots = report.get("boots", [])
    ran = [m for m in report.get("modules", [])
           if (m.get("failure") or {}).get("kind") not in ("not-run", "build")]
    return bool(boots) and boots[0].get("failure") is not None and not ran


def step_verdict(report: dict[str, Any], no_boot: str = SKIP) -> tuple[str, Evidence]:
    """(verdict, evidence) of one commit from its run's report.json dict; `no_boot`: the
    verdict of a kernel that does not come up (SKIP, or BAD when the boot is what broke)."""
    verdict, evidence, _ = mu.classify(report)
    if verdict == mu.CHECK:
        pte = _check_evidence(report)
        if pte is not None:
            return BAD, pte
        case = evidence.split(": ", 1)[0]
        return BAD, Evidence(evidence, case=case)
    if verdict == mu.CRASH:
        if _did_not_boot(report):
            return no_boot, Evidence(f"does not boot: {evidence}", case="boot")
        return BAD, Evidence(evidence, case=evidence.split(": ", 1)[0])
    if verdict == mu.NOT_CAUGHT:
        return GOOD, Evidence(evidence)
    if verdict == mu.NO_BUILD:
        return SKIP, Evidence(f"does not build: {evidence}")
    return ABORT, Evidence(f"the harness could not judge it: {evidence}")


def exit_code(verdict: str) -> int:
    """What `git bisect run` reads: 0 good, 1 bad, 125 skip, 128 abort."""
    return EXIT_CODES[verdict]


def first_bad(git_output: str) -> str | None:
    """The sha `git bisect` named as the first bad commit, if it did."""
    m = FIRST_BAD.search(git_output)
    return m.group(1) if m else None


def steps_run(git_output: str) -> int:
    """How many times `git bisect run` ran the step (its `running ...` lines)."""
    return len(re.findall(r"^running ", git_output, re.M))


def only_skipped(git_output: str) -> list[str]:
    """The candidates when only skipped commits were left ("could be any of")."""
    m = ONLY_SKIPPED.search(git_output)
    return m.group(1).split() if m else []


def bisect_vars(text: str) -> dict[str, str]:
    """`git rev-list --bisect-vars` output as a dict: rev, nr, good, bad, all, steps."""
    return dict(BISECT_VARS.findall(text))


def progress_line(number: int, commit: str, subject: str, vars_: dict[str, str]) -> str:
    """`bisect: step 2, 5 suspect commits, ~2 steps left after this; testing abc123 subj`
    (`vars_`: bisect_vars() of the bisect in progress; {} leaves the estimate out)."""
    left = ""
    if vars_.get("all", "").isdigit() and vars_.get("steps", "").isdigit():
        steps = int(vars_["steps"])
        n = int(vars_["all"])
        left = (f", {n} suspect commit{'s' * (n != 1)}, ~{steps} step{'s' * (steps != 1)} "
                "left after this")
    return f"bisect: step {number}{left}; testing {commit[:12]} {subject}"


def step_line(step: Step) -> str:
    """`bisect: step 2: abc123 is bad (kmap_local_basic/...: G: expected set, got clear)`."""
    return (f"bisect: step {step.number}: {step.commit[:12]} is {step.verdict} in "
            f"{step.seconds:.0f} s ({step.evidence.line})")


def tested_table(steps: list[Step]) -> list[str]:
    """One line per commit tested, in the order tested."""
    rows = []
    for s in steps:
        rows.append(f"  {s.number:>3}  {s.commit[:12]}  {s.verdict:<5}  {s.seconds:>5.0f} s  "
                    f"{s.subject[:50]:<50}  {s.evidence.line}")
    return rows


def summary(found: tuple[str, str] | None, candidates: list[tuple[str, str]],
            steps: list[Step], why_not: str = "") -> list[str]:
    """The end of `highmem bisect`: the first bad commit (sha, subject) with its failing
    case and PTE field, or why none was found; then every commit tested."""
    lines: list[str] = []
    if found is not None:
        sha, subject = found
        lines.append(f"First bad commit: {sha} {subject}")
        step = next((s for s in reversed(steps) if s.commit == sha), None)
        if step is None:
            lines.append("  (not tested in this session)")
        else:
            ev = step.evidence
            if ev.case:
                lines.append(f"  failing case: {ev.case}"
                             + (f" (checkpoint: {ev.checkpoint})" if ev.checkpoint else ""))
            if ev.field:
                lines.append(f"  PTE field: {ev.field} ({ev.mismatch})")
            lines.append(f"  evidence: {ev.line}")
            if step.run_dir:
                lines.append(f"  artifacts: {step.run_dir}")
    elif candidates:
        lines.append("No single first bad commit: only commits that could not be tested are "
                     "left; the first bad commit is one of:")
        lines += [f"  {sha} {subject}" for sha, subject in candidates]
    else:
        lines.append(f"No first bad commit found: {why_not or 'git bisect did not name one'}")
    lines.append(f"Commits tested: {len(steps)}")
    lines += tested_table(steps)
    return lines
