"""A snapshot is verified on restore (issue 19: a RAM copy with two `ud2` over
__kmap_local_pfn_prot was never detected; every restored guest oopsed and every module was
reported as a 60 s hang). The checksum kept in the meta (core/snapshot_meta.py) over sparse
files on tmp (stages/snapshot.py), the once-per-file-identity cache, the restored guest's
first words, and GuestSession dropping a bad snapshot and naming it."""

import os
import re
import time
from pathlib import Path

import pytest

from harness.core.errors import BootError, GuestError
from harness.core.snapshot_meta import (SnapshotMeta, digest_problem, ram_digest,
                                        snapshot_key, state_digest)
from harness.operations import GuestSession
from harness.stages import snapshot
from harness.stages.console_log import ConsoleLog

PARTS = {"vmlinux": "/b/vmlinux:1:2", "initrd": "/b/i.cpio.gz:3:4", "qemu": "q", "memory": "8G",
         "smp": "2", "cpu": "qemu32", "cmdline": "console=ttyS0", "accel": "tcg", "extra": ""}
RAM_SIZE = 64 << 20
KMAP_LOCAL_PFN_PROT = 0x1A2B30  # a "kernel text" offset in the fake RAM


def _sparse_ram(path: Path) -> None:
    """A 64 MiB RAM file with three data islands (one of them all zeros) and holes."""
    with path.open("wb") as f:
        f.truncate(RAM_SIZE)
        for off, data in ((0x1000, b"\x55" * 8192), (0x1A2000, os.urandom(4096)),
                          (0x3000000, bytes(4096)), (RAM_SIZE - 4096, b"end" * 100)):
            f.seek(off)
            f.write(data)


def _snap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> snapshot.Snapshot:
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path))
    key = snapshot_key(PARTS)
    d = snapshot.store_dir() / key
    d.mkdir(parents=True)
    _sparse_ram(d / "ram")
    (d / "state").write_bytes(b"QEVM" + os.urandom(1 << 16))
    m = SnapshotMeta(key=key, parts=dict(PARTS), accel="tcg", core_addr=0xF8A00000,
                     host_key_type="ssh-ed25519", host_key="AAAA", client_key="PEM",
                     ram_digest=snapshot.ram_checksum(d / "ram"),
                     state_digest=state_digest((d / "state").read_bytes()))
    (d / "meta.json").write_text(m.to_json())
    found = snapshot.find(key)
    assert found is not None
    return found


def _ud2(path: Path, offset: int = KMAP_LOCAL_PFN_PROT) -> None:
    """What the issue did: two `ud2` (0f 0b) over a kernel function, in place."""
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\x0f\x0b\x0f\x0b")


def test_a_sparse_and_a_full_copy_of_one_ram_have_one_checksum(tmp_path):
    sparse, full = tmp_path / "sparse", tmp_path / "full"
    _sparse_ram(sparse)
    full.write_bytes(sparse.read_bytes())   # every hole now a data page of zeros
    assert os.stat(full).st_blocks > os.stat(sparse).st_blocks
    assert ram_digest(snapshot._data_chunks(sparse)) == ram_digest(snapshot._data_chunks(full))


def test_one_changed_byte_or_a_moved_page_changes_the_checksum():
    page = os.urandom(4096)
    base = ram_digest([(0, page)])
    assert ram_digest([(0, page[:10] + b"\x0f" + page[11:])]) != base
    assert ram_digest([(4096, page)]) != base           # the same bytes elsewhere
    assert ram_digest([(0, page), (8192, bytes(4096))]) == base   # zeros = a hole


def test_an_intact_snapshot_verifies(tmp_path, monkeypatch):
    snapshot.verify(_snap(tmp_path, monkeypatch))


