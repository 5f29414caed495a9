"""What a run runs: the modules, their parameters, and the kernel messages a negative test
must provoke (an expected BUG or WARN). Pure: verdicts are decided here from results.
"""

import re
from dataclasses import dataclass

# kernel log lines that mean something went wrong, unless a spec expects them
TROUBLE = re.compile(r"(WARNING: CPU: \d+ PID: \d+ at [^\n]+|kernel BUG at [^\n]+|BUG: [^\n]+|"
                     r"Oops: [^\n]+|general protection fault[^\n]*|Kernel panic[^\n]*)")


@dataclass(frozen=True)
class ModuleSpec:
    """One module run. `expect_log`: regexes that must each match the kernel log of this
    run (an expected BUG or WARN); `crashes`: the module is expected to die in the kernel
    (insmod killed), after which the guest is rebooted for the next module; `allow_log`:
    messages tolerated but not required (what follows such a crash)."""

    name: str
    params: str = ""
    expect_log: tuple[str, ...] = ()
    crashes: bool = False
    timeout: float = 300.0
    allow_log: tuple[str, ...] = ()  # tolerated, not required: the aftermath of a crash

    @property
    def title(self) -> str:
        return f"{self.name} {self.params}".strip()


def trouble_lines(log: str) -> list[str]:
    return [m.group(0).strip() for m in TROUBLE.finditer(log)]


def unexpected_trouble(spec: ModuleSpec, log: str) -> list[str]:
    """Kernel trouble in `log` that no `expect_log` pattern of the spec accounts for."""
    pats = [re.compile(p) for p in (*spec.expect_log, *spec.allow_log)]
    if spec.crashes:  # the oops that reports an expected BUG
        pats.append(re.compile(r"^Oops: "))
    return [t for t in trouble_lines(log) if not any(p.search(t) for p in pats)]


def missing_expected(spec: ModuleSpec, log: str) -> list[str]:
    return [p for p in spec.expect_log if not re.search(p, log)]


def select(suite: tuple[ModuleSpec, ...], names: list[str], params: dict[str, str],
           timeout: float | None = None) -> tuple[ModuleSpec, ...]:
    """The specs for `highmem run [--module N]... [--param N:k=v]...`.

    No names: the whole suite. A name in the suite selects all its entries (with their
    expected messages); other names are plain modules. `params` for a module replace the
    suite's; they keep the expectations of the suite entry with the same parameters.
    `timeout`, when given, replaces every entry's.
    """
    known = {s.name for s in suite}
    base = list(suite) if not names else (
        [s for s in suite if s.name in names] + [ModuleSpec(n) for n in names if n not in known])
    out: list[ModuleSpec] = []
    for s in base:
        if s.name in params:
            p = params[s.name]
            s = next((d for d in suite if d.name == s.name and d.params == p),
                     ModuleSpec(s.name, p))
        s = ModuleSpec(s.name, s.params, s.expect_log, s.crashes,
                       s.timeout if timeout is None else timeout, s.allow_log)
        if s not in out:
            out.append(s)
    return tuple(out)
