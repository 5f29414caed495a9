"""core/vmcore.py on hand-built ELF cores laid out as QEMU 7.2's dump-guest-memory writes
them for an 8 GiB i386 guest (ELF64, EM_386, a PT_NOTE, PT_LOADs of RAM below 3 GiB and
from 4 GiB): the check passes on a good one and names each thing a bad one lacks."""

import struct

import pytest

from harness.core import vmcore

GiB = 1 << 30
RAM = [(0, 0xA0000), (0x100000, 3 * GiB), (4 * GiB, 9 * GiB)]   # `info mtree -f`, merged


def note(name: bytes, ntype: int, desc: int) -> bytes:
    n = name + b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(n), desc, ntype) + pad(n) + pad(b"\0" * desc)


def core64(loads, notes: bytes, machine=vmcore.EM_386, etype=vmcore.ET_CORE) -> bytes:
    """ELF64 header, PT_NOTE then PT_LOADs (paddr, size), the note data; RAM not written
    (the check reads headers only; the file size is passed apart)."""
    phnum = 1 + len(loads)
    head = vmcore.ELF_MAGIC + bytes([2, 1, 1]) + b"\0" * 9
    head += struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, 0, 64, 0, 0, 64, 56, phnum,
                        0, 0, 0)
    off = 64 + 56 * phnum
    ph = struct.pack("<IIQQQQQQ", vmcore.PT_NOTE, 0, off, 0, 0, len(notes), len(notes), 0)
    data_at = off + len(notes)
    for paddr, size in loads:
        ph += struct.pack("<IIQQQQQQ", vmcore.PT_LOAD, 0, data_at, 0, paddr, size, size, 0)
        data_at += size
    return head + ph + notes


CPU_NOTES = note(b"CORE", 1, 144) + note(b"QEMU", 0, 400) + note(b"CORE", 1, 144) + \
    note(b"QEMU", 0, 400)
LOADS = [(0, 0xA0000), (0x100000, 3 * GiB - 0x100000), (4 * GiB, 5 * GiB)]


def checked(data: bytes, file_size: int | None = None, cpus: int = 2) -> list[str]:
    core = vmcore.parse_core(data[:vmcore.headers_size(data[:vmcore.HEAD_BYTES])])
    n = core.notes[0]
    notes = vmcore.parse_notes(data[n.offset:n.offset + n.filesz], core.elf_class)
    size = file_size if file_size is not None else max(s.offset + s.filesz for s in core.loads)
    return vmcore.problems(core, RAM, size, cpus, notes)


def test_a_core_like_qemus_passes():
    data = core64(LOADS, CPU_NOTES)
    assert vmcore.headers_size(data[:64]) == 64 + 56 * 4
    core = vmcore.parse_core(data)
    assert core.elf_class == vmcore.ELFCLASS64 and [s.paddr for s in core.loads] == \
        [0, 0x100000, 4 * GiB]
    assert checked(data) == []
    n = core.notes[0]
    notes = vmcore.parse_notes(data[n.offset:n.offset + n.filesz], core.elf_class)
    assert notes == [("CORE", 1), ("QEMU", 0), ("CORE", 1), ("QEMU", 0)]
    assert vmcore.summary(core, notes).startswith("ELF64 core, EM_386, 3 PT_LOAD segments "
                                                  "holding 8191 MiB")


def test_ram_in_no_segment_is_named():
    data = core64([(0, 0xA0000), (0x100000, 3 * GiB - 0x100000), (4 * GiB, 4 * GiB)],
                  CPU_NOTES)
    assert checked(data) == ["guest RAM 0x200000000-0x23fffffff is in no PT_LOAD segment"]
    assert vmcore.uncovered(vmcore.parse_core(data), [(0x1000, 0x3000)]) == []
    core = vmcore.parse_core(core64([(0, 0x1000), (0x2000, 0x1000)], b""))
    assert vmcore.uncovered(core, [(0, 0x4000)]) == [(0x1000, 0x2000), (0x3000, 0x4000)]


def test_a_truncated_file_wrong_machine_and_missing_registers_fail():
    data = core64(LOADS, CPU_NOTES)
    assert any("past the file's" in p for p in checked(data, file_size=6 * GiB))
    assert any("not an i386 core" in p for p in checked(core64(LOADS, CPU_NOTES, machine=62)))
    assert checked(data, cpus=4) == ["2 NT_PRSTATUS notes for 4 CPUs"]


def test_elf32_cannot_hold_ram_above_4g_and_garbage_is_not_elf():
    head = vmcore.ELF_MAGIC + bytes([1, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIIIIIHHHHHH", 4, 3, 1, 0, 52, 0, 0, 52, 32, 0, 0, 0, 0)
    core = vmcore.parse_core(head)
    assert core.elf_class == vmcore.ELFCLASS32 and core.loads == []
    probs = vmcore.problems(core, RAM, len(head), 2, [])
    assert "ELF32 cannot hold RAM above 4 GiB" in probs and "no PT_NOTE segment (the CPUs' " \
        "registers)" in probs
    with pytest.raises(ValueError, match="not an ELF file"):
        vmcore.parse_core(b"QFI\xfb" + b"\0" * 60)
