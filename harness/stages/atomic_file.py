"""Atomic writes of the files a user (or CI) reads: report.json, report.txt, JUnit XML,
KCIDB JSON, matrix.json, the warm guest's record. A reader finds the old file or the new
one, complete, never a partial one, even if the writer is killed with -9 mid-write or the
machine loses power: the text goes to a temporary file in the same directory (the same
file system, so the rename is atomic), is fsync'ed, renamed over the target, and the
directory is fsync'ed so the rename itself is on disk.
"""

import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".hm-tmp"      # .NAME.XXXXXXXX.hm-tmp: a writer killed mid-write leaves one


def write_atomic(path: Path, data: str | bytes, mode: int | None = None) -> Path:
    """Replace `path` by `data` (text is UTF-8) atomically. `mode`: the file's permission
    bits (default: those of the file it replaces, else 0644). The temporary file is
    removed when the write fails; OSError is the caller's to turn into a HarnessError."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass            # some file systems refuse fsync on a directory: the rename stands
    finally:
        os.close(fd)
