"""`highmem gdb`, `highmem pte`, `highmem kmaps`, `highmem vmaps`, `highmem layout`:
live-mapping inspection (issue 5). Subcommands are added to the CLI by register().

`highmem gdb` boots the guest with QEMU's gdbstub left free (Lab.guest(attach=False)) and
runs an interactive gdb on this terminal with vmlinux, the kernel's vmlinux-gdb.py and
harness/gdb_commands.py (hm-pte, hm-kmaps, hm-vmaps, hm-layout). The other four boot the
guest with the harness's own MI gdb attached, stop it once, print one report from
harness.inspect over `MiTarget`, and shut it down. `--hold` loads hm_hold.ko first, which
keeps one mapping of each kind live.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect

from . import inspect
from .build import KernelBuild
from .commands import add_lab_args, lab_options
from .console import SerialShell
from .errors import GuestError, HarnessError
from .gdbmi import Gdb
from .image import MODULE_DIR_IN_GUEST
from .lab import Lab
from .mi_target import MiTarget
from .paths import REPO, new_run_dir
from .procutil import die_with_parent, stop
from .progress import Phases, say

HOLD = "hm_hold"
GDB_COMMANDS = REPO / "harness" / "gdb_commands.py"
HOLD_LINE = re.compile(r"hm_hold: (?P<kind>[\w\[\] ]+?) va=(?P<va>0x[0-9a-f]+) "
                       r"pfn=(?P<pfn>0x[0-9a-f]+)")
GDB_QUIT_SECONDS = 10.0


@contextlib.contextmanager
def stopped_target(gdb: Gdb, timeout: float = 30.0) -> Iterator[MiTarget]:
    """Interrupt the running guest (all CPUs), yield a target on the CPU that reported the
    stop, and resume the guest afterwards, also on error.

    gdb runs MI synchronously (mi-async off): while the target runs it reads no commands, so
    `-exec-interrupt` would wait forever. SIGINT is what gdb itself listens for (Ctrl-C)."""
    stopped = gdb.interrupt(timeout)
    try:
        yield MiTarget(gdb, int(str(stopped.get("thread-id", "1"))) - 1)
    finally:
        gdb.resume()


def parse_hold_lines(dmesg: str) -> list[dict[str, Any]]:
    """hm_hold's "hm_hold: <kind> va=0x... pfn=0x..." lines as {kind, va, pfn}."""
    return [{"kind": m["kind"], "va": int(m["va"], 16), "pfn": int(m["pfn"], 16)}
            for m in HOLD_LINE.finditer(dmesg)]


def load_hold(shell: SerialShell, params: list[str], timeout: float = 60.0) -> str:
    """insmod hm_hold.ko and wait for its "ready" line (its holder thread makes the stale
    kmap only after module loading is over); returns its dmesg lines."""
    cmd = " ".join([f"insmod {MODULE_DIR_IN_GUEST}/{HOLD}.ko", *params])
    rc, out = shell.run(cmd, timeout=120)
    if rc != 0:
        raise GuestError(f"{cmd} failed (exit {rc}): {out[-200:]}",
                         "read console.log in the run directory")
    deadline = time.monotonic() + timeout
    while True:
        lines = shell.check(f"dmesg | grep '{HOLD}:'")
        if f"{HOLD}: ready" in lines:
            return lines
        if time.monotonic() > deadline:
            raise GuestError(f"{HOLD} did not print 'ready' within {timeout:.0f} s",
                             "read dmesg in the guest (console.log in the run directory)")
        time.sleep(0.2)


def gdb_argv(kernel: KernelBuild, socket: Path, lx_symbols: bool) -> list[str]:
    """The interactive gdb: vmlinux, the kernel's helpers, our commands, the guest."""
    # auto-loading vmlinux-gdb.py is declined by gdb's safe-path (a warning, twice): we
    # source it explicitly instead
    argv = ["gdb", "-q", "-iex", "set auto-load python-scripts off", str(kernel.vmlinux),
            "-ex", "set pagination off",
            "-ex", f"source {kernel.gdb_script}", "-ex", f"target remote {socket}"]
    if lx_symbols:
        argv += ["-ex", "lx-symbols"]
    return argv + ["-x", str(GDB_COMMANDS)]


def _gdb_child() -> None:
    """preexec for the interactive gdb: Ctrl-C is gdb's (we ignore it), dies with us."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def _drain(child: pexpect.spawn | None) -> None:
    """Keep reading the guest console (into console.log) so QEMU never blocks on it."""
    if child is None:
        return
    with contextlib.suppress(pexpect.TIMEOUT, pexpect.EOF):
        child.read_nonblocking(65536, timeout=0)


def run_interactive(argv: list[str], cwd: Path, console: pexpect.spawn | None,
                    max_seconds: float) -> int:
    """Run gdb on this terminal until it exits (or `max_seconds` pass: then it is
    terminated); the guest console is drained meanwhile. Returns gdb's exit status."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = dict(os.environ, HIGHMEM_REPO=str(REPO))   # for gdb_commands.py's imports
    proc = subprocess.Popen(argv, cwd=cwd, env=env, preexec_fn=_gdb_child)
    try:
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            try:
                return proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                _drain(console)
        say(f"highmem gdb: the session reached its limit of {max_seconds:.0f} s; "
            "stopping gdb (raise it with --max-seconds)")
        return -1
    finally:
        stop(proc, GDB_QUIT_SECONDS)
        signal.signal(signal.SIGINT, old)


