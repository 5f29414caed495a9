"""Snapshot stage: save a ready guest once, restore it in a fraction of a boot.

Mechanism (measured, see README "Snapshots"): the guest's RAM is already a shared file on
tmpfs (stages/qemu.py), so QEMU's migration with the `x-ignore-shared` capability writes only
the device state (~1 MiB, in ~25 ms) and the RAM is kept as a sparse copy of the RAM file
(only the pages the guest touched: ~100 MiB of 8 GiB after boot). A restore copies that
back to a new tmpfs file, starts QEMU with `-incoming defer` on it and loads the state:
~0.3 s, against 3.5-6 s for QEMU alone to boot the same kernel.

Snapshots live in $HIGHMEM_CACHE/snapshots/<key>/ (meta.json, state, ram), keyed by
everything the state depends on (core/snapshot_meta.py). A snapshot is written to a
`.saving-*` directory and renamed into place, so a reader never sees half of one and two
writers of the same key (parallel workers) cannot mix. Each carries the harness's
`.highmem-run` marker (kind "snapshot", stages/owned.py), locked while it is being saved.
The oldest are removed beyond KEEP; only directories carrying that marker and this harness's
meta are ever pruned or swept (an older harness's, without a marker, are left alone). A
snapshot is discarded only when it is proven bad, never because the host refused the copy:
ENOSPC on /dev/shm is an environment error and the snapshot stays.

A restore is verified twice (docs/faults.md): before QEMU starts, the RAM copy and the
device state must match the checksums saved in the meta (verify(); the RAM is hashed once
per process for each identity of its file — inode, size, mtime and ctime, which any write
changes — measured at 0.2 s for the ~100 MiB of an 8 GiB guest, against 0.3 s for the
whole restore; the 1 MiB state each time); after it, the guest must run a program without
the kernel printing an oops or BUG (first_words()). Either failing is SnapshotBad (proven
bad): the snapshot is removed, the guest booted and saved again, and the report says which.
"""

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BootError, GuestError
from ..core.failure import crash_lines
from ..core.host_errors import HOST_ERRNOS, errno_in_text, host_error
from ..core.snapshot_meta import (MetaError, SnapshotMeta, digest_problem, parse_meta,
                                  ram_digest, state_digest)
from . import owned
from .console import SerialShell
from .console_log import ConsoleLog
from .paths import cache_dir
from .qmp import Monitor

KEEP = 8  # snapshots kept (~100 MiB of disk each): a kernel, its image and flags each
MIGRATE_TIMEOUT_S = 60.0
COPY_TIMEOUT_S = 120.0
SAVING = ".saving-"
KIND = "snapshot"              # its marker's kind (core/ownership.py)
CAPS = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}
CHUNK = 1 << 20            # bytes read at a time while hashing the RAM copy
FIRST_WORDS_TIMEOUT_S = 10.0
# a program run in the restored guest before any module: fork and exec allocate and clear
# user pages (clear_user_highpage -> kmap_local), so a damaged kernel text shows at once
FIRST_WORDS = "/bin/busybox true"
_verified: dict[tuple[int, ...], str] = {}  # RAM file identity -> its checksum (this process)


class SnapshotBad(BootError):
    """A snapshot proven bad: its files changed since it was saved, or the guest it
    restores oopses before any module ran. It is removed and the guest booted."""


@dataclass(frozen=True)
class Snapshot:
    dir: Path
    meta: SnapshotMeta

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def ram(self) -> Path:
        return self.dir / "ram"

    def disk_bytes(self) -> int:
        return sum(os.stat(p).st_blocks * 512 for p in (self.state, self.ram))


def store_dir() -> Path:
    return cache_dir() / "snapshots"


def find(key: str) -> Snapshot | None:
    """The saved snapshot of `key`, or None (none, or not one this harness wrote whole)."""
    d = store_dir() / key
    try:
        meta = parse_meta((d / "meta.json").read_text(), key)
    except (OSError, MetaError):
        return None
    snap = Snapshot(d, meta)
    if not (snap.state.is_file() and snap.ram.is_file()):
        return None
    os.utime(d)  # most recently used: pruned last
    return snap


def _data_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the file's data, CHUNK at a time, its holes skipped (SEEK_DATA)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size, offset = os.fstat(fd).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after `offset`
                return
            end = os.lseek(fd, start, os.SEEK_HOLE)
            while start < end:
                data = os.pread(fd, min(CHUNK, end - start), start)
                if not data:
                    return
                yield start, data
                start += len(data)
            offset = end
    finally:
        os.close(fd)


