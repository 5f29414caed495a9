"""The record of a running `highmem boot`: $HIGHMEM_CACHE/guest.json names the guest's SSH
access file (private key, mode 0600, in the guest's 0700 socket directory under /tmp, which
goes with the guest), so that `highmem ssh` reaches that guest. A record whose process is
gone, or is not `highmem` any more, is stale and removed with its access file, but only an
access file in a socket directory carrying this harness's marker (stages/owned.py): a
planted guest.json naming a user's file removes nothing of the user's.
"""

import json
import os
from pathlib import Path
from typing import Any

from ..stages import owned
from ..stages.paths import artifacts_root
from ..stages.ssh import GuestSSH, save_access

STATE = "guest.json"
ACCESS_FILE = "ssh-access.json"


def state_path() -> Path:
    """The record of this artifacts directory's `highmem boot` guest (as its warm guests
    are: a `highmem boot` elsewhere, or another test's, is not this one's guest)."""
    return artifacts_root() / STATE


def publish_guest(ssh: GuestSSH, sockdir: Path, access: Path, info: dict[str, str]) -> None:
    """Write the SSH access file (0600, in the guest's 0700 socket directory, which
    Qemu.close removes) and then the cache's guest record that points at it."""
    os.chmod(sockdir, 0o700)  # tempfile.mkdtemp made it so; the private key goes in it
    save_access(ssh, access)
    pid = os.getpid()
    write_state({"pid": pid, "started": start_time(pid), "access": str(access), **info})


def write_state(st: dict[str, Any]) -> None:
    """Replace the guest record atomically: a reader never sees half of one."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{STATE}.{os.getpid()}")
    tmp.write_text(json.dumps(st))
    os.replace(tmp, path)


def forget_guest(access: Path | None) -> None:
    """Remove this process's access file, and the guest record if it is still ours (a
    later `highmem boot` may have replaced it)."""
    if access is not None:
        access.unlink(missing_ok=True)
    path = state_path()
    try:
        ours = json.loads(path.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError, AttributeError):
        return
    if ours:
        path.unlink(missing_ok=True)


def start_time(pid: int) -> str | None:
    """The process's start time (stages/owned.py's, the one reading of it); None when it
    is gone."""
    return owned.start_time(pid) or None


def is_highmem_process(pid: int) -> bool:
    """Whether PID runs now as highmem: an argv word is the `highmem` script (any
    directory) or the module `harness.cli` (or `harness.frontends.cli`). Whole words, so
    that a python whose path merely contains "highmem-harness" does not count."""
    if pid <= 0:
        return False
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(w) == b"highmem"
               or w in (b"harness.cli", b"harness.frontends.cli", b"harness") for w in words)


def is_live(st: dict[str, Any]) -> bool:
    """A record is live while its pid is the same highmem process and its access file
    exists."""
    pid = int(st["pid"])
    same = st.get("started") is None or st["started"] == start_time(pid)
    return is_highmem_process(pid) and same and Path(st["access"]).is_file()


def running_guest() -> dict[str, Any] | None:
    """The record of a running `highmem boot`, or None. A stale record (dead or foreign
    pid, access file gone, unreadable) is removed quietly, with the access file it names."""
    path = state_path()
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        st = json.loads(text)
        if is_live(st):
            return st  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError, AttributeError):
        st = None
    remove_stale(path, text, st)
    return None


def remove_stale(path: Path, text: str, st: Any) -> None:
    """Remove a stale record unless another `highmem boot` rewrote it meanwhile, and the
    leftover access file of a guest killed without cleanup."""
    try:
        if path.read_text() == text:
            path.unlink(missing_ok=True)
    except OSError:
        pass
    access = Path(str(st.get("access", ""))) if isinstance(st, dict) else None
    if access is not None and access.name == ACCESS_FILE \
            and owned.is_ours(access.parent, ("socket",)):
        access.unlink(missing_ok=True)
