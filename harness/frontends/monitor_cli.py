"""`highmem qemu CMD` and `highmem dump FILE`: QEMU's monitor for the user, on a running
guest (`highmem boot`'s, a warm one, or the one whose socket directory --sockets names:
`highmem gdb` prints it).

Both go through the guest's qmp-tools.sock (stages/qmp_line.py), one short connection with
a deadline; the harness's own qmp.sock and the user's qmp-user.sock are left alone. A
command that floods, hangs or pulls the guest from under gdb is refused before it is sent
(core/monitor_commands.py). A dump of a warm guest is refused: the warm guest serves `highmem
run`, and the dump pauses it for its whole length (8 GiB: about 100 s here), which the runs'
deadlines would take for a hang. (QEMU's gdbstub does not report the dump's SAVE_VM pause to
gdb, so an attached gdb is not confused by it.)
"""

import argparse
import sys
from pathlib import Path

from ..core.errors import HarnessError
from ..core.monitor_commands import TOOLS_QMP_SOCKET, check_command, cut_output
from ..stages.progress import say
from ..stages.qmp_line import QmpLine
from ..stages.vmcore_dump import dump, new_file
from ..workflows.warm.record import find_records
from .guest_record import running_guest
from .inspect_args import pick_sockets


def _warm_sockdirs() -> list[Path]:
    out = []
    for f in find_records():
        if f.alive and f.record is not None and f.record.state == "ready":
            link = Path(f.record.run_dir) / "sockets"   # stages/qemu.py's link to the guest's
            if link.is_symlink() and link.resolve().is_dir():
                out.append(link.resolve())
    return out


def guest_sockdir(args: argparse.Namespace, warm: bool = True) -> Path:
    """The socket directory of the guest to talk to (inspect_args.pick_sockets)."""
    boot = running_guest()
    boot_dir = Path(boot["sockdir"]) if boot and boot.get("sockdir") else None
    if args.sockets:
        return pick_sockets(args.sockets, None, [])
    warm_dirs = _warm_sockdirs()
    if warm_dirs and not warm and boot_dir is None:
        raise HarnessError("a dump of the warm guest is refused: it pauses the guest for the "
                           "whole dump, and the runs it serves would time out",
                           "dump a `highmem boot` guest, or use hm-dump FILE in `highmem gdb`")
    return pick_sockets(None, boot_dir, warm_dirs if warm else [])


def cmd_qemu(args: argparse.Namespace) -> int:
    words = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    line = check_command(" ".join(words))
    sockdir = guest_sockdir(args)
    with QmpLine(sockdir / TOOLS_QMP_SOCKET, timeout=args.timeout) as q:
        out = cut_output(q.hmp(line, cpu=args.cpu))
    sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    path = new_file(args.file)
    sockdir = guest_sockdir(args, warm=False)
    with QmpLine(sockdir / TOOLS_QMP_SOCKET, timeout=30) as q:
        say(f"dumping the guest into {path} (QMP dump-guest-memory, ELF, paging off)")
        d = dump(q, path, args.timeout, say)
    if d.problems:
        for p in d.problems:
            print(f"vmcore check FAILED: {p}", file=sys.stderr)
        print(f"{path}: {d.summary}: not usable as it is", file=sys.stderr)
        return 1
    print(f"{path}: {d.summary}; written in {d.seconds:.1f} s")
    print(f"open it with: crash VMLINUX {path}   (or: drgn -c {path} -s VMLINUX)")
    return 0
