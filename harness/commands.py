"""`highmem build`, `image`, `boot`, `ssh`: the pipeline's stages one at a time.

`highmem boot` keeps an interactive serial console (Ctrl-] leaves and stops the guest) and
writes $HIGHMEM_CACHE/guest.json so that `highmem ssh` reaches that guest; the SSH access
file it names (private key, mode 0600) lives in the guest's 0700 socket directory under
/tmp and goes with the guest. With no guest running, `highmem ssh` boots one for the
command and stops it after.
"""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pexpect

from .errors import GuestError
from .lab import Lab, LabOptions
from .paths import cache_dir, new_run_dir
from .progress import Phases, say
from .ssh import GuestSSH, load_access, save_access

STATE = "guest.json"
ACCESS_FILE = "ssh-access.json"


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
    """Boot a guest and attach the terminal to its console until Ctrl-] (or Ctrl-C, or
    SIGTERM, which the cli turns into KeyboardInterrupt): on every exit the guest record,
    the access file with its private key, and the guest itself are gone."""
    run_dir = new_run_dir("boot")
    lab = Lab(lab_options(args), run_dir, Phases())
    access: Path | None = None
    try:
        s = lab.guest(attach=False)
        access = s.qemu.sockdir / ACCESS_FILE
        _publish_guest(s.ssh, s.qemu.sockdir, access, {
            "gdb_socket": str(s.qemu.gdb_socket), "vmlinux": str(lab.kernel.vmlinux),
            "run_dir": str(run_dir)})
        say(f"guest up: gdbstub {s.qemu.gdb_socket}; `highmem ssh` reaches it; "
            "Ctrl-] leaves the console and stops the guest")
        _attach_console(s.qemu.child)
    finally:
        try:
            _forget_guest(access)
        finally:
            lab.close()
    return 0


def _publish_guest(ssh: GuestSSH, sockdir: Path, access: Path, info: dict[str, str]) -> None:
    """Write the SSH access file (0600, in the guest's 0700 socket directory, which
    Qemu.close removes) and then the cache's guest record that points at it."""
    os.chmod(sockdir, 0o700)  # tempfile.mkdtemp made it so; the private key goes in it
    save_access(ssh, access)
    pid = os.getpid()
    _write_state({"pid": pid, "started": _start_time(pid), "access": str(access), **info})


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


def _write_state(st: dict[str, Any]) -> None:
    """Replace the guest record atomically: a reader never sees half of one."""
    path = _state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{STATE}.{os.getpid()}")
    tmp.write_text(json.dumps(st))
    os.replace(tmp, path)


def _forget_guest(access: Path | None) -> None:
    """Remove this process's access file, and the guest record if it is still ours (a
    later `highmem boot` may have replaced it)."""
    if access is not None:
        access.unlink(missing_ok=True)
    path = _state_path()
    try:
        ours = json.loads(path.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError, AttributeError):
        return
    if ours:
        path.unlink(missing_ok=True)


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def _is_highmem_process(pid: int) -> bool:
    """Whether PID runs now as highmem: an argv word is the `highmem` script (any
    directory) or the module `harness.cli`. Whole words, so that a python whose path merely
    contains "highmem-harness" does not count."""
    if pid <= 0:
        return False
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(w) == b"highmem" or w in (b"harness.cli", b"harness")
               for w in words)


def _is_live(st: dict[str, Any]) -> bool:
    """A record is live while its pid is the same highmem process and its access file
    exists."""
    pid = int(st["pid"])
    same = st.get("started") is None or st["started"] == _start_time(pid)
    return _is_highmem_process(pid) and same and Path(st["access"]).is_file()


def _running_guest() -> dict[str, Any] | None:
    """The record of a running `highmem boot`, or None. A stale record (dead or foreign
    pid, access file gone, unreadable) is removed quietly, with the access file it names."""
    path = _state_path()
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        st = json.loads(text)
        if _is_live(st):
            return st  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError, AttributeError):
        st = None
    _remove_stale(path, text, st)
    return None


def _remove_stale(path: Path, text: str, st: Any) -> None:
    """Remove a stale record unless another `highmem boot` rewrote it meanwhile, and the
    leftover access file of a guest killed without cleanup."""
    try:
        if path.read_text() == text:
            path.unlink(missing_ok=True)
    except OSError:
        pass
    access = Path(str(st.get("access", ""))) if isinstance(st, dict) else None
    if access is not None and access.name == ACCESS_FILE:
        access.unlink(missing_ok=True)


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
