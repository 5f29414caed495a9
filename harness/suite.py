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


DEFAULT_SUITE: tuple[ModuleSpec, ...] = (
    ModuleSpec("kmap_local_basic"),
    ModuleSpec("kmap_local_suite"),
    ModuleSpec("kmap_atomic_suite"),
    ModuleSpec("kmap_suite"),
    ModuleSpec("vmap_suite"),
    # Out-of-order kunmap_local: WARN_ON_ONCE in kunmap_local_indexed (6.12:623, 6.1:610),
    # and the top slot is cleared instead of the one passed.
    ModuleSpec("kmap_local_misuse", "which=order",
               expect_log=(r"WARNING: CPU: \d+ PID: \d+ at mm/highmem\.c:\d+ kunmap_local_indexed",)),
    # Nesting kmap_local past KM_MAX_IDX: BUG_ON in kmap_local_idx_push (6.12:480, 6.1:467).
    # insmod then dies holding KM_MAX_IDX maps: __kmap_local_sched_out() WARNs as it is
    # switched out on its way to exit (6.12:663).
    ModuleSpec("kmap_local_misuse", "which=overflow",
               expect_log=(r"kernel BUG at mm/highmem\.c:\d+!",), crashes=True,
               allow_log=(r"at mm/highmem\.c:\d+ __kmap_local_sched_(out|in)",)),
)


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


def select(names: list[str], params: dict[str, str], timeout: float,
           suite: tuple[ModuleSpec, ...] = DEFAULT_SUITE) -> tuple[ModuleSpec, ...]:
    """The specs for `highmem run [--module N]... [--param N:k=v]...`.

    No names: the whole suite. A name in the suite selects all its entries (with their
    expected messages); other names are plain modules. `params` for a module replace the
    suite's; they keep the expectations of the suite entry with the same parameters.
    """
    known = {s.name for s in suite}
    base = list(suite) if not names else (
        [s for s in suite if s.name in names] + [ModuleSpec(n) for n in names if n not in known])
    out: list[ModuleSpec] = []
    for s in base:
        if s.name in params:
            p = params[s.name]
            s = next((d for d in suite if d.name == s.name and d.params == p), ModuleSpec(s.name, p))
        s = ModuleSpec(s.name, s.params, s.expect_log, s.crashes, timeout, s.allow_log)
        if s not in out:
            out.append(s)
    return tuple(out)
