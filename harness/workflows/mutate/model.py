"""Mutation testing, pure: which patches to run, what each one is, how a run's report
classifies it, and the matrix `highmem mutate` prints (workflows/mutate/command.py does the git
copy, the builds and the runs).

A mutant is a patch against the kernel tree. Its verdict, read from the report.json of the
suite run on the patched kernel (the dict core/report.py's report_json writes):

- CHECK: a check of ours failed and names what differs: a PTE assertion (the first
  mismatch, e.g. `PFN: expected 0x23f401, got 0x23f400`), a KTAP case that FAILed, or a
  message the suite expects in the kernel log (an expected BUG) that did not come;
- CRASH: the kernel fell over instead: a module crashed or hung (the cause line carries the
  decoded frame, `; at f+0x3c mm/highmem.c:573 <- ...`), the guest did not boot, or the
  kernel complained on its own (WARN/BUG while booting or in a module, insmod failing);
- NOT_CAUGHT: the suite passed on the mutant;
- NO_APPLY / NO_BUILD: the patch does not apply, or the kernel (or a test module) does not
  compile with it; ERROR: the harness could not judge it (its own failure or the run's);
  NOT_RUN: the session was interrupted first.
"""

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.errors import HarnessError

CHECK, CRASH, NOT_CAUGHT = "check", "crash", "not caught"
NO_APPLY, NO_BUILD, ERROR, NOT_RUN = "does not apply", "does not build", "error", "not run"
VERDICTS = (CHECK, CRASH, NOT_CAUGHT, NO_APPLY, NO_BUILD, ERROR, NOT_RUN)
LABELS = {CHECK: "caught by check", CRASH: "caught by crash", NOT_CAUGHT: "NOT CAUGHT"}
PATCH_SUFFIXES = (".patch", ".diff")
SUITE_SUFFIXES = (".yaml", ".yml")
NO_DESCRIPTION = "(no description)"
DESCRIPTION_HEADER = re.compile(r"^#\s*description:\s*(.+)$", re.I)
# `# kernel: 7.2`: the patch is for the Linux 7.2 tree only (a file that changed since 6.12,
# e.g. the revert of 83b2d345e178); a patch without it is for any tree it applies to
KERNEL_HEADER = re.compile(r"^#\s*kernel:\s*(\d+\.\d+)\s*$", re.I)
SUBJECT = re.compile(r"^Subject:\s*(?:\[[^\]]*\]\s*)?(.+)$")
PATCH_START = ("diff ", "--- ", "+++ ", "Index: ", "@@ ")
# what an oops prints first (arch/x86/mm/fault.c, arch/x86/kernel/traps.c), and the
# segfault of a user task (show_signal_msg) that makes the kernel panic when it is init
OOPS_LINE = re.compile(r"(BUG: |kernel BUG at |general protection fault|Oops: |double fault"
                       r"|\S+\[\d+\]: segfault at )")
# the first error of a kernel build log: the compiler's, the linker's, or make's own
BUILD_ERROR = re.compile(r"^(\S+:\d+(?::\d+)?: (?:fatal )?error: .*|.*undefined reference to .*"
                         r"|ERROR: modpost: .*|make(?:\[\d+\])?: \*\*\* .*)$", re.M)


@dataclass(frozen=True)
class Mutant:
    """One patch file: its name (the file name without .patch) and one-line description."""

    path: Path
    name: str
    description: str
    kernel: str | None = None  # "7.2": for that kernel's tree only (its `# kernel:` line)

    def wrong_kernel(self, version: tuple[int, ...]) -> str | None:
        """Why the mutant is not for a tree of `version` (its `# kernel:` line), or None."""
        if self.kernel is None or self.kernel == ".".join(map(str, version[:2])):
            return None
        return (f"a mutant for Linux {self.kernel} (its '# kernel: {self.kernel}' line); "
                f"this tree is Linux {'.'.join(map(str, version))}")


