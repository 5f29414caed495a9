"""One lock per build directory: configure, the kernel build, the module builds and the
image of one kernel are serialised between concurrent runs on this machine (flock on
BUILD_DIR/.hm-lock, which the kernel releases when its holder dies, even by SIGKILL)."""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Serialise builds in one build directory between concurrent runs on this machine."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".hm-lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
