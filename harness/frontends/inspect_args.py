"""What the inspection commands (inspect_cli.py) are given and build, as pure functions: the
address argument of `highmem pte` (a number, a C expression, or `hold:KIND`), hm_hold's
parameters and dmesg lines, the CPU a walk runs on, which guest's sockets `highmem qemu` and
`highmem dump` talk to, and the interactive gdb's command line and environment for `highmem
gdb`. No I/O library: the unit tests read these directly.
"""

import contextlib
import re
from argparse import Namespace
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import HarnessError
from ..core.monitor_commands import QMP_SOCKET, TOOLS_QMP_SOCKET, USER_QMP_SOCKET
from ..core.preflight import UsageError
from ..core.repo import REPO

HOLD = "hm_hold"
HOLD_LINE = re.compile(r"hm_hold: (?P<kind>[\w\[\] ]+?) va=(?P<va>0x[0-9a-f]+) "
                       r"pfn=(?P<pfn>0x[0-9a-f]+)")
GDB_COMMANDS = REPO / "harness" / "frontends" / "gdb_commands.py"
HOLD_VA = "hold:"            # `highmem pte --hold hold:kmap_local`: the VA hm_hold printed
TOOLS_ENV = "HIGHMEM_QMP"    # gdb_commands.py's QMP socket (hm-qemu, the monitor wrapper)


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
    """hm_hold's insmod parameters (--hold-param implies --hold); None: no --hold. With
    --cpu N (highmem pte), cpu=N: its kmap_local holder thread is bound to CPU N."""
    if not args.hold_param and not args.hold:
        return None
    params = list(args.hold_param)
    cpu = getattr(args, "cpu", None)
    if cpu is not None and not any(p.startswith("cpu=") for p in params):
        params.append(f"cpu={cpu}")
    return params


def check_cpu(cpu: int | None, smp: int) -> None:
    """--cpu N names one of the guest's --smp CPUs."""
    if cpu is not None and not 0 <= cpu < smp:
        raise UsageError(f"--cpu {cpu}: the guest has CPUs 0-{smp - 1} (--smp {smp})",
                         f"give --cpu between 0 and {smp - 1}, or a larger --smp")


def hold_kind(text: str) -> str | None:
    """KIND of a `hold:KIND` address (spaces in hm_hold's kinds written as `_`)."""
    return text[len(HOLD_VA):] if text.startswith(HOLD_VA) else None


def held_va(kind: str, dmesg: str) -> int:
    """The VA hm_hold printed for `kind` ("kmap_local", "kmap_above_4g", "vmap[3]")."""
    held = {h["kind"].replace(" ", "_"): h["va"] for h in parse_hold_lines(dmesg)}
    if kind not in held:
        raise UsageError(f"hm_hold holds no {kind!r}",
                         f"give one of: {', '.join(HOLD_VA + k for k in sorted(held))}")
    return held[kind]


def walk_cpu(requested: int | None, kmap_local_slot: tuple[int, int] | None) -> int | None:
    """The CPU a walk runs on: the one asked for; else, for a kmap_local slot, the CPU
    the slot belongs to (the one its mapping was made on: each CPU has its own slots);
    None: the CPU that reported the stop."""
    if requested is not None:
        return requested
    return kmap_local_slot[0] if kmap_local_slot is not None else None


def pick_sockets(explicit: str | None, boot: Path | None, warm: list[Path]) -> Path:
    """The socket directory of the guest `highmem qemu`/`highmem dump` talk to: --sockets
    DIR if given, else the one running guest (`highmem boot`'s or a warm one)."""
    if explicit:
        d = Path(explicit)
        if not (d / TOOLS_QMP_SOCKET).exists():
            raise UsageError(f"--sockets {explicit}: no {TOOLS_QMP_SOCKET} in it",
                             "give the socket directory `highmem boot`, `highmem gdb` or "
                             "`highmem status` prints")
        return d
    found = ([boot] if boot is not None else []) + warm
    if not found:
        raise HarnessError("no running guest to talk to",
                           "start one (`highmem boot`, `highmem up`), or give --sockets DIR "
                           "(`highmem gdb` prints it; in its gdb, use hm-qemu)")
    if len(found) > 1:
        raise UsageError(f"{len(found)} guests are up: {', '.join(map(str, found))}",
                         "say which with --sockets DIR")
    return found[0]


def sockets_text(sockdir: Path) -> str:
    """What `highmem boot`, `highmem gdb` and `highmem status` say of a guest's QMP."""
    return (f"QMP for your own client: {sockdir / USER_QMP_SOCKET} (the harness keeps "
            f"{QMP_SOCKET}; `highmem qemu --sockets {sockdir} CMD` and hm-qemu use "
            f"{TOOLS_QMP_SOCKET})")


def gdb_env(env: dict[str, str], tools_socket: Path) -> dict[str, str]:
    """The interactive gdb's environment: our repository (for gdb_commands.py's imports)
    and the QMP socket of hm-qemu and the `monitor` wrapper."""
    return dict(env, HIGHMEM_REPO=str(REPO), **{TOOLS_ENV: str(tools_socket)})


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
