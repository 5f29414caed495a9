"""What went wrong, read from kernel text (pure): the cause line of a crash, a hang or a
boot that did not finish, for the report's one-line causes.

A *crash* is an oops, a BUG, a general protection fault or a panic (the kernel stops the
faulting task or itself); a WARNING is *trouble* but not a crash. Patterns hold for Linux
6.1-6.14 on i386 (arch/x86/mm/fault.c `page_fault_oops`, arch/x86/kernel/dumpstack.c
`__die`, kernel/panic.c).
"""

import re
from dataclasses import dataclass

from .ktap import strip_prefix

# a line that means the kernel (or the task) died
CRASH = re.compile(r"(BUG: [^\n]+|kernel BUG at [^\n]+|Oops: [^\n]+|"
                   r"general protection fault[^\n]*|Kernel panic - not syncing[^\n]*|"
                   r"double fault[^\n]*)")
# i386 __show_regs: "EIP: cat_null_deref_init+0xd/0x1000 [cat_null_deref]"
EIP = re.compile(r"EIP: ([^\s][^\n]*)")
PANIC = re.compile(r"Kernel panic - not syncing[^\n]*")

KINDS = ("crash", "hang", "checkpoint", "insmod", "build", "boot", "not-run", "harness")


@dataclass(frozen=True)
class Failure:
    """Why a module (or the boot) failed, outside its KTAP cases and PTE checks.

    kind: one of KINDS. crash: the kernel oopsed, BUGged or panicked (QEMU may be gone);
    hang: the module (with its checkpoints) overran its timeout, or the guest stopped
    answering; checkpoint: a malformed `struct hm_expect`; insmod: init returned an error;
    build: the module did not compile; boot: the guest did not come up; not-run: the run
    was interrupted or could not reach this module; harness: a bug of ours (traceback kept
    in the module's artifacts)."""

    kind: str
    cause: str

    @property
    def line(self) -> str:
        return self.cause if self.cause.startswith(self.kind) else f"{self.kind}: {self.cause}"


def _lines(text: str) -> list[str]:
    return [strip_prefix(raw) for raw in text.splitlines()]


def crash_lines(text: str) -> list[str]:
    """Every line of `text` that reports a crash, without printk prefixes."""
    out = []
    for line in _lines(text):
        m = CRASH.search(line)
        if m:
            out.append(m.group(0).strip())
    return out


def crash_summary(text: str) -> str | None:
    """The first crash line with the faulting EIP, e.g. `BUG: kernel NULL pointer
    dereference, address: 00000000; EIP cat_null_deref_init+0xd/0x1000 [cat_null_deref]`;
    None if `text` holds no crash."""
    lines = crash_lines(text)
    if not lines:
        return None
    first = lines[0]
    oops = next((x for x in lines if x.startswith("Oops:")), None)
    eip = next((m.group(1).strip() for m in map(EIP.search, _lines(text)) if m), None)
    parts = [first]
    if oops and oops != first:
        parts.append(oops)
    if eip:
        parts.append(f"EIP {eip}")
    return "; ".join(parts)


def panic_line(text: str) -> str | None:
    m = None
    for m in PANIC.finditer(text):
        pass
    # the last one may be the "---[ end Kernel panic - not syncing: ... ]---" trailer
    return m.group(0).removesuffix(" ]---").strip() if m else None


def last_line(text: str) -> str:
    """The last non-empty console line (without shell markers), for hang causes."""
    for line in reversed(_lines(text)):
        line = re.sub(r"@@HM\d+(?:x[0-9a-f]+)?RC=\d+@@", "", line).strip()
        if line:
            return line[:160]
    return "(nothing)"


def tail(text: str, n: int = 25) -> list[str]:
    """The last `n` non-empty lines of a console log."""
    return [x for x in _lines(text) if x.strip()][-n:]


def nearest_symbol(addr: int, kallsyms: str) -> str | None:
    """`func+0xoff [module]` for `addr` from /proc/kallsyms text (only text symbols, the
    closest one at or below `addr` within 64 KiB)."""
    best: tuple[int, str] | None = None
    for line in kallsyms.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] not in "tT":
            continue
        try:
            a = int(parts[0], 16)
        except ValueError:
            continue
        if a <= addr and addr - a < 0x10000 and (best is None or a > best[0]):
            mod = f" {parts[3]}" if len(parts) > 3 else ""
            best = (a, f"{parts[2]}{mod}")
    if best is None:
        return None
    name, _, mod = best[1].partition(" ")
    return f"{name}+{addr - best[0]:#x}" + (f" {mod}" if mod else "")
