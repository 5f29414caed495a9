"""What the inspection commands (inspect_cli.py) are given and build, as pure functions: the
address argument of `highmem pte`, hm_hold's parameters and dmesg lines, and the interactive
gdb's command line for `highmem gdb`. No I/O library: the unit tests read these directly.
"""

import contextlib
import re
from argparse import Namespace
from pathlib import Path
from typing import Any, Protocol

from ..core.repo import REPO

HOLD = "hm_hold"
HOLD_LINE = re.compile(r"hm_hold: (?P<kind>[\w\[\] ]+?) va=(?P<va>0x[0-9a-f]+) "
                       r"pfn=(?P<pfn>0x[0-9a-f]+)")
GDB_COMMANDS = REPO / "harness" / "frontends" / "gdb_commands.py"


class BuiltKernel(Protocol):
    """What gdb needs of a built kernel (stages/build.py's KernelBuild)."""

    @property
    def vmlinux(self) -> Path: ...
    @property
    def gdb_script(self) -> Path: ...


def parse_hold_lines(dmesg: str) -> list[dict[str, Any]]:
    """hm_hold's "hm_hold: <kind> va=0x... pfn=0x..." lines as {kind, va, pfn}."""
    return [{"kind": m["kind"], "va": int(m["va"], 16), "pfn": int(m["pfn"], 16)}
            for m in HOLD_LINE.finditer(dmesg)]


def hold_params(args: Namespace) -> list[str] | None:
    """hm_hold's insmod parameters (--hold-param implies --hold); None: no --hold."""
    if args.hold_param:
        return list(args.hold_param)
    return [] if args.hold else None


def va_arg(text: str) -> int | str:
    """A number (0x... or bare hex) or else a C expression for gdb to evaluate."""
    for base in (0, 16):
        with contextlib.suppress(ValueError):
            return int(text, base)
    return text


def gdb_argv(kernel: BuiltKernel, socket: Path, lx_symbols: bool) -> list[str]:
    """The interactive gdb: vmlinux, the kernel's helpers, our commands, the guest."""
    # auto-loading vmlinux-gdb.py is declined by gdb's safe-path (a warning, twice): we
    # source it explicitly instead
    argv = ["gdb", "-q", "-iex", "set auto-load python-scripts off", str(kernel.vmlinux),
            "-ex", "set pagination off",
            "-ex", f"source {kernel.gdb_script}", "-ex", f"target remote {socket}"]
    if lx_symbols:
        argv += ["-ex", "lx-symbols"]
    return argv + ["-x", str(GDB_COMMANDS)]