@dataclass
class Outcome:
    """What one mutant did: its verdict, the evidence in one line (`detail`: the whole cause
    when the evidence is a shortened one), seconds spent, and where its run's artifacts are."""

    mutant: Mutant
    verdict: str
    evidence: str = ""
    detail: str = ""
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def caught(self) -> bool:
        return self.verdict in (CHECK, CRASH)

    def to_json(self) -> dict[str, Any]:
        return {"mutant": self.mutant.name, "patch": str(self.mutant.path.absolute()),
                "description": self.mutant.description, "verdict": self.verdict,
                "caught": self.caught, "evidence": self.evidence,
                "detail": self.detail or self.evidence, "seconds": round(self.seconds, 1),
                "phases_s": {k: round(v, 1) for k, v in self.phases.items()},
                "run_dir": str(self.run_dir) if self.run_dir else None}


def description(text: str) -> str:
    """A patch's one-line description: a `# description:` header, else the git `Subject:`
    (without its `[PATCH]` tag), else the first non-empty line before the diff itself."""
    head: list[str] = []
    for line in text.splitlines():
        if line.startswith(PATCH_START):
            break
        head.append(line)
    for pattern in (DESCRIPTION_HEADER, SUBJECT):
        m = next((m for m in map(pattern.match, head) if m), None)
        if m:
            return m.group(1).strip()
    first = next((x.strip() for x in head if x.strip()), "")
    if not first or first.startswith("From ") and re.match(r"From [0-9a-f]{40} ", first):
        return NO_DESCRIPTION
    return first.lstrip("#").strip() or NO_DESCRIPTION


def kernel_of(text: str) -> str | None:
    """The `# kernel: X.Y` header line of a patch (before its diff), or None."""
    for line in text.splitlines():
        if line.startswith(PATCH_START):
            break
        m = KERNEL_HEADER.match(line)
        if m:
            return m.group(1)
    return None


