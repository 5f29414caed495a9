"""Environment errors, named for what they are: the host's filesystem refused a write or a
read the harness needed (no space, read-only, a directory removed under the run, permission
denied) on the artifacts directory, the cache or /dev/shm. Not a test result and not a
kernel failure: before the run one `error:` + `fix:` line (exit 2); mid-run the run stops,
the report names the directory and the errno, and the modules not run are marked "not run".
No I/O here: the errno comes from an OSError, or from a tool's message (cp's stderr).
"""

import errno
import os
from pathlib import PurePath

from .errors import HarnessError

# the errnos of a host that cannot hold the run (ENOENT: only when a directory is gone,
# which the caller decides: a missing file alone may be our bug)
HOST_ERRNOS = {errno.ENOSPC: "ENOSPC", errno.EDQUOT: "EDQUOT", errno.EROFS: "EROFS",
               errno.EACCES: "EACCES", errno.ENOENT: "ENOENT"}

FIXES = {
    "ENOSPC": "free space on the filesystem of {dir} (df -h {dir}){alt}",
    "EDQUOT": "free some of your disk quota on {dir} (quota -s){alt}",
    "EROFS": "remount {dir} read-write{alt}",
    "EACCES": "make {dir} writable for you (ls -ld {dir}){alt}",
    "ENOENT": "{dir} was removed during the run: leave it until the run ends, and run "
              "again{alt}",
}


class HostIOError(HarnessError):
    """The host's filesystem refused: `path` (the file or directory), `errno_name` (e.g.
    "ENOSPC"), `setting` (the knob naming the directory: HIGHMEM_ARTIFACTS, HIGHMEM_CACHE,
    /dev/shm; "" when none)."""

    def __init__(self, what: str, fix: str, path: str, errno_name: str,
                 setting: str = "") -> None:
        super().__init__(what, fix)
        self.path, self.errno_name, self.setting = path, errno_name, setting

    def as_dict(self) -> dict[str, str]:
        """report.json's `environment`."""
        return {"what": self.what, "fix": self.fix, "path": self.path,
                "errno": self.errno_name, "directory": self.setting}


def _setting(path: str, roots: dict[str, str]) -> tuple[str, str]:
    """(the knob, its directory) of the deepest root holding `path`; ("", path's dir)."""
    p = PurePath(path)
    hits = [(len(PurePath(r).parts), name, r) for name, r in roots.items()
            if p == PurePath(r) or PurePath(r) in p.parents]
    if not hits:
        return "", str(p.parent)
    _, name, root = max(hits)
    return name, root


def host_error(errno_name: str, path: str, doing: str,
               roots: dict[str, str] | None = None, gone: str = "") -> HostIOError:
    """The error of `doing` (e.g. "writing the report") failing on `path` with
    `errno_name`; `roots`: {knob: directory} to name which of the harness's directories
    it was (its fix then offers to point the knob elsewhere); `gone`: for ENOENT, the
    directory that was removed (the fix names it)."""
    setting, where = _setting(path, roots or {})
    number = {v: k for k, v in HOST_ERRNOS.items()}.get(errno_name)
    reason = os.strerror(number) if number is not None else errno_name
    named = f"{setting} directory {where}" if setting and setting.isupper() else where
    alt = (f", or set {setting} to another directory" if setting and setting.isupper()
           else "")
    fix = FIXES.get(errno_name, "check the filesystem of {dir}{alt}").format(
        dir=gone if errno_name == "ENOENT" and gone else where, alt=alt)
    return HostIOError(f"environment error: {doing} failed on {path} ({named}): "
                       f"{errno_name} ({reason})", fix, path, errno_name, setting)


def from_oserror(e: BaseException, doing: str, roots: dict[str, str] | None = None,
                 dir_gone: bool = False, gone: str = "") -> HostIOError | None:
    """The HostIOError of an exception, when it is one or an OSError of HOST_ERRNOS
    (ENOENT only with `dir_gone`: the directory it was in is gone); None otherwise (our
    bug, or another kind of failure: the caller lets it go on as it was)."""
    if isinstance(e, HostIOError):
        return e
    if not isinstance(e, OSError) or e.errno not in HOST_ERRNOS:
        return None
    if e.errno == errno.ENOENT and not dir_gone:
        return None
    return host_error(HOST_ERRNOS[e.errno], str(e.filename or "?"), doing, roots, gone)


def errno_in_text(text: str) -> str | None:
    """The host errno a tool's message names (cp: "No space left on device"), or None."""
    for number, name in HOST_ERRNOS.items():
        if os.strerror(number) in text:
            return name
    return None
