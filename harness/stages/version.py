"""`highmem --version`: the package's version and, in a git checkout of the harness, `git
describe` of it (the commit the harness runs from; -dirty when its files were edited)."""

import subprocess
from importlib import metadata

from ..core.repo import REPO

PACKAGE = "highmem-harness"
GIT_WAIT_S = 5.0


def package_version() -> str:
    """The installed package's version (`pip install -e .` installs it), else "unknown"."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def git_describe() -> str | None:
    """`git describe --always --dirty --tags` of the harness's checkout; None when it is
    not one (an installed copy), git is missing, or git does not answer in GIT_WAIT_S."""
    if not (REPO / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty",
                              "--tags"], capture_output=True, text=True, timeout=GIT_WAIT_S,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def version_line() -> str:
    """`highmem-harness 0.1.0 (git e9f970a)`, or `(not a git checkout)`."""
    git = git_describe()
    return f"{PACKAGE} {package_version()} ({f'git {git}' if git else 'not a git checkout'})"
