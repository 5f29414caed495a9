"""The warm guest's status file (core/warm.py's WarmRecord) on disk: written atomically in
the server's run directory, found by `highmem run`/`status`/`down` under
$HIGHMEM_ARTIFACTS/warm-*/, and judged against /proc: a record whose server is gone (or
whose pid now runs something else) is stale, and is removed with the socket directory it
names, never used.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.warm import KEEP_PREFIX, STATUS_FILE, WarmRecord, parse_record, stale_reason
from .atomic_file import write_atomic
from .paths import artifacts_root
from .sockdir import OWNER, RAM_DIR_BASE, owner_alive, sweep_stale


def write_record(run_dir: Path, rec: WarmRecord) -> Path:
    """Replace the status file atomically: a reader never sees half of one."""
    return write_atomic(run_dir / STATUS_FILE, rec.to_json())


def read_record(path: Path) -> WarmRecord | None:
    try:
        return parse_record(path.read_text())
    except OSError:
        return None


def proc_facts(pid: int) -> tuple[list[str] | None, str | None]:
    """(argv words, start time) of /proc/PID; (None, None) when there is no such process
    (or it is a zombie: argv empty)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    if not any(words):
        return None, None
    try:
        start = stat[stat.rindex(")") + 2:].split()[19]
    except (ValueError, IndexError):
        start = None
    return words, start


def ident(path: Path) -> str | None:
    """A file's identity for "has it changed": path, size, mtime (None: gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


@dataclass
class Found:
    """A status file found, and why it is stale (None: its server is alive)."""

    path: Path
    record: WarmRecord | None
    stale: str | None

    @property
    def alive(self) -> bool:
        return self.record is not None and self.stale is None


def find_records(root: Path | None = None) -> list[Found]:
    """Every status file under $HIGHMEM_ARTIFACTS/warm-*/, judged against /proc."""
    out = []
    for path in sorted((root or artifacts_root()).glob(f"warm-*/{STATUS_FILE}")):
        rec = read_record(path)
        if rec is None:
            out.append(Found(path, None, "unreadable status file"))
            continue
        words, start = proc_facts(rec.pid)
        out.append(Found(path, rec, stale_reason(rec, words, start)))
    return out


def remove_stale(found: Found) -> None:
    """Remove a stale record and, if its server is gone, the socket directory it names
    (only one of ours: sockdir.owner_alive says False only for those) and its hard link to
    its image."""
    found.path.unlink(missing_ok=True)
    # the guest's own socket and RAM directories, left by a server killed with -9 (ours,
    # their owner gone): now, not at the next boot (8 GiB of tmpfs RAM file, sparse)
    sweep_stale()
    sweep_stale(RAM_DIR_BASE)
    if found.record is None:
        return
    if found.record.image and proc_facts(found.record.pid)[0] is None:
        image = Path(found.record.image)
        (image.parent / f"{KEEP_PREFIX}{found.record.pid}-{image.name}").unlink(missing_ok=True)
    sockdir = Path(found.record.socket).parent
    if not sockdir.is_dir() or sockdir.is_symlink():
        return
    try:
        owner = int((sockdir / OWNER).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return  # not one of ours: never touched
    server_gone = owner == found.record.pid and proc_facts(owner)[0] is None  # or a zombie
    if server_gone or not owner_alive(sockdir):
        shutil.rmtree(sockdir, ignore_errors=True)


def live_records(root: Path | None = None) -> list[WarmRecord]:
    """The records whose server is alive; stale ones are removed on the way."""
    live = []
    for f in find_records(root):
        if f.alive and f.record is not None:
            live.append(f.record)
        else:
            remove_stale(f)
    return live
