"""Per-guest private directories under /tmp (unix sockets, SSH keys): 0700, made and owned
by one harness process, and swept when that process is gone (even after kill -9).

Unix socket paths are limited to 108 bytes, so these live under /tmp and are linked from
the run's artifacts directory. Only directories carrying our `owner` file are ever
removed: a /tmp/hm-* we did not make is left alone.
"""

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "hm-"
RAM_DIR_BASE = Path("/dev/shm")  # tmpfs: a guest's RAM file must never be a disk file
OWNER = "owner"


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in clock ticks): tells a reused pid apart.
    "" for a process that is gone, a zombie included (killed, not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return "" if fields[0] == "Z" else fields[19]


def make_sockdir(base: Path = Path("/tmp")) -> Path:
    """A new 0700 directory owned by this process (its pid and start time recorded)."""
    d = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    pid = os.getpid()
    (d / OWNER).write_text(f"{pid} {_start_time(pid)}\n")
    return d


def owner_alive(d: Path) -> bool:
    """True unless `d` is ours and its owner process is gone (or its pid was reused)."""
    try:
        pid_s, start = (d / OWNER).read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return True   # not one of ours (or being made): never touch it
    return _start_time(pid) == start


def sweep_stale(base: Path = Path("/tmp")) -> list[Path]:
    """Remove our socket directories whose owner process is gone; returns them."""
    removed = []
    for d in base.glob(PREFIX + "*"):
        try:
            if d.is_symlink() or not d.is_dir() or d.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not owner_alive(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed
