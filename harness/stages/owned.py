"""Ownership markers on disk (core/ownership.py decides): every directory the harness makes
gets a `.highmem-run` marker, and is removed only when core/ownership.judge says it is ours
and not in use.

- mark(d, kind): write the marker (to a temporary name, renamed into place, so no reader
  sees half of one) and, with hold=True, keep a shared flock on it for this process's life:
  a live run's directory is never removed under it (`highmem clean` during a run).
- hold(d): take that shared lock in another process (the warm server, in the run directory
  its client made).
- examine(d): the facts, read without following a symlink: the directory opened with
  O_NOFOLLOW|O_DIRECTORY, the marker opened relative to it with O_NOFOLLOW, an exclusive
  flock probe (fails while any holder lives), the creator in /proc.
- remove_owned(d, kinds): remove d only if judged ours, holding the exclusive lock while
  removing (shutil.rmtree never follows a symlink inside).
"""

import fcntl
import os
import shutil
import stat
import time
from pathlib import Path

from ..core.ownership import MARKER, MARKER_MAX, DirFacts, Marker, Verdict, judge, parse_marker

_HELD: dict[str, int] = {}   # directory -> fd of its marker, flock(LOCK_SH) until exit
HOLD_WAIT_S = 2.0            # hold(): a clean probing the lock holds it for a moment


def start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (start time in clock ticks): tells a reused pid apart.
    "" for a process that is gone, a zombie included (killed, not reaped yet)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = text.rsplit(")", 1)[-1].split()
    return "" if not fields or fields[0] == "Z" or len(fields) < 20 else fields[19]


def mark(d: Path, kind: str, hold: bool = True) -> None:
    """Write `d`'s marker (this uid, this process, d's inode); hold: lock it shared until
    this process exits (or release(d))."""
    st = os.lstat(d)
    pid = os.getpid()
    text = Marker(kind=kind, uid=os.getuid(), pid=pid, started=start_time(pid),
                  ino=st.st_ino, dev=st.st_dev).to_json()
    tmp = d / f"{MARKER}.{pid}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text.encode())
        if hold:
            fcntl.flock(fd, fcntl.LOCK_SH)  # before it has its name: never seen unlocked
        os.rename(tmp, d / MARKER)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    if hold:
        _HELD[str(d)] = fd
    else:
        os.close(fd)


def hold(d: Path) -> None:
    """Lock `d`'s marker shared for this process's life (OSError: no marker)."""
    fd = os.open(d / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
    deadline = time.monotonic() + HOLD_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise
            time.sleep(0.05)
    _HELD[str(d)] = fd


def release(d: Path) -> None:
    """Drop this process's lock on `d` (it may then be removed)."""
    fd = _HELD.pop(str(d), None)
    if fd is not None:
        os.close(fd)


def _marker_text(dfd: int) -> tuple[str | None, int | None]:
    """The marker's text and an open fd of it (None, None: no regular marker file)."""
    try:
        fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except OSError:
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MARKER_MAX:
            os.close(fd)
            return None, None
        return os.read(fd, MARKER_MAX + 1).decode(errors="replace"), fd
    except OSError:
        os.close(fd)
        return None, None


def _examine(d: Path) -> tuple[DirFacts, int | None]:
    """The facts of `d` and, when it is not in use, its marker's fd locked exclusively
    (the caller closes it)."""
    try:
        lst = os.lstat(d)
    except FileNotFoundError:
        return DirFacts("missing"), None
    except OSError:
        return DirFacts("other"), None
    if stat.S_ISLNK(lst.st_mode):
        return DirFacts("symlink"), None
    if not stat.S_ISDIR(lst.st_mode):
        return DirFacts("other"), None
    try:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return DirFacts("other"), None
    try:
        st = os.fstat(dfd)
        text, mfd = _marker_text(dfd)
    finally:
        os.close(dfd)
    locked = False
    if mfd is not None:
        try:
            fcntl.flock(mfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            locked = True
            os.close(mfd)
            mfd = None
    alive = False
    if text is not None:
        m = parse_marker(text)
        alive = m is not None and m.pid > 0 and start_time(m.pid) == m.started != ""
    return DirFacts("dir", st.st_uid, st.st_ino, st.st_dev, text, locked, alive), mfd


def examine(d: Path, kinds: tuple[str, ...]) -> Verdict:
    """Whether `d` may be removed by this process for a sweep of `kinds` (nothing done)."""
    facts, fd = _examine(d)
    if fd is not None:
        os.close(fd)
    return judge(facts, os.getuid(), kinds)


def remove_owned(d: Path, kinds: tuple[str, ...]) -> Verdict:
    """Remove `d` if it is ours (judge), holding its lock exclusively meanwhile; the
    verdict either way. OSError if removing it fails part way."""
    facts, fd = _examine(d)
    try:
        v = judge(facts, os.getuid(), kinds)
        if v.remove:
            now = os.lstat(d)  # still the directory judged (not swapped for a symlink)
            if not stat.S_ISDIR(now.st_mode) or (now.st_ino, now.st_dev) != (facts.ino,
                                                                             facts.dev):
                return Verdict(False, "symlink" if stat.S_ISLNK(now.st_mode) else "copied")
            if _holds_a_mount(d, now.st_dev):
                return Verdict(False, "mount", v.marker)
            shutil.rmtree(d)
        return v
    finally:
        if fd is not None:
            os.close(fd)


def _holds_a_mount(d: Path, dev: int) -> bool:
    """Whether a directory under `d` is on another filesystem (something mounted inside:
    rmtree would empty it)."""
    for top, dirs, _files in os.walk(d):
        for name in dirs:
            try:
                if os.lstat(os.path.join(top, name)).st_dev != dev:
                    return True
            except OSError:
                continue
    return False


def is_ours(d: Path, kinds: tuple[str, ...]) -> bool:
    """Whether `d` carries a valid marker of `kinds` made by this uid for this very
    directory, in use or not (e.g. before reading a record it holds)."""
    v = examine(d, kinds)
    return v.remove or v.why in ("in-use", "creator-alive")