def test_ud2_written_into_the_ram_copy_is_caught(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    _ud2(snap.ram)
    with pytest.raises(snapshot.SnapshotBad) as e:
        snapshot.verify(snap)
    assert re.fullmatch(r"its RAM does not match the checksum saved with it \(blake2b "
                        r"[0-9a-f]{12}\.\.\., now [0-9a-f]{12}\.\.\.\)", e.value.what)


def test_a_write_into_a_hole_is_caught(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    _ud2(snap.ram, 0x2000000)   # a hole in the copy
    with pytest.raises(snapshot.SnapshotBad, match="its RAM does not match"):
        snapshot.verify(snap)


def test_a_changed_device_state_is_caught(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    data = bytearray(snap.state.read_bytes())
    data[100] ^= 1
    snap.state.write_bytes(bytes(data))
    with pytest.raises(snapshot.SnapshotBad, match="its device state does not match"):
        snapshot.verify(snap)


def test_a_snapshot_without_checksums_is_bad():
    m = SnapshotMeta(key="k", parts={}, accel="tcg", core_addr=0, host_key_type="",
                     host_key="", client_key="")
    assert digest_problem(m, "ab" * 32, "cd" * 32) is not None


def test_the_ram_is_hashed_once_per_file_identity(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    calls = []
    real = snapshot.ram_digest
    monkeypatch.setattr(snapshot, "ram_digest", lambda chunks: calls.append(1) or real(chunks))
    snapshot._verified.clear()
    snapshot.verify(snap)
    snapshot.verify(snap)
    assert len(calls) == 1
    _ud2(snap.ram)           # any write changes the identity (mtime, ctime): hashed again
    with pytest.raises(snapshot.SnapshotBad):
        snapshot.verify(snap)
    assert len(calls) == 2


def test_an_unreadable_snapshot_is_an_environment_error_not_a_bad_one(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    snap.state.unlink()
    with pytest.raises(BootError) as e:
        snapshot.verify(snap)
    assert not isinstance(e.value, snapshot.SnapshotBad)


# -- the restored guest's first words ----------------------------------------------------

class FakeShell:
    """The serial shell of a restored guest: prints `prints` to the console when the
    command starts, then answers `rc` (or never)."""

    def __init__(self, console: Path, prints: str, rc: int = 0, answers: bool = True) -> None:
        self.console, self.prints, self.rc, self.answers = console, prints, rc, answers

    def start(self, cmd: str) -> int:
        assert cmd == snapshot.FIRST_WORDS
        with self.console.open("a") as f:
            f.write(self.prints)
        return 1

    def poll(self, token: int, timeout: float = 0.0) -> tuple[int, str] | None:
        time.sleep(timeout)
        return (self.rc, "") if self.answers else None


OOPS = ("[   12.345678] Oops: invalid opcode: 0000 [#1] PREEMPT SMP\n"
        "[   12.345679] EIP: __kmap_local_pfn_prot+0x0/0x120\n")


@pytest.mark.parametrize("prints,rc,answers,match", [
    (OOPS, 0, True, "oopsed before any module ran: Oops: invalid opcode: 0000"),
    (OOPS, 132, False, "oopsed before any module ran: Oops: invalid opcode"),
    ("Illegal instruction\n", 132, True, "cannot run a program: '/bin/busybox true' exited 132"),
])
def test_a_restored_guest_that_oopses_at_once_is_a_bad_snapshot(tmp_path, prints, rc,
                                                                 answers, match):
    """Found at once: a wedged guest is not waited for (FIRST_WORDS_TIMEOUT_S)."""
    t0 = time.monotonic()
    log = tmp_path / "console.log"
    log.write_text("[    1.0] an oops of the boot before the save: Oops: 0002 [#1]\n")
    console = ConsoleLog(log)    # from before the resume: older lines do not count
    with pytest.raises(snapshot.SnapshotBad, match=match):
        snapshot.first_words(FakeShell(log, prints, rc, answers), console)  # type: ignore
    assert time.monotonic() - t0 < 1.0


def test_a_restored_guest_that_answers_cleanly_passes(tmp_path):
    log = tmp_path / "console.log"
    log.write_text("[    1.0] Oops: 0002 [#1] (before the save)\n")
    snapshot.first_words(FakeShell(log, ""), ConsoleLog(log))  # type: ignore[arg-type]


def test_a_silent_guest_without_an_oops_is_not_called_bad(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "FIRST_WORDS_TIMEOUT_S", 0.3)
    log = tmp_path / "console.log"
    log.write_text("")
    with pytest.raises(GuestError) as e:
        snapshot.first_words(FakeShell(log, "", answers=False), ConsoleLog(log))  # type: ignore
    assert not isinstance(e.value, snapshot.SnapshotBad)


# -- GuestSession: dropped, booted, named ------------------------------------------------

def test_a_bad_snapshot_is_removed_and_named_and_the_guest_booted(tmp_path, monkeypatch):
    snap = _snap(tmp_path, monkeypatch)
    _ud2(snap.ram)
    s = GuestSession.__new__(GuestSession)
    s.qemu, s.notes = None, []
    booted = []
    monkeypatch.setattr(GuestSession, "snapshot_key", lambda self: snap.meta.key)
    monkeypatch.setattr("harness.operations.ram_dir_usable", lambda: True)

    def restore(self, found):
        snapshot.verify(found)

    def cold_boot(self):
        booted.append(1)
        raise StopIteration   # the cold boot itself is the integration tests' business

    monkeypatch.setattr(GuestSession, "_restore", restore)
    s.cfg = type("Cfg", (), {"shared_ram": True})()
    s.kernel = type("Kernel", (), {"vmlinux": tmp_path / "vmlinux"})()
    s.run_dir = tmp_path
    s.kept = type("Kept", (), {"prewarm": lambda self, *a: cold_boot(s)})()
    s.close = lambda: None  # type: ignore[method-assign]
    with pytest.raises(StopIteration):
        s.boot(restore=True)
    assert booted == [1]
    assert not snap.dir.exists()
    assert s.notes and s.notes[0].startswith(f"snapshot {snap.meta.key} was bad: its RAM "
                                             "does not match the checksum saved with it")
