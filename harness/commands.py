"""`highmem build`, `image`, `boot`, `ssh`: the pipeline's stages one at a time.

`highmem boot` keeps an interactive serial console (Ctrl-] leaves and stops the guest) and
writes $HIGHMEM_CACHE/guest.json so that `highmem ssh` reaches that guest; with no guest
running, `highmem ssh` boots one for the command and stops it after.
"""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import pexpect

from .errors import GuestError
from .lab import Lab, LabOptions
from .paths import cache_dir, new_run_dir
from .progress import Phases, say
from .ssh import load_access, save_access

STATE = "guest.json"


def lab_options(args: argparse.Namespace) -> LabOptions:
    return LabOptions(source=Path(args.source), configs=args.config, accel=args.accel,
                      memory=args.memory, smp=args.smp)


def cmd_build(args: argparse.Namespace) -> int:
    lab = Lab(lab_options(args), new_run_dir("build"), Phases())
    k = lab.kernel
    info = {"build_dir": str(k.build_dir), "vmlinux": str(k.vmlinux), "bzImage": str(k.bzimage),
            "vmlinux-gdb.py": str(k.gdb_script), "config": str(k.config),
            "initramfs": str(lab.qemu_cfg.initrd), "release": k.release}
    print(json.dumps(info, indent=2) if args.json else
          "\n".join(f"{k:<15} {v}" for k, v in info.items()))
    return 0


def _state_path() -> Path:
    return cache_dir() / STATE


def cmd_boot(args: argparse.Namespace) -> int:
    run_dir = new_run_dir("boot")
    lab = Lab(lab_options(args), run_dir, Phases())
    try:
        s = lab.guest(attach=False)
        access = run_dir / "ssh-access.json"
        save_access(s.ssh, access)
        _state_path().write_text(json.dumps({"pid": os.getpid(), "access": str(access),
                                             "gdb_socket": str(s.qemu.gdb_socket),
                                             "vmlinux": str(lab.kernel.vmlinux),
                                             "run_dir": str(run_dir)}))
        say(f"guest up: gdbstub {s.qemu.gdb_socket}; `highmem ssh` reaches it; "
            "Ctrl-] leaves the console and stops the guest")
        child = s.qemu.child
        assert child is not None
        child.sendline("")
        if sys.stdin.isatty():
            child.logfile_read = None
            child.interact(escape_character="\x1d")
        else:  # no terminal: keep the guest up until QEMU exits or Ctrl-C
            child.expect(pexpect.EOF, timeout=None)
    finally:
        _state_path().unlink(missing_ok=True)
        lab.close()
    return 0


def _running_guest() -> dict[str, str] | None:
    try:
        st = json.loads(_state_path().read_text())
        os.kill(int(st["pid"]), 0)
        return st  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError):
        return None


def cmd_ssh(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    cmd = shlex.join(argv) if argv else ""
    if not cmd:
        raise GuestError("highmem ssh needs a command here (no interactive shell)",
                         "write: highmem ssh -- cat /proc/meminfo; or use `highmem boot` "
                         "for an interactive console")
    st = _running_guest()
    if st is not None:
        ssh = load_access(Path(st["access"]))
        try:
            rc, out, err = ssh.run(cmd, timeout=args.timeout)
        finally:
            ssh.close()
    else:
        say("(no guest from `highmem boot` is running: booting one for this command)",)
        lab = Lab(lab_options(args), new_run_dir("ssh"), Phases())
        try:
            rc, out, err = lab.guest(attach=False).run(cmd, timeout=args.timeout)
        finally:
            lab.close()
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


def add_lab_args(p: argparse.ArgumentParser) -> None:
    from .paths import DEFAULT_SOURCE
    p.add_argument("--source", default=str(DEFAULT_SOURCE),
                   help="kernel tree or tarball, Linux 6.1-6.14 (default: %(default)s)")
    p.add_argument("--config", action="append", default=[], metavar="FRAGMENT",
                   help="extra Kconfig fragment: a path or a name in kernel-configs/ "
                   "(repeatable; merged after highmem64g.config)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="QEMU acceleration; auto uses KVM only if the guest prints under it")
    p.add_argument("--memory", default="8G", help="guest RAM (default %(default)s)")
    p.add_argument("--smp", type=int, default=2, help="guest CPUs (default %(default)s)")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    b = sub.add_parser("build", help="configure and build the kernel, modules and image",
                       description="Stages configure, build and image of `highmem run`; "
                       "prints where the artifacts are.")
    add_lab_args(b)
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=cmd_build)
    i = sub.add_parser("image", help="the same as build (the image is part of it)")
    add_lab_args(i)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_build)
    bo = sub.add_parser("boot", help="boot the guest with an interactive console (Ctrl-] leaves)",
                        description="Boot the 8 GiB guest and attach this terminal to its "
                        "serial console. While it runs, `highmem ssh -- CMD` reaches it and "
                        "gdb can attach to the gdbstub socket it prints. Ctrl-] stops it.")
    add_lab_args(bo)
    bo.set_defaults(func=cmd_boot)
    s = sub.add_parser("ssh", help="run a command in the guest over SSH",
                       description="Run CMD in the guest over SSH (exit code passed through). "
                       "Uses the guest of a running `highmem boot`, else boots one.")
    add_lab_args(s)
    s.add_argument("--timeout", type=float, default=120.0, help="seconds (default %(default)s)")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    s.set_defaults(func=cmd_ssh)
