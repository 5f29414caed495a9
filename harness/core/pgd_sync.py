"""Every task's page directory against init_mm's, at a checkpoint: the kernel half of each
process's tables must map a checked kernel VA exactly as `init_mm` (swapper_pg_dir) does.

On 2-level tables (HIGHMEM4G) the kernel's page-directory entries are copied into each new
process's directory and kept in step by the kernel's page-table sync; a missing sync
(4819e15f740e, e80d3909be42) leaves a kernel mapping absent from *another* task's tables,
invisible from the CPU that stopped. On PAE the kernel PMDs are shared by every directory
unless PTI is on, and since 6.16's PAE rework they are copied too. Compared per VA: every
entry below the top level (on PAE each directory may have its own PMD page, so the PDPTE
itself differs legitimately; the PMD entry and the PTE must not), the physical address
reached and the fault. One VA per 2 MiB (PAE) / 4 MiB region is enough: a region's PTEs
live in the one PTE page its directory entry names, and that entry is compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .pagewalk import ReadPhys, Walk, walk

PAE_REGION, TWO_LEVEL_REGION = 1 << 21, 1 << 22


@dataclass(frozen=True)
class Pgd:
    """A process's page directory: its thread-group leader's pid and comm, the physical
    address of `mm->pgd`."""

    pid: int
    comm: str
    phys: int


Outcome = tuple[tuple[tuple[str, int], ...], int | None, str | None]


def outcome(w: Walk) -> Outcome:
    """What a walk reached, minus the PAE top level: (level entries, phys, fault)."""
    levels = w.levels[1:] if w.pae else w.levels
    return tuple((lv.name, lv.value) for lv in levels), w.phys, w.fault


def describe(o: Outcome) -> str:
    levels, phys, fault = o
    entries = " ".join(f"{name} {value:#x}" for name, value in levels)
    return f"{entries} -> {fault or f'phys {phys:#x}'}"


def region_vas(vas: Iterable[int], page_offset: int, pae: bool) -> list[int]:
    """The first kernel VA (>= page_offset) of each directory region among `vas`."""
    size = PAE_REGION if pae else TWO_LEVEL_REGION
    first: dict[int, int] = {}
    for va in vas:
        if va >= page_offset:
            first.setdefault(va & ~(size - 1), va)
    return sorted(first.values())


def judge_pgds(vas: Iterable[int], reference: int, pgds: Iterable[Pgd], read: ReadPhys,
               *, pae: bool, page_offset: int) -> list[tuple[int, str]]:
    """(VA, `PGD: …` mismatch) per (process, region) whose tables map the region's VA other
    than `reference` (swapper_pg_dir's physical address) does."""
    out = []
    regions = region_vas(vas, page_offset, pae)
    procs = [p for p in pgds if p.phys != reference]
    for va in regions:
        want = outcome(walk(reference, va, read, pae=pae))
        for p in procs:
            got = outcome(walk(p.phys, va, read, pae=pae))
            if got != want:
                out.append((va, f"PGD: task {p.pid} ({p.comm}) maps {va:#x} as {describe(got)}, "
                           f"init_mm as {describe(want)}"))
    return out