def load_mutant(path: Path) -> Mutant:
    """The Mutant of a patch file (read here; HarnessError if it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise HarnessError(f"cannot read patch {path}: {e.strerror or e}",
                           "check the path and its permissions") from None
    name = path.name
    for suffix in PATCH_SUFFIXES:
        name = name.removesuffix(suffix)
    return Mutant(path=path, name=name, description=description(text), kernel=kernel_of(text))


def split_arguments(items: list[str]) -> tuple[Path | None, list[Path]]:
    """`highmem mutate`'s positional arguments: (the suite file, the patches in order).

    A .yaml/.yml file is the suite (one at most); a directory stands for its *.patch and
    *.diff files in name order; anything else is a patch."""
    suite: Path | None = None
    patches: list[Path] = []
    for item in items:
        p = Path(item)
        if p.suffix in SUITE_SUFFIXES and not p.is_dir():
            if suite is not None:
                raise HarnessError(f"two suite files: {suite} and {p}",
                                   "give one suite file (and the patches)")
            suite = p
        elif p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in PATCH_SUFFIXES and f.is_file())
            if not found:
                raise HarnessError(f"{p} holds no .patch or .diff file",
                                   "pass patch files, or a directory of them like mutants/")
            patches += found
        elif not p.is_file():
            raise HarnessError(f"patch {p} does not exist",
                               "pass existing patch files, e.g. mutants/*.patch")
        else:
            patches.append(p)
    if not patches:
        raise HarnessError("no patch given", "name at least one patch: highmem mutate "
                           "mutants/01-kmap-local-pfn-plus-one.patch (or mutants/)")
    return suite, patches


def copy_name(tree: Path, identity: str) -> str:
    """The directory under $HIGHMEM_CACHE/mutate/ for the copy of `tree`: the unpacked
    tarball's own cache name (it already says which tarball), else the tree's name and a
    hash of its path (one copy per tree, however its contents change)."""
    if identity.startswith("tar:"):
        return tree.parent.name if tree.parent.name.startswith(tree.name) else tree.name
    return f"{tree.name}-{hashlib.sha256(str(tree).encode()).hexdigest()[:10]}"


def first_build_error(log_text: str) -> str:
    """The first error line of a kernel build log (the compiler's, else make's)."""
    m = BUILD_ERROR.search(log_text)
    if m:
        return m.group(1).strip()
    lines = [x.strip() for x in log_text.splitlines() if x.strip()]
    return lines[-1] if lines else "(empty build log)"


def compact_cause(line: str) -> str:
    """A failure's cause line shortened for the matrix: its first part, the oops line that
    led to a panic, and the decoded frames (`at f+0x3c mm/highmem.c:573 <- ...`), the EIP
    when nothing was decoded."""
    parts = line.split("; ")
    keep = [parts[0]]
    if parts[0].find("Kernel panic") >= 0:
        keep += [p for p in parts[1:2] if OOPS_LINE.match(p)]
    at = [p for p in parts[1:] if p.startswith("at ")]
    eip = [p for p in parts[1:] if p.startswith("EIP ")]
    keep += at or eip
    return "; ".join(keep)


def _with_first_oops(cause: str, console_tail: list[str]) -> str:
    """A boot failure's cause with the console's first oops (or init segfault) line after its
    first part when the cause does not hold it: a panic "Attempted to kill init!" says less
    than the `BUG: unable to handle page fault for address: fffbb000` that led to it."""
    first = next((x.strip() for x in console_tail if OOPS_LINE.match(x.strip())), None)
    if first is None or first in cause:
        return cause
    head, sep, rest = cause.partition("; ")
    return f"{head}; {first}" + (f"; {rest}" if sep else "")


def _title(m: dict[str, Any]) -> str:
    return m["name"] + (f" {m['params']}" if m.get("params") else "")


def _check_evidence(report: dict[str, Any]) -> str | None:
    """The first failed check of ours: a PTE mismatch, else a FAILed KTAP case, else an
    expected kernel message that did not come."""
    modules = report.get("modules", [])
    for b in report.get("boots", []):
        if b.get("checks"):  # stages/boot_probe.py judged kmap_local while booting
            return f"boot {b.get('number')}: {b['checks'][0]}"
    for m in modules:
        for cp in m.get("checkpoints", []):
            for c in cp.get("checks", []):
                if c.get("mismatches"):
                    return f"{_title(m)}/{c.get('label') or cp.get('label')}: {c['mismatches'][0]}"
    for m in modules:
        for case in m.get("ktap", []):
            if case.get("status") == "FAIL":
                notes = [d.lstrip("# ").strip() for d in case.get("diagnostics", [])
                         if d.strip("# ")]
                why = case.get("directive") or (notes[-1] if notes else "")
                return f"{_title(m)}/{case.get('name')}: KTAP FAIL" + (f": {why}" if why else "")
    for m in modules:  # the verdict's reasons as data (report.json "why")
        for r in m.get("why", []):
            if r.get("kind") == "expected-log":
                return f"{_title(m)}: {r['text']}"
    return None


def _crash_evidence(report: dict[str, Any]) -> tuple[str, str] | None:
    """(short, full) evidence that the kernel fell over or complained: a module's crash or
    hang, a boot that failed, then any other failure of a module or boot but ours."""
    modules = report.get("modules", [])
    boots = report.get("boots", [])
    for m in modules:
        f = m.get("failure")
        if f and f.get("kind") in ("crash", "hang"):
            return f"{_title(m)}: {compact_cause(f['line'])}", f"{_title(m)}: {f['line']}"
    for b in boots:
        f = b.get("failure")
        if f:
            cause = _with_first_oops(f["cause"], b.get("console_tail", []))
            return (f"boot {b.get('number')} failed: {compact_cause(cause)}",
                    f"boot {b.get('number')} failed: {cause}")
    for m in modules:
        f = m.get("failure") or {}
        if m.get("passed") or f.get("kind") in ("not-run", "harness", "build"):
            continue
        reasons = m.get("reasons") or ["failed"]
        return f"{_title(m)}: {compact_cause(reasons[0])}", f"{_title(m)}: {reasons[0]}"
    for b in boots:
        if b.get("reasons"):
            return f"boot {b.get('number')}: {b['reasons'][0]}", f"boot {b.get('number')}: " \
                + "; ".join(b["reasons"])
    return None


def classify(report: dict[str, Any]) -> tuple[str, str, str]:
    """(verdict, evidence, detail) of a suite run on a mutant, from its report.json dict."""
    modules = report.get("modules", [])
    check = _check_evidence(report)
    if check:
        return CHECK, check, check
    crash = _crash_evidence(report)
    if crash:
        return CRASH, crash[0], crash[1]
    for m in modules:
        f = m.get("failure") or {}
        if f.get("kind") == "build":
            return NO_BUILD, f"{_title(m)}: {f['line']}", f"{_title(m)}: {f['line']}"
        if f.get("kind") == "harness":
            return ERROR, f"{_title(m)}: {f['line']}", f"{_title(m)}: {f['line']}"
    if report.get("interrupted"):
        return NOT_RUN, f"interrupted ({report['interrupted']})", ""
    if not report.get("passed", False) or not modules:
        why = next((r for m in modules for r in m.get("reasons", [])), "no module ran")
        return ERROR, why, why
    ptes = sum(len(cp.get("checks", [])) for m in modules for cp in m.get("checkpoints", []))
    cases = sum(len(m.get("ktap", [])) for m in modules)
    text = f"suite passed: {len(modules)} modules, {cases} KTAP cases, {ptes} PTE assertions"
    return NOT_CAUGHT, text, text


def label(verdict: str) -> str:
    return LABELS.get(verdict, verdict)


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    out = {v: 0 for v in VERDICTS}
    for o in outcomes:
        out[o.verdict] += 1
    return out


def summary_line(outcomes: list[Outcome]) -> str:
    """`N mutants: a caught by check, b caught by crash, c not caught, ...` (the verdicts
    past "does not build" only when some mutant has them)."""
    n = counts(outcomes)
    parts = [f"{n[CHECK]} caught by check", f"{n[CRASH]} caught by crash",
             f"{n[NOT_CAUGHT]} not caught", f"{n[NO_APPLY]} do not apply",
             f"{n[NO_BUILD]} do not build"]
    parts += [f"{n[v]} {v}" for v in (ERROR, NOT_RUN) if n[v]]
    return f"{len(outcomes)} mutants: " + ", ".join(parts)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def matrix_table(outcomes: list[Outcome], desc_width: int = 60) -> str:
    """The matrix: one row per mutant (mutant | description | verdict | seconds |
    evidence), the evidence in full (a crash's decoded frame is at its end)."""
    name_w = max([len("mutant")] + [len(o.mutant.name) for o in outcomes])
    verdict_w = max([len("verdict")] + [len(label(o.verdict)) for o in outcomes])
    rows = [f"  {'mutant':<{name_w}}  {'description':<{desc_width}}  "
            f"{'verdict':<{verdict_w}}  {'time s':>6}  evidence"]
    for o in outcomes:
        rows.append(f"  {o.mutant.name:<{name_w}}  "
                    f"{_cut(o.mutant.description, desc_width):<{desc_width}}  "
                    f"{label(o.verdict):<{verdict_w}}  {o.seconds:>6.0f}  {o.evidence}")
    return "\n".join(rows)


def exit_status(outcomes: list[Outcome], expect_fail: bool) -> int:
    """0 when every mutant was caught (with expect_fail: caught by a check), else 1."""
    wanted = (CHECK,) if expect_fail else (CHECK, CRASH)
    return 0 if outcomes and all(o.verdict in wanted for o in outcomes) else 1


def matrix_json(outcomes: list[Outcome], meta: dict[str, Any]) -> dict[str, Any]:
    """The --json document: the session's facts (`meta`), the counts, one entry per mutant."""
    return {**meta, "summary": {**counts(outcomes), "total": len(outcomes)},
            "mutants": [o.to_json() for o in outcomes]}
