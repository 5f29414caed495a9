"""What a run runs: the modules, their parameters, and the kernel messages a negative test
must provoke (an expected BUG or WARN). Pure: verdicts are decided here from results.
"""

import re
from dataclasses import dataclass

# kernel log lines that mean something went wrong, unless a spec expects them
TROUBLE = re.compile(r"(WARNING: CPU: \d+ PID: \d+ at \S+|kernel BUG at \S+|BUG: [^\n]+|"
                     r"Oops: [^\n]+|general protection fault[^\n]*|Kernel panic[^\n]*)")


@dataclass(frozen=True)
class ModuleSpec:
    """One module run. `expect_log`: regexes that must each match the kernel log of this
    run (an expected BUG or WARN); `crashes`: the module is expected to die in the kernel
    (insmod killed), after which the guest is rebooted for the next module."""

    name: str
    params: str = ""
    expect_log: tuple[str, ...] = ()
    crashes: bool = False
    timeout: float = 300.0

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
    ModuleSpec("kmap_local_misuse", "which=overflow",
               expect_log=(r"kernel BUG at mm/highmem\.c:\d+!",), crashes=True),
)


def trouble_lines(log: str) -> list[str]:
    return [m.group(0).strip() for m in TROUBLE.finditer(log)]


def unexpected_trouble(spec: ModuleSpec, log: str) -> list[str]:
    """Kernel trouble in `log` that no `expect_log` pattern of the spec accounts for."""
    pats = [re.compile(p) for p in spec.expect_log]
    if spec.crashes:  # the oops that reports an expected BUG
        pats.append(re.compile(r"^Oops: "))
    return [t for t in trouble_lines(log) if not any(p.search(t) for p in pats)]


def missing_expected(spec: ModuleSpec, log: str) -> list[str]:
    return [p for p in spec.expect_log if not re.search(p, log)]