def _lab(args: argparse.Namespace, tag: str) -> tuple[Lab, Path]:
    run_dir = new_run_dir(tag)
    opts = lab_options(args)
    opts.append = args.append
    return Lab(opts, run_dir, Phases()), run_dir


def _hold_params(args: argparse.Namespace) -> list[str] | None:
    if args.hold_param:
        return list(args.hold_param)
    return [] if args.hold else None


def cmd_gdb(args: argparse.Namespace) -> int:
    lab, run_dir = _lab(args, "gdb")
    hold = _hold_params(args)
    try:
        s = lab.guest(attach=False)
        if hold is not None:
            say(load_hold(s.shell, hold))
        argv = gdb_argv(lab.kernel, s.qemu.gdb_socket, lx_symbols=not args.no_lx_symbols)
        (run_dir / "gdb-cmdline.txt").write_text(subprocess.list2cmdline(argv) + "\n")
        say(f"== gdb (guest stays up until you quit gdb; artifacts: {run_dir})\n"
            "  hm-pte VA, hm-kmaps, hm-vmaps, hm-layout; lx-dmesg, lx-ps, lx-symbols ...")
        rc = run_interactive(argv, lab.kernel.build_dir, s.qemu.child, args.max_seconds)
    finally:
        lab.close()
    say(f"highmem gdb: gdb exited ({rc}); the guest was shut down")
    return 0 if rc == 0 else 1


def _va(text: str) -> int | str:
    """A number (0x... or bare hex) or else a C expression for gdb to evaluate."""
    for base in (0, 16):
        with contextlib.suppress(ValueError):
            return int(text, base)
    return text


def _inspect(args: argparse.Namespace, report: Callable[[MiTarget], inspect.Report],
             tag: str) -> int:
    """Boot, (hold,) stop once, report, shut down. Progress goes to stderr (say())."""
    lab, run_dir = _lab(args, tag)
    hold = _hold_params(args)
    try:
        s = lab.guest(attach=True)
        if hold is not None:
            say(load_hold(s.shell, hold))
        t0 = time.monotonic()
        with stopped_target(s.gdb) as target:
            rep = report(target)
        say(f"== {tag}: the guest was stopped for {time.monotonic() - t0:.2f} s "
            f"(artifacts: {run_dir})")
    finally:
        lab.close()
    text = json.dumps(rep.to_json(), indent=2) if args.json else rep.format()
    (run_dir / f"{tag}.{'json' if args.json else 'txt'}").write_text(text + "\n")
    print(text)
    return 0


def _pte(args: argparse.Namespace) -> int:
    va = _va(args.va)
    if isinstance(va, int) and not 0 <= va <= 0xFFFFFFFF:
        raise HarnessError(f"{va:#x} is not a 32-bit virtual address",
                           "give an address below 0x100000000")

    def report(t: MiTarget) -> inspect.Report:
        addr = va if isinstance(va, int) else _eval(t, va)
        return inspect.pte_report(t, addr)
    return _inspect(args, report, "pte")


def _eval(t: MiTarget, expr: str) -> int:
    try:
        return t.int_value(f"(unsigned long)({expr})")
    except inspect.SymbolMissing:
        raise HarnessError(f"{expr!r} is neither a number nor an expression gdb knows",
                           "give a virtual address such as 0xff601000") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hold", action="store_true",
                   help="insmod hm_hold.ko first: it holds a kmap, a stale kmap, a vmap and "
                   "a kmap_local (in a sleeping kernel thread) until the guest stops")
    p.add_argument("--hold-param", action="append", default=[], metavar="KEY=VALUE",
                   help="hm_hold parameter (implies --hold), e.g. spin=1: the kmap_local "
                   "holder busy-waits, so its PTE is present when the guest stops")
    add_lab_args(p)
    p.add_argument("--append", default="", help="extra kernel command line")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the inspection subcommands to `highmem`."""
    g = sub.add_parser("gdb", help="boot the guest and open an interactive gdb on it with "
                       "hm-pte, hm-kmaps, hm-vmaps, hm-layout and the kernel's lx-* helpers",
                       description="Quit gdb to shut the guest down.")
    _common(g)
    g.add_argument("--no-lx-symbols", action="store_true",
                   help="do not run lx-symbols (module symbols) after attaching")
    g.add_argument("--max-seconds", type=float, default=4 * 3600,
                   help="end the session after this long (default %(default).0f)")
    g.set_defaults(func=cmd_gdb)
    reports: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("pte", "the full page walk of one virtual address", _pte),
        ("kmaps", "every live kmap: PKMAP slots, kmap_local slots, kmap_ctrl stacks",
         lambda a: _inspect(a, inspect.kmaps_report, "kmaps")),
        ("vmaps", "the VM_MAP vmap areas with their pages' PFNs",
         lambda a: _inspect(a, inspect.vmaps_report, "vmaps")),
        ("layout", "the address-space layout of the live kernel",
         lambda a: _inspect(a, inspect.layout_report, "layout")),
    ]
    for name, what, func in reports:
        p = sub.add_parser(name, help=f"boot the guest, print {what}, shut it down")
        if name == "pte":
            p.add_argument("va", help="virtual address (hex), or a C expression for gdb")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        _common(p)
        p.set_defaults(func=func)
