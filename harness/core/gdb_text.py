"""Debugger answers as text, parsed (pure): QEMU's `xp` (physical memory, read through gdb's
`monitor` or the MI console) and gdb's `info symbol`. The MI transport (stages/gdbmi.py)
and gdb's own Python (frontends/gdb_commands.py) both read these."""

import re

from .errors import GdbError
from .pagewalk import NotRam

XP_LINE = re.compile(r"^([0-9a-fA-F]+):\s+((?:0x[0-9a-fA-F]+\s*)+)$")
SYMBOL_LINE = re.compile(r"^(\S+)(?: \+ (\d+))? in section")


def parse_xp(text: str, size: int) -> bytes:
    """The bytes of QEMU's `xp /Ngx ADDR` output (lines `ADDR: 0x... 0x...`)."""
    out = bytearray()
    for line in text.splitlines():
        m = XP_LINE.match(line.strip())
        if m:
            for w in m.group(2).split():
                out += int(w, 16).to_bytes(8, "little")
    if len(out) < size:
        if "Cannot access memory" in text:  # not RAM (QEMU 7.2: "ADDR: Cannot access memory")
            raise NotRam(f"guest physical memory at {text.split(':')[0].strip()} is not RAM",
                         "the address is not guest RAM")
        raise GdbError(f"monitor xp returned {text[:120]!r}", "is the guest stopped?")
    return bytes(out[:size])


def parse_symbol(text: str) -> str | None:
    """gdb's `info symbol` answer as `name+off`, or None ("No symbol matches")."""
    m = SYMBOL_LINE.match(text.strip())
    if not m:
        return None
    return m.group(1) + (f"+{int(m.group(2)):#x}" if m.group(2) else "")