def _identity(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def ram_checksum(path: Path) -> str:
    """ram_digest() of a RAM file, hashed once per process for each identity of it."""
    ident = _identity(path)
    if ident not in _verified:
        _verified[ident] = ram_digest(_data_chunks(path))
    return _verified[ident]


def verify(snap: Snapshot) -> None:
    """SnapshotBad unless the snapshot's RAM copy and device state match its checksums."""
    try:
        problem = digest_problem(snap.meta, ram_checksum(snap.ram),
                                 state_digest(snap.state.read_bytes()))
    except OSError as e:
        name = HOST_ERRNOS.get(e.errno or 0)
        if name is not None and name != "ENOENT":  # the host refused: the snapshot is kept
            raise host_error(name, str(e.filename or snap.dir), "reading the snapshot",
                             {"HIGHMEM_CACHE": str(cache_dir())}) from None
        raise BootError(f"cannot read the snapshot {snap.dir}: {e.strerror}",
                        f"check {snap.dir} (df -h, ls -l)") from None
    if problem is not None:
        raise SnapshotBad(problem, f"nothing to do: the snapshot {snap.dir.name} is removed "
                          "and saved again after the next boot")


def first_words(shell: SerialShell, console: ConsoleLog) -> None:
    """The restored guest (resumed) runs a program and the kernel prints no oops or BUG
    while it does (`console`: the console from before the resume). SnapshotBad as soon as
    an oops shows (such a guest is wedged, seen: the shell oopsed in clear_user_highpage,
    nothing answered again), or if the program fails; GuestError if the guest just does
    not answer within FIRST_WORDS_TIMEOUT_S."""
    token = shell.start(FIRST_WORDS)
    deadline = time.monotonic() + FIRST_WORDS_TIMEOUT_S
    while True:
        res = shell.poll(token, timeout=0.1)
        crash = crash_lines(console.text())
        if crash:
            raise SnapshotBad(f"the restored guest oopsed before any module ran: {crash[0]}",
                              "nothing to do: the snapshot is removed and saved again "
                              "after the next boot")
        if res is not None:
            break
        if time.monotonic() > deadline:
            raise GuestError(f"the restored guest did not answer within "
                             f"{FIRST_WORDS_TIMEOUT_S:.0f} s", "read console.log in the run "
                             "directory")
    rc, out = res
    if rc != 0:
        raise SnapshotBad(f"the restored guest cannot run a program: '{FIRST_WORDS}' "
                          f"exited {rc} before any module ran: {out[-100:]!r}",
                          "nothing to do: the snapshot is removed and saved again after "
                          "the next boot")


def discard(snap: Snapshot) -> None:
    """Remove a snapshot proven bad (it did not restore): one with our marker, not in use;
    an older harness's without one only when find() read our meta in it and it is a real
    directory (never through a symlink)."""
    try:
        if owned.remove_owned(snap.dir, (KIND,)).why == "no-marker" and _ours(snap.dir):
            shutil.rmtree(snap.dir)
    except OSError:
        pass  # half removed: find() no longer reads it whole


def copy_sparse(src: Path, dst: Path) -> None:
    """Copy a RAM file keeping its holes (untouched guest pages cost no disk or tmpfs).
    HostIOError when the host refused (no space on /dev/shm, read-only): an environment
    error, the snapshot is not to blame; BootError otherwise."""
    roots = {"/dev/shm": str(dst.parent.parent), "HIGHMEM_CACHE": str(cache_dir())}
    try:
        need, free = os.stat(src).st_blocks * 512, os.statvfs(dst.parent)
    except OSError:
        need = 0  # cp names what is wrong
    if need and need > free.f_bavail * free.f_frsize:
        raise host_error("ENOSPC", str(dst), f"copying the guest RAM {src} ({need >> 20} MiB; "
                         f"{(free.f_bavail * free.f_frsize) >> 20} MiB free)", roots)
    try:
        subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True,
                       capture_output=True, text=True, timeout=COPY_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        err = getattr(e, "stderr", "") or str(e)
        name = errno_in_text(err)
        if name is not None and name != "ENOENT":
            raise host_error(name, str(dst), f"copying the guest RAM {src}", roots) from None
        raise BootError(f"cannot copy the guest RAM {src} to {dst}: {err.strip()}",
                        f"check the free space of {dst.parent} (df -h)") from None


def _wait_migration(monitor: Monitor, what: str) -> None:
    deadline = time.monotonic() + MIGRATE_TIMEOUT_S
    while True:
        st = monitor.qmp("query-migrate")
        status = st.get("status", "none")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise BootError(f"QEMU's {what} {status}: {st.get('error-desc', 'no reason given')}",
                            "read console.log in the run directory")
        if time.monotonic() > deadline:
            raise BootError(f"QEMU's {what} did not end within {MIGRATE_TIMEOUT_S:.0f} s "
                            f"(status {status})", "read console.log in the run directory")
        time.sleep(0.005)


def migrate_in(monitor: Monitor, snap: Snapshot) -> None:
    """Load the saved device state into a QEMU started with `-incoming defer` (its RAM file
    already a copy of the snapshot's). The guest stays paused: `cont` it."""
    monitor.qmp("migrate-set-capabilities", CAPS)
    monitor.qmp("migrate-incoming", {"uri": f"exec:cat {shlex.quote(str(snap.state))}"})
    _wait_migration(monitor, "restore")


def save(monitor: Monitor, ram_file: Path, meta: SnapshotMeta) -> Snapshot:
    """Pause the guest, write its device state and a sparse copy of its RAM, resume it.
    Returns the snapshot (another process's, if it saved the same key first)."""
    root = store_dir()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    _sweep_saving(root)
    tmp = Path(tempfile.mkdtemp(prefix=SAVING, dir=root))
    try:
        owned.mark(tmp, KIND)  # locked until saved: no sweep takes it meanwhile
    except BaseException:
        tmp.rmdir()
        raise
    (tmp / "saving-by").write_text(f"{os.getpid()}\n")
    try:
        t0 = time.monotonic()
        monitor.qmp("stop")
        try:
            monitor.qmp("migrate-set-capabilities", CAPS)
            monitor.qmp("migrate", {"uri": f"exec:cat > {shlex.quote(str(tmp / 'state'))}"})
            _wait_migration(monitor, "save")
            copy_sparse(ram_file, tmp / "ram")
        finally:
            monitor.qmp("cont")
        meta.save_seconds = round(time.monotonic() - t0, 3)
        meta.ram_digest = ram_checksum(tmp / "ram")      # of the copy, the guest running
        meta.state_digest = state_digest((tmp / "state").read_bytes())
        fd = os.open(tmp / "meta.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(meta.to_json())
        (tmp / "saving-by").unlink()
        final = root / meta.key
        try:
            os.rename(tmp, final)
        except OSError:  # saved meanwhile by another run: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        owned.release(tmp)
    _prune(root)
    snap = find(meta.key)
    if snap is None:
        raise BootError(f"the snapshot {final} was written but cannot be read back",
                        f"remove {final} and run again")
    return snap


def add_facts(snap: Snapshot, facts: dict[str, object]) -> Snapshot:
    """The snapshot's meta with `facts` (read after the save, once gdb attached), written
    whole or not at all."""
    meta = SnapshotMeta(**{**snap.meta.__dict__, "facts": facts})
    tmp = snap.dir / f".meta-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(meta.to_json())
    os.replace(tmp, snap.dir / "meta.json")
    return Snapshot(snap.dir, meta)


def _ours(d: Path) -> bool:
    """A snapshot directory holding this harness's meta for its own key."""
    try:
        parse_meta((d / "meta.json").read_text(), d.name)
        return True
    except (OSError, MetaError):
        return False


def _prune(root: Path) -> None:
    """Keep the KEEP most recently used snapshots; remove only ours (marker and meta)."""
    snaps = sorted((d for d in root.iterdir() if not d.name.startswith(".") and _ours(d)
                    and owned.is_ours(d, (KIND,))),
                   key=lambda d: d.stat().st_mtime, reverse=True)
    for d in snaps[KEEP:]:
        try:
            owned.remove_owned(d, (KIND,))
        except OSError:
            pass


def _sweep_saving(root: Path) -> None:
    """Half-written snapshots of a process that is gone (killed while saving): ours (the
    marker) and no longer locked by their writer."""
    for d in root.glob(SAVING + "*"):
        try:
            owned.remove_owned(d, (KIND,))
        except OSError:
            continue
