"""One lock per build directory: configure, the kernel build, the module builds and the
image of one kernel are serialised between concurrent runs on this machine (two `highmem
run`s, the workers of `pytest -n 2`): flock on BUILD_DIR/.hm-lock, which the kernel releases
when its holder dies, even by SIGKILL. The holder writes its pid into the file, so a run
that has to wait says for whom; the wait has a deadline (a cold build takes 6 to 15 min)."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..core.errors import BuildError
from .progress import say

LOCK_NAME = ".hm-lock"
WAIT_LIMIT_S = 3600.0   # longer than the slowest cold build seen on a shared machine
POLL_S = 0.2


def _holder(f: IO[str]) -> str:
    """What the lock file says of its holder ("pid 1234"), or "" if it says nothing."""
    try:
        f.seek(0)
        pid = f.read().strip()
    except OSError:
        return ""
    return f"pid {pid}" if pid.isdigit() else ""


@contextmanager
def build_lock(build_dir: Path, wait_limit: float = WAIT_LIMIT_S) -> Iterator[None]:
    """Serialise builds in one build directory between concurrent runs on this machine.
    Waits for a concurrent holder (saying so once) at most `wait_limit` seconds, then
    raises BuildError naming it."""
    build_dir.mkdir(parents=True, exist_ok=True)
    # "a+": opening must not truncate the holder's pid (the holder rewrites it)
    with (build_dir / LOCK_NAME).open("a+") as f:
        deadline = time.monotonic() + wait_limit
        waiting = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    who = _holder(f) or "another run"
                    say(f"  waiting for {who}, which is building in {build_dir}")
                    waiting = True
                if time.monotonic() > deadline:
                    who = _holder(f) or "another run"
                    raise BuildError(
                        f"{build_dir} stayed locked by {who} for {wait_limit:.0f} s",
                        "wait for that run to end, or stop it (kill it; its lock goes "
                        "with it) and run again") from None
                time.sleep(POLL_S)
        try:
            f.truncate(0)
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
