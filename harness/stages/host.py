"""Checks of the host made before anything is built or booted: the tools a command starts
are on PATH, and the directories it writes (cache, artifacts) can be written. Each failure is
a `HarnessError` with one line saying what is wrong and one saying what to do; nothing here
starts a process (the option checks are harness/core/preflight.py's).
"""

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..core.errors import HarnessError

MIN_FREE = 16 << 20       # bytes free in the cache and the artifacts: less is a full disk
RAM_MIN_FREE = 256 << 20  # bytes free in /dev/shm: a booted guest's RAM file touches ~100 MiB
RAM_DIR = Path("/dev/shm")  # stages/sockdir.py's RAM_DIR_BASE (the guests' RAM files)

# Everything a `highmem run` starts: the kernel build, the image, QEMU, gdb (under setpriv).
RUN_TOOLS = ("qemu-system-i386", "gdb", "make", "gcc", "cpio", "setpriv")
BUILD_TOOLS = ("make", "gcc", "cpio")
_PACKAGES = {"qemu-system-i386": "qemu-system-x86", "setpriv": "util-linux"}  # Debian's


class HostError(HarnessError):
    """The host cannot run the harness: a missing tool, a directory it cannot write."""


def check_tools(names: Iterable[str]) -> None:
    """Every program in `names` is on PATH; one error names all that are not."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pkgs = " ".join(dict.fromkeys(_PACKAGES.get(n, n) for n in missing))
        raise HostError(f"not found on PATH: {', '.join(missing)}",
                        f"run `make deps` (or: sudo apt-get install {pkgs}), or add their "
                        "directory to PATH")


def _blocking_file(path: Path) -> Path | None:
    """The path itself or the first of its parents that exists but is not a directory."""
    for p in reversed((path, *path.parents)):
        if p.exists() and not p.is_dir():
            return p
    return None


def _probe(path: Path) -> None:
    """Create and remove a file in `path` (raises OSError if that is not possible)."""
    fd, name = tempfile.mkstemp(prefix=".highmem-probe-", dir=path)
    os.close(fd)
    os.unlink(name)


def check_writable_dir(path: Path, what: str) -> None:
    """`path` is (or can be made) a directory we can write to; it is created if missing.

    :param what: the setting that names it, e.g. "HIGHMEM_ARTIFACTS"
    """
    blocker = _blocking_file(path)
    if blocker == path:
        raise HostError(f"{what} directory {path} is a file, not a directory",
                        f"remove that file, or set {what} to a directory")
    if blocker is not None:
        raise HostError(f"{what} directory {path} cannot be created: {blocker} is a file",
                        f"set {what} to a directory you can write to")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)  # first: its errno names the fault (EROFS, EACCES), os.access's not
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        check_free(path, what, MIN_FREE)
    except OSError as e:
        raise HostError(f"{what} directory {path} is not writable: {e.strerror or e}",
                        f"make it writable (or remount it read-write), or set {what} to a "
                        "directory you can write to") from None


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_free(path: Path, what: str, need: int) -> None:
    """At least `need` bytes free on `path`'s filesystem (ENOSPC before the run, not in
    the middle of it)."""
    free = _free_bytes(path)
    if free < need:
        raise HostError(f"{what} directory {path} is full: {free >> 10} KiB free, the run "
                        f"needs at least {need >> 20} MiB (ENOSPC)",
                        f"free space there (df -h {path}), or set {what} to a directory "
                        "with room" if what.isupper() else
                        f"free space there (df -h {path}; ls {path})")


def check_ram_dir(base: Path = RAM_DIR) -> None:
    """When /dev/shm is a writable tmpfs (guests get their RAM there: stages/qemu.py), it
    has room for a guest's touched pages (a full one fails the restore copy with ENOSPC,
    or kills QEMU with SIGBUS)."""
    try:
        with open("/proc/mounts") as f:
            tmpfs = any(line.split()[1:3] == [str(base), "tmpfs"] for line in f)
        if not tmpfs or not os.access(base, os.W_OK):
            return  # not used: guests get anonymous memory
        free = _free_bytes(base)
    except OSError:
        return
    if free < RAM_MIN_FREE:
        raise HostError(f"{base} is full: {free >> 20} MiB free, a guest's RAM file needs at "
                        f"least {RAM_MIN_FREE >> 20} MiB (ENOSPC)",
                        f"free space in {base} (ls -la {base}; the harness removes only its "
                        f"own hm-* directories), or remount it larger: "
                        f"mount -o remount,size=4G {base}")
