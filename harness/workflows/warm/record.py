"""The warm guest's status file (workflows/warm/model.py's WarmRecord) on disk: written
atomically in the server's run directory, found by `highmem run`/`status`/`down` under
$HIGHMEM_ARTIFACTS/warm-*/, and judged against /proc: a record whose server is gone (or
whose pid now runs something else) is stale, and is removed with the socket directory it
names, never used. Only a record in a warm directory carrying this harness's marker is ever
removed, and only a socket directory carrying ours (stages/owned.py): a planted warm.json
naming a user's directory makes nothing go.
"""

from dataclasses import dataclass
from pathlib import Path

from .model import KEEP_PREFIX, STATUS_FILE, WarmRecord, parse_record, stale_reason
from ...stages import owned
from ...stages.atomic_file import write_atomic
from ...stages.paths import artifacts_root, cache_dir
from ...stages.sockdir import RAM_DIR_BASE, sweep_stale

WARM_KINDS = ("warm", "run")  # the markers of a directory a warm record may be in


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
    except OSError:
        return None, None
    start = owned.start_time(pid)  # the one reading of it ("" for a zombie)
    if not any(words) or not start:
        return None, None
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
    """A status file found, and why it is stale (None: its server is alive). `owned`: in
    a directory carrying this harness's marker (else it is never removed)."""

    path: Path
    record: WarmRecord | None
    stale: str | None
    owned: bool = True

    @property
    def alive(self) -> bool:
        return self.record is not None and self.stale is None


def find_records(root: Path | None = None) -> list[Found]:
    """Every status file under $HIGHMEM_ARTIFACTS/warm-*/, judged against /proc."""
    out = []
    for path in sorted((root or artifacts_root()).glob(f"warm-*/{STATUS_FILE}")):
        ours = owned.is_ours(path.parent, WARM_KINDS)
        rec = read_record(path)
        if rec is None:
            out.append(Found(path, None, "unreadable status file", ours))
            continue
        words, start = proc_facts(rec.pid)
        out.append(Found(path, rec, stale_reason(rec, words, start), ours))
    return out


def remove_stale(found: Found) -> None:
    """Remove a stale record (only in a directory of ours) and, if its server is gone, the
    socket directory it names (only one of ours whose maker is gone: owned.remove_owned) and
    its hard link to its image."""
    # the guest's own socket and RAM directories, left by a server killed with -9 (ours,
    # their owner gone): now, not at the next boot (8 GiB of tmpfs RAM file, sparse)
    sweep_stale()
    sweep_stale(RAM_DIR_BASE)
    if not found.owned or not owned.is_ours(found.path.parent, WARM_KINDS):
        return  # a warm.json we did not write: never acted on
    found.path.unlink(missing_ok=True)
    if found.record is None:
        return
    image = Path(found.record.image or "/")
    if found.record.image and proc_facts(found.record.pid)[0] is None \
            and cache_dir() in image.parents:  # the image cache's, never elsewhere
        (image.parent / f"{KEEP_PREFIX}{found.record.pid}-{image.name}").unlink(missing_ok=True)
    try:
        owned.remove_owned(Path(found.record.socket).parent, ("socket",))
    except OSError:
        pass  # half removed: the next sweep goes on


def live_records(root: Path | None = None) -> list[WarmRecord]:
    """The records whose server is alive; stale ones are removed on the way."""
    live = []
    for f in find_records(root):
        if f.alive and f.record is not None:
            live.append(f.record)
        else:
            remove_stale(f)
    return live
