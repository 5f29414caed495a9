"""A directory's file events from Linux inotify, through libc (ctypes: inotify_init1,
inotify_add_watch; no package needed): `highmem watch` learns of a save at once, instead of
polling mtimes (which cannot tell a save from a touch, and misses a save within the mtime's
granularity). Every read has a deadline; the descriptor is closed on exit.
"""

import ctypes
import errno
import os
import select
from pathlib import Path
from types import TracebackType

from ...core.errors import HarnessError
from .inotify_events import IN_CLOEXEC, IN_NONBLOCK, WATCH_MASK, kind_of, parse_events

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)   # the C library this Python runs on
    return _libc


def _error(what: str) -> HarnessError:
    err = ctypes.get_errno()
    fix = ("raise the limit: sysctl fs.inotify.max_user_watches / max_user_instances"
           if err in (errno.ENOSPC, errno.EMFILE) else "watch a directory of a local file system")
    return HarnessError(f"{what}: {os.strerror(err)}", fix)


class DirWatch:
    """The CREATE / MODIFY / DELETE / OVERFLOW / GONE events (workflows/warm/inotify_events.py) of
    the files of some directories (not of their subdirectories)."""

    def __init__(self, *dirs: Path) -> None:
        lib = _lib()
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _error("inotify_init1 failed")
        self.fd = fd
        self.dirs: dict[int, Path] = {}   # watch descriptor -> its directory
        for d in dirs:
            wd = lib.inotify_add_watch(fd, os.fsencode(d), WATCH_MASK)
            if wd < 0:
                err = _error(f"cannot watch {d}")
                os.close(fd)
                raise err
            self.dirs[wd] = d

    def read(self, timeout: float) -> list[tuple[Path | None, str, str]]:
        """The (directory, file name, kind) events that arrive within `timeout` s (none:
        []); directory None: of no one directory (OVERFLOW)."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return []
        try:
            buf = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        out = []
        for wd, mask, name in parse_events(buf):
            kind = kind_of(mask)
            if kind is not None:
                out.append((self.dirs.get(wd), name, kind))
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "DirWatch":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
