"""Snapshot stage, pure: what identifies a saved guest, and what is kept with it.

A snapshot is a guest at ready (shell on the serial console, sshd up, hm_checkpoint.ko
loaded) saved by QEMU's migration with `x-ignore-shared` (the device state, ~1 MiB) plus a
sparse copy of its RAM file. It may be restored only into the very machine it was saved
from: the same vmlinux, the same initramfs, the same QEMU and the same machine flags. The
key hashes all of them; any change gives another key, so a stale snapshot is never found.

The meta also keeps a checksum of what was saved (blake2b of the RAM copy's non-zero pages
with their offsets, and of the device state), checked before a restore: a snapshot whose
files changed since (a corrupted copy, bytes written into it) is bad, and is dropped.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = 2                 # bump when what a snapshot holds or means changes (2: checksums)
MARKER = "highmem-harness snapshot"
PAGE = 4096
_ZERO_PAGE = bytes(PAGE)


def ram_digest(chunks: Iterable[tuple[int, bytes]]) -> str:
    """The checksum of a RAM file given as its data (`chunks`: (file offset, bytes) in
    increasing offsets, page aligned, e.g. the file's data extents; holes left out): blake2b
    over each non-zero 4 KiB page and its offset. A page of zeros counts the same whether
    the file holds it or a hole does, so a sparse and a full copy of one RAM agree."""
    h = hashlib.blake2b(digest_size=32)
    for offset, data in chunks:
        view = memoryview(data)
        for i in range(0, len(view), PAGE):
            page = view[i:i + PAGE]
            if page != _ZERO_PAGE[:len(page)]:
                h.update((offset + i).to_bytes(8, "little"))
                h.update(page)
    return h.hexdigest()


def state_digest(data: bytes) -> str:
    """The checksum of a saved device state (QEMU's migration stream, ~1 MiB)."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def digest_problem(meta: "SnapshotMeta", ram: str, state: str) -> str | None:
    """Why the files whose checksums are `ram` and `state` are not the snapshot `meta`
    describes (e.g. "its RAM does not match the checksum saved with it (blake2b 1f2e...,
    now 9a8b...)"), or None when both match."""
    bad = [f"{what} does not match the checksum saved with it (blake2b {want[:12]}..., "
           f"now {got[:12]}...)"
           for what, want, got in (("RAM", meta.ram_digest, ram),
                                   ("device state", meta.state_digest, state))
           if want != got]
    return "its " + "; its ".join(bad) if bad else None


def snapshot_key(parts: dict[str, str]) -> str:
    """A short hex key of everything the saved state depends on (`parts`: name -> text,
    e.g. the vmlinux and initramfs sha256, the QEMU binary, memory, smp, cpu, append)."""
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class SnapshotMeta:
    """What the harness needs from the first boot to use a restored guest without redoing
    it: where hm_checkpoint() is, the SSH keys the guest trusts and presents, the boot's
    /proc/meminfo and dmesg, the acceleration it ran under, and what gdb read of the
    kernel through its DWARF (masks, layout, symbol addresses; a restored guest is then
    served by a gdb that loads no symbols)."""

    key: str
    parts: dict[str, str]
    accel: str
    core_addr: int
    host_key_type: str
    host_key: str
    client_key: str            # PEM of the client key the guest's authorized_keys holds
    meminfo: dict[str, int] = field(default_factory=dict)
    boot_dmesg: str = ""
    boot_seconds: float = 0.0
    save_seconds: float = 0.0  # the guest paused: device state written, RAM copied
    facts: dict[str, Any] = field(default_factory=dict)  # Checker.facts(), after the save
    count_addr: int = 0        # hm_checkpoint's call count (0: not known)
    ram_digest: str = ""       # ram_digest() of the RAM copy, as saved
    state_digest: str = ""     # state_digest() of the device state, as saved
    marker: str = MARKER
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


class MetaError(ValueError):
    """The meta file is not one this harness wrote (or one of another format)."""


def parse_meta(text: str, key: str) -> SnapshotMeta:
    """The meta of snapshot `key`; MetaError if it is not ours, of another format, or of
    another key (a directory renamed by hand)."""
    try:
        d = json.loads(text)
        meta = SnapshotMeta(**d)
    except (ValueError, TypeError) as e:
        raise MetaError(f"unreadable snapshot meta: {e}") from None
    if meta.marker != MARKER or meta.format != FORMAT:
        raise MetaError(f"not a format-{FORMAT} snapshot of this harness")
    if meta.key != key or snapshot_key(meta.parts) != key:
        raise MetaError(f"the meta describes snapshot {meta.key}, not {key}")
    return meta
