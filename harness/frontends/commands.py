"""`highmem run` after its checks (cli.py), and `highmem build`, `image`, `boot`, `ssh`: the
pipeline's stages one at a time, each over a Lab with the real operations.

`highmem clean` removes only what carries the harness's marker and is not in use
(core/ownership.py, stages/owned.py). `highmem boot` keeps an interactive serial console
(Ctrl-] leaves and stops the guest) and writes $HIGHMEM_CACHE/guest.json (guest_record.py)
so that `highmem ssh` reaches that guest; the SSH access file it names (private key, mode
0600) lives in the guest's 0700 socket directory under /tmp and goes with the guest. With no
guest running, `highmem ssh` boots one for the command and stops it after.
"""

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import pexpect

from ..core.errors import GuestError, HarnessError
from ..core.ownership import Verdict
from ..core.options import RunOptions
from ..core.suite import ModuleSpec
from ..lab import Lab
from ..operations import StageOperations, guest_session, stage_lab
from ..run import Outputs, run_and_report
from ..stages.owned import remove_owned
from ..stages.paths import RUN_DIR_NAME, RUN_KINDS, artifacts_root, cache_dir, new_run_dir
from ..stages.progress import say
from ..stages.ssh import load_access
from ..stages.warm_record import find_records
from .cli import LAB_KNOBS, run_options
from .guest_record import ACCESS_FILE, forget_guest, publish_guest, running_guest
from .warm_client import fitting, run_on_warm


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
            "run_dir": str(run_dir)})
        say(f"guest up: gdbstub {s.qemu.gdb_socket}; `highmem ssh` reaches it; "
            "Ctrl-] leaves the console and stops the guest")
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
    if st is not None:
        ssh = load_access(Path(st["access"]))
        try:
            rc, out, err = ssh.run(cmd, timeout=args.timeout)
        finally:
            ssh.close()
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




def _removed(d: Path, kinds: tuple[str, ...]) -> Verdict:
    try:
        return remove_owned(d, kinds)
    except OSError as e:
        raise HarnessError(f"cannot remove {d}: {e.strerror or e}",
                           "check the permissions of that directory, or remove it by hand") \
            from None


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove the run directories in $HIGHMEM_ARTIFACTS that carry this harness's marker
    and are not in use (core/ownership.py), never the directory itself nor anything else in
    it, and with --builds $HIGHMEM_CACHE/build. What is left alone, and why, is said."""
    root = artifacts_root()
    try:
        entries = sorted(root.iterdir()) if root.is_dir() else []
    except OSError as e:
        raise HarnessError(f"cannot list HIGHMEM_ARTIFACTS directory {root}: "
                           f"{e.strerror or e}", "make it readable, or set HIGHMEM_ARTIFACTS "
                           "to the directory holding the runs") from None
    warm = {f.path.parent for f in find_records(root) if f.alive}
    removed, old, other = 0, [], []
    for d in entries:
        if d in warm:
            print(f"leaving {d} alone: its warm guest is up (`highmem down` stops it)")
            continue
        v = _removed(d, RUN_KINDS)
        if v.remove:
            removed += 1
        elif v.why in ("in-use", "creator-alive"):
            print(f"leaving {d} alone: {v.reason}")
        elif v.why == "no-marker" and RUN_DIR_NAME.fullmatch(d.name):
            old.append(d.name)
        elif v.why not in ("no-marker", "not-a-directory", "missing", "symlink") \
                or RUN_DIR_NAME.fullmatch(d.name):
            other.append(f"{d.name} ({v.reason})")
    print(f"removed {removed} run directories from {root}")
    if old:
        print(f"left alone: {len(old)} directories named like run directories but without a "
              f".highmem-run marker (an older harness's, or not ours; remove yours by hand): "
              + ", ".join(old[:10]) + (" ..." if len(old) > 10 else ""))
    if other:
        print(f"left alone: {', '.join(other)}")
    builds = cache_dir() / "build"
    if args.builds and builds.is_symlink():
        print(f"leaving {builds} alone: it is a symlink")
    elif args.builds and builds.is_dir():
        print(f"removing {builds}")
        try:
            shutil.rmtree(builds)
        except OSError as e:
            raise HarnessError(f"cannot remove {builds}: {e.strerror or e}",
                               "check the permissions of that directory, or remove it by "
                               "hand") from None
    return 0
