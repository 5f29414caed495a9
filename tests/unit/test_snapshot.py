"""Snapshots: the key changes with anything the saved state depends on, a meta that is not
ours (or of another key) is never used, and the store finds only whole snapshots."""

import os
import time
from pathlib import Path

import pytest

from harness.core.snapshot_meta import MetaError, SnapshotMeta, parse_meta, snapshot_key
from harness.operations import GuestSession
from harness.stages import owned, snapshot
from harness.stages.qemu import QemuConfig

PARTS = {"vmlinux": "/b/vmlinux:1:2", "initrd": "/b/i.cpio.gz:3:4", "qemu": "q", "memory": "8G",
         "smp": "2", "cpu": "qemu32", "cmdline": "console=ttyS0", "accel": "tcg", "extra": ""}


def meta(parts: dict[str, str] = PARTS) -> SnapshotMeta:
    return SnapshotMeta(key=snapshot_key(parts), parts=dict(parts), accel="tcg",
                        core_addr=0xf8a00000, host_key_type="ssh-ed25519", host_key="AAAA",
                        client_key="PEM", meminfo={"HighTotal": 7481224})


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_part_changes_the_key(part: str) -> None:
    assert snapshot_key({**PARTS, part: PARTS[part] + "x"}) != snapshot_key(PARTS)


def test_the_key_does_not_depend_on_order() -> None:
    assert snapshot_key(dict(reversed(list(PARTS.items())))) == snapshot_key(PARTS)


def test_meta_round_trip() -> None:
    m = meta()
    assert parse_meta(m.to_json(), m.key) == m


def test_meta_of_another_key_or_not_ours_is_refused() -> None:
    m = meta()
    with pytest.raises(MetaError, match="not"):
        parse_meta(m.to_json(), "0" * 16)
    forged = SnapshotMeta(**{**m.__dict__, "marker": "someone else"})
    with pytest.raises(MetaError, match="not a format"):
        parse_meta(forged.to_json(), m.key)
    tampered = SnapshotMeta(**{**m.__dict__, "parts": {**PARTS, "memory": "4G"}})
    with pytest.raises(MetaError):
        parse_meta(tampered.to_json(), m.key)
    with pytest.raises(MetaError, match="unreadable"):
        parse_meta("{", m.key)


def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, m: SnapshotMeta,
           files: tuple[str, ...] = ("state", "ram"), marked: bool = True) -> Path:
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path))
    d = snapshot.store_dir() / m.key
    d.mkdir(parents=True)
    if marked:  # as save() leaves it (False: an older harness's, no marker)
        owned.mark(d, snapshot.KIND, hold=False)
    (d / "meta.json").write_text(m.to_json())
    for f in files:
        (d / f).write_bytes(b"x")
    return d


def test_find_only_whole_snapshots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = meta()
    _store(tmp_path, monkeypatch, m, files=("state",))
    assert snapshot.find(m.key) is None            # no RAM file: half of one
    (snapshot.store_dir() / m.key / "ram").write_bytes(b"x")
    found = snapshot.find(m.key)
    assert found is not None and found.meta == m
    assert snapshot.find(snapshot_key({**PARTS, "smp": "4"})) is None


def test_prune_keeps_the_newest_and_never_touches_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = []
    for n in range(snapshot.KEEP + 2):
        d = _store(tmp_path, monkeypatch, meta({**PARTS, "smp": str(n)}))
        os.utime(d, (time.time() + n, time.time() + n))
        dirs.append(d)
    stranger = snapshot.store_dir() / "not-ours"
    stranger.mkdir()
    (stranger / "meta.json").write_text("{}")
    old = _store(tmp_path, monkeypatch, meta({**PARTS, "smp": "99"}), marked=False)
    os.utime(old, (1, 1))  # the oldest of all, but an older harness's: left alone
    snapshot._prune(snapshot.store_dir())
    assert [d.exists() for d in dirs] == [False, False] + [True] * snapshot.KEEP
    assert stranger.exists() and old.exists()


def test_a_half_saved_snapshot_of_a_dead_process_is_swept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path))
    root = snapshot.store_dir()
    dead, alive, unknown = (root / f"{snapshot.SAVING}{n}" for n in ("a", "b", "c"))
    for d in (dead, alive, unknown):
        d.mkdir(parents=True)
    owned.mark(dead, snapshot.KIND, hold=False)   # its writer gone: the lock with it
    owned.mark(alive, snapshot.KIND)              # being saved: locked
    (unknown / "saving-by").write_text("999999999\n")  # no marker: not provably ours
    snapshot._sweep_saving(root)
    assert not dead.exists() and alive.exists() and unknown.exists()
    owned.release(alive)


def test_a_changed_image_or_kernel_gives_another_key(tmp_path: Path) -> None:
    """A rebuilt initramfs (a module changed) or vmlinux never finds the old snapshot."""
    vmlinux, initrd = tmp_path / "vmlinux", tmp_path / "initramfs.cpio.gz"
    vmlinux.write_bytes(b"k" * 10)
    initrd.write_bytes(b"i" * 10)
    s = GuestSession(QemuConfig(kernel=vmlinux, initrd=initrd, accel="tcg"), None,  # type: ignore[arg-type]
                     tmp_path)
    before = s.snapshot_key()
    assert s.snapshot_key() == before
    os.utime(initrd, ns=(1, 1))
    assert s.snapshot_key() != before
    after_image = s.snapshot_key()
    vmlinux.write_bytes(b"k" * 11)
    assert s.snapshot_key() != after_image
    other = GuestSession(QemuConfig(kernel=vmlinux, initrd=initrd, accel="tcg", memory="4G"),
                         None, tmp_path)  # type: ignore[arg-type]
    assert other.snapshot_key() != s.snapshot_key()
