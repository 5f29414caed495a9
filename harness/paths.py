"""Where things live: the cache (kernel sources, builds, images) and per-run artifacts."""

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES_DIR = REPO / "modules"
CONFIGS_DIR = REPO / "kernel-configs"
IMAGES_DIR = REPO / "images"
DEFAULT_SOURCE = Path("/usr/src/linux-source-6.12.tar.xz")


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


def new_run_dir(tag: str = "run") -> Path:
    """A fresh per-run directory: logs, sockets, reports. Kept after the run, pass or fail.

    Unix socket paths are limited to 108 bytes, so sockets go to a short directory under
    /tmp that is linked from here (see qemu.py).
    """
    root = artifacts_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        d = root / f"{tag}-{stamp}-{n}"
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise RuntimeError("could not create a run directory")
