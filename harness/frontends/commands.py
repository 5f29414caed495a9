"""`highmem run` after its checks (cli.py), and `highmem build`, `image`, `boot`, `ssh`: the
pipeline's stages one at a time, each over a Lab with the real operations.

`highmem boot` keeps an interactive serial console
(Ctrl-] leaves and stops the guest) and writes $HIGHMEM_CACHE/guest.json (guest_record.py)
so that `highmem ssh` reaches that guest; the SSH access file it names (private key, mode
0600) lives in the guest's 0700 socket directory under /tmp and goes with the guest. With no
guest running, `highmem ssh` boots one for the command and stops it after.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import pexpect

from ..core.errors import GuestError
from ..core.options import RunOptions
from ..core.suite import ModuleSpec
from ..lab import Lab
from ..operations import StageOperations, guest_session, stage_lab
from ..run import Outputs, run_and_report
from ..stages.paths import new_run_dir
from ..stages.progress import say
from ..stages.ssh import load_access
from .cli import LAB_KNOBS, run_options
from .inspect_args import sockets_text
from .guest_record import ACCESS_FILE, forget_guest, publish_guest, running_guest
from ..workflows.warm.client import fitting, run_on_warm, send_ssh
from ..workflows.warm.record import live_records


def run_suite(opts: RunOptions, suite: tuple[ModuleSpec, ...], run_dir: Path,
              out: Outputs = Outputs()) -> int:
    """`highmem run` once cli.py has checked everything: on the warm guest of the same
    kernel and knobs if one is up and the run writes only its report (no --shard, --junit,
    --kcidb; warm_client.py), else with the real operations."""
    plain = out.shard.count == 1 and out.junit is None and out.kcidb is None
    warm = fitting(opts) if plain else None
    if warm is not None:
        return run_on_warm(warm, opts, suite, run_dir)
    return run_and_report(opts, suite, run_dir, StageOperations(), out)


def new_lab(args: argparse.Namespace, tag: str) -> tuple[Lab, Path]:
    """A Lab over the real operations with the run knobs `args` has, in a new run
    directory named after `tag`."""
    run_dir = new_run_dir(tag)
    return stage_lab(run_options(args, (*LAB_KNOBS, "append")), run_dir), run_dir


def cmd_build(args: argparse.Namespace) -> int:
    lab, _ = new_lab(args, "build")
    lab.prepare()
    k = lab.kernel
    info = {"build_dir": str(k.build_dir), "vmlinux": str(k.vmlinux),
            "vmlinux-gdb.py": str(k.gdb_script), "config": str(k.config),
            "initramfs": str(lab.initrd), "release": k.release}
    print(json.dumps(info, indent=2) if args.json else
          "\n".join(f"{k:<15} {v}" for k, v in info.items()))
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    """Boot a guest and attach the terminal to its console until Ctrl-] (or Ctrl-C, or
    SIGTERM, which the cli turns into KeyboardInterrupt): on every exit the guest record,
    the access file with its private key, and the guest itself are gone."""
    lab, run_dir = new_lab(args, "boot")
    access: Path | None = None
    try:
        s = guest_session(lab, attach=False)
        assert s.qemu is not None
        access = s.qemu.sockdir / ACCESS_FILE
        publish_guest(s.guest_ssh(), s.qemu.sockdir, access, {
            "gdb_socket": str(s.qemu.gdb_socket), "vmlinux": str(lab.kernel.vmlinux),
            "run_dir": str(run_dir), "sockdir": str(s.qemu.sockdir)})
        say(f"guest up: gdbstub {s.qemu.gdb_socket}; `highmem ssh` reaches it; "
            "Ctrl-] leaves the console and stops the guest\n"
            f"  {sockets_text(s.qemu.sockdir)}; `highmem qemu CMD`, `highmem dump FILE`")
        _attach_console(s.qemu.child)
    finally:
        try:
            forget_guest(access)
        finally:
            lab.close()
    return 0


def _attach_console(child: pexpect.spawn | None) -> None:
    """The serial console on this terminal until Ctrl-]; without a terminal, wait until
    QEMU exits or KeyboardInterrupt."""
    assert child is not None
    child.sendline("")
    if sys.stdin.isatty():
        child.logfile_read = None
        child.interact(escape_character="\x1d")
    else:
        child.expect(pexpect.EOF, timeout=None)


def cmd_ssh(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    cmd = shlex.join(argv) if argv else ""
    if not cmd:
        raise GuestError("highmem ssh needs a command here (no interactive shell)",
                         "write: highmem ssh -- cat /proc/meminfo; or use `highmem boot` "
                         "for an interactive console")
    st = running_guest()
    warm = [r for r in live_records() if r.state == "ready"] if st is None else []
    if st is not None:
        ssh = load_access(Path(st["access"]))
        try:
            rc, out, err = ssh.run(cmd, timeout=args.timeout)
        finally:
            ssh.close()
    elif warm:  # one lookup for both registries: `highmem boot`'s guest, else a warm one
        say(f"(on the warm guest of {warm[0].run_dir})")
        rc, out, err = send_ssh(warm[0], cmd, args.timeout)
    else:
        say("(no guest from `highmem boot` is running: booting one for this command)",)
        lab, _ = new_lab(args, "ssh")
        try:
            rc, out, err = guest_session(lab, attach=False).run(cmd, timeout=args.timeout)
        finally:
            lab.close()
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc



