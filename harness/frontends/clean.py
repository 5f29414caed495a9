"""`highmem clean`: removes the run directories in $HIGHMEM_ARTIFACTS that carry this
harness's `.highmem-run` marker and are not in use (core/ownership.py decides,
stages/owned.py reads and removes), and with --builds $HIGHMEM_CACHE/build. Never by name,
never through a symlink, never a directory a live run holds; what it leaves alone, and why,
it says.
"""

import argparse
import shutil
from pathlib import Path

from ..core.errors import HarnessError
from ..core.ownership import Verdict
from ..stages.owned import remove_owned
from ..stages.paths import RUN_DIR_NAME, RUN_KINDS, artifacts_root, cache_dir
from ..workflows.warm.record import find_records


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
