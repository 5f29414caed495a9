"""A vmcore's ELF headers, read and checked (pure): what `highmem dump` verifies of the file
QEMU's `dump-guest-memory` (format elf, paging false) wrote before calling it usable.

QEMU 7.2 (dump/dump.c, target/i386/arch_dump.c) writes an ET_CORE file, EM_386, of class
ELF64 as soon as guest RAM reaches above 4 GiB (ELF32 otherwise); one PT_NOTE with an
NT_PRSTATUS ("CORE") and a "QEMU" CPU-state note per vCPU, then one PT_LOAD per block of
guest RAM (p_paddr = guest physical address, p_filesz = p_memsz without paging). crash
opens such a file (`crash vmlinux FILE`, the same layout kdump writes on PAE); what drgn
needs is in docs/inspect.md.
"""

import struct
from dataclasses import dataclass

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ET_CORE = 4
EM_386 = 3
PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS = 1
HEAD_BYTES = 64          # the ELF header of either class fits in this


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int      # in the file
    paddr: int       # guest physical address
    filesz: int
    memsz: int


@dataclass(frozen=True)
class ElfCore:
    elf_class: int
    etype: int
    machine: int
    segments: tuple[Segment, ...]

    @property
    def loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    @property
    def notes(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_NOTE]


def _endian(head: bytes) -> tuple[int, str]:
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        raise ValueError("not an ELF file (no \\x7fELF at its start)")
    if head[4] not in (ELFCLASS32, ELFCLASS64) or head[5] not in (1, 2):
        raise ValueError(f"unknown ELF class {head[4]} or data encoding {head[5]}")
    return head[4], "<" if head[5] == 1 else ">"


def headers_size(head: bytes) -> int:
    """How many bytes from the file's start hold its ELF header and program headers."""
    cls, e = _endian(head)
    if cls == ELFCLASS64:
        phoff, = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(e + "I", head, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
    return int(phoff + phentsize * phnum)


def parse_core(data: bytes) -> ElfCore:
    """The ELF header and program headers of `data` (at least headers_size() bytes)."""
    cls, e = _endian(data)
    etype, machine = struct.unpack_from(e + "HH", data, 16)
    if cls == ELFCLASS64:
        phoff, = struct.unpack_from(e + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 54)
        fmt, want = e + "IIQQQQQQ", 56
    else:
        phoff, = struct.unpack_from(e + "I", data, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", data, 42)
        fmt, want = e + "IIIIIIII", 32
    if phnum and phentsize != want:
        raise ValueError(f"program header entries of {phentsize} bytes (ELF class {cls} "
                         f"has {want})")
    if len(data) < phoff + phentsize * phnum:
        raise ValueError("the program headers run past the end of the data")
    segs = []
    for i in range(phnum):
        f = struct.unpack_from(fmt, data, phoff + i * phentsize)
        if cls == ELFCLASS64:   # type, flags, offset, vaddr, paddr, filesz, memsz, align
            segs.append(Segment(f[0], f[2], f[4], f[5], f[6]))
        else:                   # type, offset, vaddr, paddr, filesz, memsz, flags, align
            segs.append(Segment(f[0], f[1], f[3], f[4], f[5]))
    return ElfCore(cls, etype, machine, tuple(segs))


def parse_notes(data: bytes, elf_class: int, little: bool = True) -> list[tuple[str, int]]:
    """(name, type) of each note in a PT_NOTE segment's bytes (4-byte aligned fields in
    both classes, as QEMU and the kernel write them)."""
    e = "<" if little else ">"
    out, off = [], 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(e + "III", data, off)
        name = data[off + 12:off + 12 + namesz].rstrip(b"\0").decode(errors="replace")
        off += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
        if off > len(data):
            break
        out.append((name, ntype))
    return out


def uncovered(core: ElfCore, ram: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of guest RAM [(start, end)) that no PT_LOAD segment holds in the file."""
    loads = sorted((s.paddr, s.paddr + min(s.filesz, s.memsz)) for s in core.loads)
    missing = []
    for start, end in ram:
        at = start
        for lo, hi in loads:
            if hi <= at or lo >= end:
                continue
            if lo > at:
                missing.append((at, lo))
            at = max(at, hi)
            if at >= end:
                break
        if at < end:
            missing.append((at, end))
    return missing


def problems(core: ElfCore, ram: list[tuple[int, int]], file_size: int,
             cpus: int | None, notes: list[tuple[str, int]]) -> list[str]:
    """What makes the vmcore unusable for crash or drgn: not an i386 core, RAM not in it,
    segments past the file's end, CPU registers (NT_PRSTATUS) missing. [] when it is good."""
    out = []
    if core.etype != ET_CORE or core.machine != EM_386:
        out.append(f"ELF type {core.etype}, machine {core.machine}: not an i386 core "
                   f"(ET_CORE {ET_CORE}, EM_386 {EM_386})")
    if any(hi > 1 << 32 for _, hi in ram) and core.elf_class != ELFCLASS64:
        out.append("ELF32 cannot hold RAM above 4 GiB")
    for lo, hi in uncovered(core, ram):
        out.append(f"guest RAM {lo:#x}-{hi - 1:#x} is in no PT_LOAD segment")
    for s in core.loads:
        if s.offset + s.filesz > file_size:
            out.append(f"PT_LOAD at paddr {s.paddr:#x} ends at file offset "
                       f"{s.offset + s.filesz:#x}, past the file's {file_size:#x} bytes")
    prstatus = sum(1 for name, t in notes if name == "CORE" and t == NT_PRSTATUS)
    if not core.notes:
        out.append("no PT_NOTE segment (the CPUs' registers)")
    elif cpus is not None and prstatus != cpus:
        out.append(f"{prstatus} NT_PRSTATUS notes for {cpus} CPUs")
    return out


def summary(core: ElfCore, notes: list[tuple[str, int]]) -> str:
    """One line: class, machine, segments, RAM held."""
    held = sum(s.filesz for s in core.loads)
    cpus = sum(1 for name, t in notes if name == "CORE" and t == NT_PRSTATUS)
    return (f"ELF{32 if core.elf_class == ELFCLASS32 else 64} core, EM_386, "
            f"{len(core.loads)} PT_LOAD segments holding {held >> 20} MiB of guest RAM, "
            f"registers of {cpus} CPUs")
