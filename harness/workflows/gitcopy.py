"""The git copy of a kernel tree in the cache ($HIGHMEM_CACHE/mutate/NAME/linux) that
`highmem mutate` applies its patches to and `highmem bisect` bisects when the source is not
a git tree of the user's, and the git calls both make.

The copy is made once: a git tree is cloned with `git clone --shared` (its uncommitted
changes to tracked files committed on top), any other tree (the unpacked tarball by default)
is copied and committed as "pristine". The user's tree is never written. The build directory
is keyed by the copy's path (kconfig.build_dir_for), so one cold build is followed by
incremental ones. One session at a time per copy (flock).
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import HarnessError
from .mutate.model import copy_name
from ..stages.paths import cache_dir
from ..stages.progress import say
from ..stages.source import KernelSource, one_line

GIT_IDENTITY = ("-c", "user.name=highmem mutate", "-c", "user.email=highmem-mutate@localhost")
MARKER = "source.json"


def git(tree: Path, *args: str, stdin: bytes | None = None, timeout: float = 1800,
        fix: str = "") -> bytes:
    """stdout of `git -C tree ARGS`; a HarnessError with git's message if it fails (`fix`:
    its fix line, by default the one for the copy)."""
    argv = ["git", "-C", str(tree), *GIT_IDENTITY, *args]
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HarnessError(f"git {args[0]} in {tree} failed: {one_line(str(e))}",
                           "check that git works and the disk is not full") from None
    if r.returncode != 0:
        raise HarnessError(f"git {' '.join(args[:2])} in {tree} failed: "
                           f"{one_line(r.stderr.decode(errors='replace')) or r.returncode}",
                           fix or f"check {tree}, or remove {tree.parent} to make the copy "
                           "again")
    return r.stdout


class KernelCopy:
    """The git copy the mutants are applied to: check, apply, revert, nothing else."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.tree = top / "linux"

    def apply_error(self, patch: Path) -> str | None:
        """Why `patch` does not apply to the pristine copy (git's first line), or None."""
        r = subprocess.run(["git", "-C", str(self.tree), "apply", "--check", str(patch.resolve())],
                           capture_output=True, text=True, errors="replace", timeout=120)
        if r.returncode == 0:
            return None
        return one_line(r.stderr, 160) or f"git apply --check exited {r.returncode}"

    def apply(self, patch: Path) -> None:
        git(self.tree, "apply", str(patch.resolve()))

    def revert(self) -> None:
        """Back to the pristine commit: tracked files restored, new files removed."""
        git(self.tree, "checkout", "-q", "--", ".")
        git(self.tree, "clean", "-fdq")

    def make_clean(self) -> None:
        """A copy left patched (a session killed with -9) is reset before use."""
        if git(self.tree, "status", "--porcelain", "--untracked-files=normal").strip():
            say(f"  {self.tree} was left modified (an interrupted session?): resetting it")
            git(self.tree, "reset", "-q", "--hard")
            git(self.tree, "clean", "-fdq")


@contextmanager
def copy_lock(top: Path) -> Iterator[None]:
    """One `highmem mutate` at a time on one copy (flock, released when we die)."""
    top.parent.mkdir(parents=True, exist_ok=True)
    with (top.parent / f"{top.name}.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"another `highmem mutate` or `highmem bisect` is using the "
                               f"kernel copy {top}",
                               "wait for it to finish, or pass another --source") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _commit_all(tree: Path, message: str) -> None:
    git(tree, "add", "-A", "-f", ".")
    git(tree, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)


def _sync_git(src: KernelSource, tree: Path) -> None:
    """The copy at the user's HEAD, with the user's uncommitted changes (to tracked files)
    committed on top; files whose content does not change keep their mtime."""
    head = git(src.tree, "rev-parse", "HEAD").decode().strip()
    git(tree, "reset", "-q", "--hard")
    git(tree, "clean", "-fdq")
    git(tree, "checkout", "-q", "--detach", head)
    diff = git(src.tree, "--no-optional-locks", "diff", "HEAD", "--binary")
    if diff.strip():
        git(tree, "apply", "--binary", "-", stdin=diff)
        _commit_all(tree, f"pristine: the uncommitted changes of {src.tree}")


def _new_copy(src: KernelSource, top: Path) -> None:
    """Make the copy in a scratch directory, then rename it into place (an interrupted copy
    leaves nothing behind)."""
    part = Path(tempfile.mkdtemp(prefix=f".{top.name}.", suffix=".part", dir=top.parent))
    try:
        tree = part / "linux"
        if src.identity.startswith("git:"):
            say(f"  cloning {src.tree} (git clone --shared) into {top}")
            git(part, "clone", "-q", "--shared", "--no-checkout", str(src.tree), "linux")
            _sync_git(src, tree)
        else:
            say(f"  copying {src.tree} into {top} and committing it as 'pristine' (once)")
            r = subprocess.run(["cp", "-a", "--reflink=auto", str(src.tree), str(tree)],
                               capture_output=True, text=True, errors="replace", timeout=3600)
            if r.returncode != 0:
                raise HarnessError(f"cannot copy {src.tree}: {one_line(r.stderr)}",
                                   f"check the free space in {top.parent}")
            git(tree, "init", "-q")
            git(tree, "config", "gc.auto", "0")
            _commit_all(tree, f"pristine: {src.tree}")
        _write_marker(part, src)
        os.rename(part, top)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def _write_marker(top: Path, src: KernelSource) -> None:
    (top / MARKER).write_text(json.dumps({"tree": str(src.tree), "identity": src.identity,
                                          "made": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


def _marker(top: Path) -> dict[str, str]:
    try:
        data = json.loads((top / MARKER).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def kernel_copy(src: KernelSource, top: Path) -> KernelCopy:
    """The copy of `src` at `top`, made now or brought up to date (call under copy_lock)."""
    kc = KernelCopy(top)
    seen = _marker(top)
    if not seen or not (kc.tree / ".git").is_dir():
        if top.exists():
            shutil.rmtree(top)
        _new_copy(src, top)
        return kc
    kc.make_clean()
    if seen.get("identity") == src.identity:
        say(f"  kernel copy {kc.tree} is up to date (made {seen.get('made', '?')})")
    elif src.identity.startswith("git:"):
        say(f"  {src.tree} changed since the copy was made: bringing {kc.tree} up to date")
        _sync_git(src, kc.tree)
        _write_marker(top, src)
    else:
        say(f"  reusing the copy of {src.tree} made {seen.get('made', '?')} (not a git "
            f"tree: later changes to it are not seen; remove {top} to copy it again)")
    return kc


def copy_top(src: KernelSource) -> Path:
    """Where the copy of `src` lives (made or not): $HIGHMEM_CACHE/mutate/NAME."""
    return cache_dir() / "mutate" / copy_name(src.tree, src.identity)
