"""Where the harness writes: the cache (kernel sources, builds, images) and per-run artifacts
(the repository's own inputs are harness/core/repo.py's)."""

import os
import re
import time
from pathlib import Path

from ..core.errors import HarnessError
from ..core.repo import REPO
from . import owned

# what new_run_dir() names its directories: TAG-YYYYmmdd-HHMMSS-N (run, build, boot, ssh,
# pytest, gdb, pte, kmaps, vmaps, layout; pytest-gw0, pytest-gw1, ... for pytest-xdist
# workers). A name only: what is ours is told by the marker (stages/owned.py), never by this
RUN_DIR_NAME = re.compile(r"[a-z]+(?:-gw\d+)?-\d{8}-\d{6}-\d+")
RUN_KINDS = ("run", "warm")     # the markers of run directories (core/ownership.py)


def cache_dir() -> Path:
    """$HIGHMEM_CACHE, else $XDG_CACHE_HOME/highmem-harness, else ~/.cache/highmem-harness."""
    env = os.environ.get("HIGHMEM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "highmem-harness"


def artifacts_root() -> Path:
    """$HIGHMEM_ARTIFACTS, else ./artifacts in the repository."""
    return Path(os.environ.get("HIGHMEM_ARTIFACTS") or REPO / "artifacts")


def new_run_dir(tag: str = "run", root: Path | None = None) -> Path:
    """A fresh per-run directory in `root` (default: artifacts_root()): logs, sockets,
    reports. Kept after the run, pass or fail. Concurrent runs (pytest-xdist workers, two
    `highmem run`s) each get their own: the directory is made with mkdir, never reused.

    Unix socket paths are limited to 108 bytes, so sockets go to a short directory under
    /tmp that is linked from here (see sockdir.py). Raises HarnessError (not OSError) when
    $HIGHMEM_ARTIFACTS cannot hold it.

    It carries the harness's marker (kind "warm" for tag "warm", else "run"), locked
    shared while this process lives: `highmem clean` leaves it alone meanwhile.
    """
    root = root or artifacts_root()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if root.exists() and not root.is_dir():
        raise HarnessError(f"HIGHMEM_ARTIFACTS directory {root} is a file, not a directory",
                           "remove that file, or set HIGHMEM_ARTIFACTS to a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            d = root / f"{tag}-{stamp}-{n}"
            try:
                d.mkdir()
            except FileExistsError:
                continue
            try:
                owned.mark(d, "warm" if tag == "warm" else "run")
            except OSError:
                d.rmdir()  # the empty directory just made: ours
                raise
            return d
    except OSError as e:
        raise HarnessError(f"cannot create a run directory in HIGHMEM_ARTIFACTS directory "
                           f"{root}: {e.strerror or e}",
                           "set HIGHMEM_ARTIFACTS to a directory you can write to") from None
    raise HarnessError(f"cannot create a run directory in {root}: {tag}-{stamp}-0 to -999 "
                       "all exist", "remove old run directories with `highmem clean`")


def run_dirs(root: Path) -> list[Path]:
    """The run directories of this harness and uid directly in `root`: real directories
    carrying a run or warm marker made for them (in use or not), whatever their names.
    What `highmem clean` considers (it removes those not in use)."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [p for p in entries if owned.is_ours(p, RUN_KINDS)]


def host_roots(run_dir: Path) -> dict[str, str]:
    """{knob: directory} of the directories a run writes, to name the one an environment
    error hit (core/host_errors.py): the run directory's parent (the artifacts), the cache,
    /dev/shm (the guests' RAM files)."""
    return {"HIGHMEM_ARTIFACTS": str(run_dir.parent), "HIGHMEM_CACHE": str(cache_dir()),
            "/dev/shm": "/dev/shm"}


def refusing_root(run_dir: Path, errno_name: str) -> str:
    """Which of host_roots(run_dir) refuses now (full, read-only, not writable, gone):
    for an error that names no file (a buffered log's write); the run directory when none
    does."""
    for root in (str(run_dir), *host_roots(run_dir).values()):
        try:
            st = os.statvfs(root)
        except OSError:
            if errno_name == "ENOENT":
                return root
            continue
        full = st.f_bavail * st.f_frsize < (1 << 20)
        if (errno_name in ("ENOSPC", "EDQUOT") and full) \
                or (errno_name == "EROFS" and st.f_flag & os.ST_RDONLY) \
                or (errno_name == "EACCES" and not os.access(root, os.W_OK)):
            return root
    return str(run_dir)
