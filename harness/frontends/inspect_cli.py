"""`highmem gdb`, `highmem pte`, `highmem kmaps`, `highmem vmaps`, `highmem layout`:
live-mapping inspection. Their options are cli.py's; what they are given and build as pure
functions is inspect_args.py's.

`highmem gdb` boots the guest with QEMU's gdbstub left free (Lab.boot(attach=False)) and
runs an interactive gdb on this terminal with vmlinux, the kernel's vmlinux-gdb.py and
harness/frontends/gdb_commands.py (hm-pte, hm-kmaps, hm-vmaps, hm-layout). The other four
boot the guest with the harness's own MI gdb attached, stop it once, print one report of
harness/kernel/reports.py over `MiTarget`, and shut it down. `--hold` loads hm_hold.ko
first, which keeps one mapping of each kind live.

`highmem pte --cpu N` walks on CPU N (gdb's thread N+1) and, with --hold, binds hm_hold's
kmap_local thread to CPU N (cpu=N), so that the slot it maps is CPU N's; without --cpu a
kmap_local VA is walked on the CPU whose slot it is. `highmem pte --hold hold:KIND` walks
the VA hm_hold printed for KIND (kmap_local, kmap_above_4g, vmap[3], ...).
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

from ..core.errors import GuestError, HarnessError
from ..core.inspect_model import Report
from ..kernel import reports
from ..kernel.target import Kernel, SymbolMissing
from ..lab import Lab
from ..operations import guest_session, stage_lab
from ..stages.atomic_file import write_atomic
from ..stages.console import SerialShell
from ..stages.image import MODULE_DIR_IN_GUEST
from ..stages.mi_target import MiTarget, stopped_target
from ..stages.paths import new_run_dir
from ..stages.procutil import die_with_parent, stop
from ..stages.progress import say
from .cli import LAB_KNOBS, run_options
from .inspect_args import (
    HOLD,
    check_cpu,
    gdb_argv,
    gdb_env,
    held_va,
    hold_kind,
    hold_params,
    sockets_text,
    va_arg,
    walk_cpu,
)

GDB_QUIT_SECONDS = 10.0


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
                    max_seconds: float, tools_socket: Path) -> int:
    """Run gdb on this terminal until it exits (or `max_seconds` pass: then it is
    terminated); the guest console is drained meanwhile. Returns gdb's exit status."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = gdb_env(dict(os.environ), tools_socket)
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


def new_lab(args: argparse.Namespace, tag: str) -> tuple[Lab, Path]:
    """A Lab over the real operations with the run knobs `args` has, in a new run
    directory named after the command."""
    run_dir = new_run_dir(tag)
    return stage_lab(run_options(args, (*LAB_KNOBS, "append")), run_dir), run_dir


def cmd_gdb(args: argparse.Namespace) -> int:
    lab, run_dir = new_lab(args, "gdb")
    hold = hold_params(args)
    try:
        s = guest_session(lab, attach=False)
        assert s.qemu is not None
        if hold is not None:
            say(load_hold(s.console, hold))
        argv = gdb_argv(lab.kernel, s.qemu.gdb_socket, lx_symbols=not args.no_lx_symbols)
        (run_dir / "gdb-cmdline.txt").write_text(subprocess.list2cmdline(argv) + "\n")
        say(f"== gdb (guest stays up until you quit gdb; artifacts: {run_dir})\n"
            "  hm-pte VA [--cpu N], hm-kmaps, hm-vmaps, hm-layout, hm-qemu CMD, hm-dump FILE;"
            " lx-dmesg, lx-ps, lx-symbols ...\n"
            f"  {sockets_text(s.qemu.sockdir)}")
        rc = run_interactive(argv, lab.kernel.build_dir, s.qemu.child, args.max_seconds,
                             s.qemu.tools_qmp_socket)
    finally:
        lab.close()
    say(f"highmem gdb: gdb exited ({rc}); the guest was shut down")
    return 0 if rc == 0 else 1


def _inspect(args: argparse.Namespace, report: Callable[[MiTarget, str], Report],
             tag: str) -> int:
    """Boot, (hold,) stop once, report, shut down. Progress goes to stderr (say());
    `report` gets the target and hm_hold's lines ("" without --hold)."""
    lab, run_dir = new_lab(args, tag)
    hold = hold_params(args)
    try:
        s = guest_session(lab, attach=True)
        held = load_hold(s.console, hold) if hold is not None else ""
        if held:
            say(held)
        t0 = time.monotonic()
        with stopped_target(s.gdb) as target:
            rep = report(target, held)
        say(f"== {tag}: the guest was stopped for {time.monotonic() - t0:.2f} s "
            f"(artifacts: {run_dir})")
    finally:
        lab.close()
    text = json.dumps(rep.to_json(), indent=2) if args.json else rep.format()
    write_atomic(run_dir / f"{tag}.{'json' if args.json else 'txt'}", text + "\n")
    print(text)
    return 0


def cmd_pte(args: argparse.Namespace) -> int:
    check_cpu(args.cpu, args.smp)
    kind = hold_kind(args.va)
    if kind is not None and hold_params(args) is None:
        raise HarnessError(f"{args.va} names a mapping of hm_hold, and there is no --hold",
                           f"add --hold: highmem pte --hold {args.va}")
    va = va_arg(args.va) if kind is None else kind
    if isinstance(va, int) and not 0 <= va <= 0xFFFFFFFF:
        raise HarnessError(f"{va:#x} is not a 32-bit virtual address",
                           "give an address below 0x100000000")

    def report(t: MiTarget, held: str) -> Report:
        addr = held_va(kind, held) if kind is not None else \
            va if isinstance(va, int) else _eval(t, va)
        cpu = walk_cpu(args.cpu, Kernel(t).layout.kmap_local_slot(addr))
        return reports.pte_report(on_cpu(t, cpu), addr)
    return _inspect(args, report, "pte")


def on_cpu(t: MiTarget, cpu: int | None) -> MiTarget:
    """The target on CPU `cpu` (gdb's thread cpu+1; None: as it is)."""
    if cpu is None or cpu == t.cpu:
        return t
    t.gdb.cmd(f"-thread-select {cpu + 1}")
    return MiTarget(t.gdb, cpu)


def _eval(t: MiTarget, expr: str) -> int:
    try:
        return t.int_value(f"(unsigned long)({expr})")
    except SymbolMissing:
        raise HarnessError(f"{expr!r} is neither a number nor an expression gdb knows",
                           "give a virtual address such as 0xff601000") from None


def cmd_kmaps(args: argparse.Namespace) -> int:
    return _inspect(args, lambda t, _: reports.kmaps_report(t), "kmaps")


def cmd_vmaps(args: argparse.Namespace) -> int:
    return _inspect(args, lambda t, _: reports.vmaps_report(t), "vmaps")


def cmd_layout(args: argparse.Namespace) -> int:
    return _inspect(args, lambda t, _: reports.layout_report(t), "layout")
