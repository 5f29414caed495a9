"""Per-guest private directories under /tmp (unix sockets, SSH keys): 0700, made and owned
by one harness process, and swept when that process is gone (even after kill -9).

Unix socket paths are limited to 108 bytes, so these live under /tmp and are linked from
the run's artifacts directory. Only directories carrying our `.highmem-run` marker
(stages/owned.py; kind "socket", or "ram" under /dev/shm) made by this uid for that very
directory are ever removed, and only once the process that made it is gone: a /tmp/hm-* we
did not make (an `owner` file alone proves nothing) is left alone. The `owner` file (pid and
start time) stays for the warm client's check that a socket is its server's.
"""

import os
import shutil
import tempfile
from pathlib import Path

from . import owned

PREFIX = "hm-"
RAM_DIR_BASE = Path("/dev/shm")  # tmpfs: a guest's RAM file must never be a disk file
OWNER = "owner"
KINDS = ("socket", "ram")


def make_sockdir(base: Path = Path("/tmp")) -> Path:
    """A new 0700 directory owned by this process (its pid and start time recorded)."""
    d = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
    pid = os.getpid()
    try:
        owned.mark(d, "ram" if base == RAM_DIR_BASE else "socket", hold=False)
        (d / OWNER).write_text(f"{pid} {owned.start_time(pid)}\n")
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)  # just made, ours (e.g. ENOSPC on /dev/shm)
        raise
    return d


def owner_alive(d: Path) -> bool:
    """True unless `d` is ours (its marker) and the process that made it is gone."""
    return not owned.examine(d, KINDS).remove


def sweep_stale(base: Path = Path("/tmp")) -> list[Path]:
    """Remove our socket directories whose owner process is gone; returns them."""
    removed = []
    for d in base.glob(PREFIX + "*"):
        try:
            if owned.remove_owned(d, KINDS).remove:
                removed.append(d)
        except OSError:
            continue  # half removed: the next sweep goes on
    return removed
