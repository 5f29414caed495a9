"""Page-walk stage, pure: decode and compare x86-32 page-table entries (no I/O).

Covers ``pte_t``/``pmd_t`` as 64-bit values with CONFIG_X86_PAE
(``pteval_t`` is u64, arch/x86/include/asm/pgtable-3level_types.h) and as
32-bit values without PAE (``pteval_t`` is unsigned long,
pgtable-2level_types.h), Linux 6.1-6.14.  Bit numbers and the PAGE_KERNEL
protections follow arch/x86/include/asm/pgtable_types.h in 6.12 (lines 10-30
and 215-235).  The decoder is table driven: :data:`PTE_BITS` is the only
place that knows which bit is which.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

# (name, bit) in ascending bit order; arch/x86/include/asm/pgtable_types.h 6.12:10-30.
# Bit 7 is _PAGE_BIT_PSE in a PMD/PDE and _PAGE_BIT_PAT in a 4 KiB PTE; the
# decoder renames it per level (see _bit_name).  Bit 9 is _PAGE_BIT_SOFTW1,
# aliased _PAGE_BIT_SPECIAL (and _PAGE_BIT_CPA_TEST).  Bit 63 only exists
# with PAE (``_PAGE_NX`` is 0 otherwise).
PTE_BITS: tuple[tuple[str, int], ...] = (
    ("P", 0), ("RW", 1), ("US", 2), ("PWT", 3), ("PCD", 4), ("A", 5),
    ("D", 6), ("PSE", 7), ("G", 8), ("SPECIAL", 9), ("NX", 63),
)

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_PWT = 1 << 3
_PAGE_PCD = 1 << 4
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
_PAGE_PSE = 1 << 7
_PAGE_PAT = 1 << 7          # same bit as _PAGE_PSE, on 4 KiB PTEs
_PAGE_GLOBAL = 1 << 8
_PAGE_SPECIAL = 1 << 9
_PAGE_PAT_LARGE = 1 << 12   # PAT on 2 MiB / 4 MiB pages
_PAGE_PROTNONE = _PAGE_GLOBAL  # meaning of bit 8 when _PAGE_PRESENT is clear
_PAGE_NX = 1 << 63          # 0 in a non-PAE kernel

# pgtable_types.h 6.12:227-233 (the block at 215-216 defines the same values twice).
__PAGE_KERNEL = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_NX | _PAGE_DIRTY | _PAGE_GLOBAL
__PAGE_KERNEL_EXEC = __PAGE_KERNEL & ~_PAGE_NX
__PAGE_KERNEL_RO = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_NX | _PAGE_GLOBAL
__PAGE_KERNEL_LARGE = __PAGE_KERNEL | _PAGE_PSE
_KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
PAGE_KERNEL_FLAGS = __PAGE_KERNEL          # 0x8000000000000163
PAGE_KERNEL_RO_FLAGS = __PAGE_KERNEL_RO    # 0x8000000000000121

# PTE_PFN_MASK: __PHYSICAL_MASK_SHIFT is 52 with PAE, 32 without
# (arch/x86/include/asm/page_32_types.h 6.12:36-41).
PAE_PFN_MASK = 0x000FFFFFFFFFF000
NONPAE_PFN_MASK = 0xFFFFF000
# PHYSICAL_PMD_PAGE_MASK for a 2 MiB PAE page; a 4 MiB non-PAE PDE keeps
# bits 31-22 (PSE-36 bits 13-20, phys bits 32-39, are not decoded).
PAE_LARGE_MASK = 0x000FFFFFFFE00000
NONPAE_LARGE_MASK = 0xFFC00000

_LEVELS = ("pte", "pmd", "pde")
_FIELD_BITS: dict[str, int] = {name: bit for name, bit in PTE_BITS}
_FIELD_BITS.update({"PAT": 7, "PS": 7})


@dataclass(frozen=True)
class PteInfo:
    """One decoded ``pte_t`` / ``pmd_t`` value.

    ``flags`` is the raw hardware decode in :data:`PTE_BITS` order (bit 7 named
    "PAT" at PTE level, "PS" at PMD/PDE level; a large entry also reports bit
    12 as "PAT").  ``pfn`` follows the kernel's ``pte_pfn()``/``pmd_pfn()``:
    for a large entry it is the first 4 KiB frame of the 2/4 MiB page, and on
    PAE a non-zero, non-present entry has its PFN stored inverted (L1TF
    mitigation, arch/x86/include/asm/pgtable-invert.h, included by
    pgtable-3level.h), which is undone here.  ``phys`` is ``pfn << 12``.
    """

    value: int
    present: bool
    flags: tuple[str, ...]
    pfn: int
    phys: int
    protnone: bool


def _check_level(level: str) -> str:
    lvl = level.lower()
    if lvl not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, not {level!r}")
    return lvl


def _bit_name(name: str, bit: int, level: str) -> str:
    if bit == 7:
        return "PAT" if level == "pte" else "PS"
    return name


@functools.lru_cache(maxsize=1024)
def _flag_names(bits: int, pae: bool, lvl: str, large: bool) -> tuple[str, ...]:
    """The names of the flag bits set in `bits` (the entry without its frame bits: a
    range's thousands of PTEs share a handful of flag patterns)."""
    flags = [_bit_name(name, bit, lvl) for name, bit in PTE_BITS
             if (bits >> bit) & 1 and (pae or bit < 32)]
    if large and bits & _PAGE_PAT_LARGE:
        flags.append("PAT")
    return tuple(flags)


def decode_entry(value: int, *, pae: bool = True, level: str = "pte") -> PteInfo:
    """Decode a PTE (``level="pte"``) or PMD/PDE (``"pmd"``/``"pde"``) value.

    Without PAE the value is truncated to 32 bits, so bit 63 (NX) is ignored.
    PROTNONE is the kernel's ``pte_protnone()`` test: ``_PAGE_PROTNONE`` (bit 8,
    shared with G) set and ``_PAGE_PRESENT`` clear; 0 is never PROTNONE.
    """
    lvl = _check_level(level)
    if value < 0:
        raise ValueError("entry value must be non-negative")
    value &= (1 << 64) - 1 if pae else 0xFFFFFFFF
    large = lvl != "pte" and bool(value & _PAGE_PSE)
    bits = value & ~(PAE_PFN_MASK if pae else NONPAE_PFN_MASK)
    if large:
        bits |= value & _PAGE_PAT_LARGE  # bit 12 is a flag in a large page, not frame
    flags = _flag_names(bits, pae, lvl, large)
    present = bool(value & _PAGE_PRESENT)
    raw = value
    if pae and value and not present:  # __pte_needs_invert()
        raw = ~value & ((1 << 64) - 1)
    if large:
        phys = raw & (PAE_LARGE_MASK if pae else NONPAE_LARGE_MASK)
    else:
        phys = raw & (PAE_PFN_MASK if pae else NONPAE_PFN_MASK)
    protnone = (value & (_PAGE_PROTNONE | _PAGE_PRESENT)) == _PAGE_PROTNONE
    return PteInfo(value=value, present=present, flags=flags,
                   pfn=phys >> 12, phys=phys, protnone=protnone)


def format_flags(info: PteInfo) -> str:
    """Space-separated flag names, e.g. ``"P RW A D G NX"``; ``"-"`` if none.

    For a PROTNONE entry bit 8 is shown as "PROTNONE" instead of "G".
    """
    names = ["PROTNONE" if (n == "G" and info.protnone) else n for n in info.flags]
    return " ".join(names) if names else "-"


def expected_kernel_pte(pfn: int, prot: int, default_kernel_pte_mask: int,
                        supported_pte_mask: int, *, pae: bool = True) -> int:
    """The ``pte_t`` value the kernel writes for ``pfn_pte(pfn, PAGE_KERNEL)``.

    ``PAGE_KERNEL`` is ``__pgprot_mask(__PAGE_KERNEL)`` = ``prot &
    __default_kernel_pte_mask`` (PTI clears G there, mm/init.c); ``pfn_pte()``
    then applies ``massage_pgprot()``, which ANDs ``__supported_pte_mask``
    (no NX without CPUID NX) only when the protection is present
    (arch/x86/include/asm/pgtable.h 6.12:757-790).  For a present ``prot``
    this is ``(pfn << 12) | (prot & default_kernel_pte_mask & supported_pte_mask)``.
    """
    protval = prot & default_kernel_pte_mask
    if protval & _PAGE_PRESENT:
        protval &= supported_pte_mask
    if not pae:
        protval &= 0xFFFFFFFF
    frame = pfn << 12
    if pae and protval and not protval & _PAGE_PRESENT:  # protnone_mask()
        frame = ~frame
    frame &= PAE_PFN_MASK if pae else NONPAE_PFN_MASK
    return frame | protval


def compare_pte(actual: int, expected: int,
                fields: tuple[str, ...] | list[str] = ("P", "PFN", "RW", "NX", "G"),
                *, pae: bool = True, level: str = "pte") -> list[str]:
    """Human-readable differences between two entries, restricted to ``fields``.

    ``fields`` may name any bit of :data:`PTE_BITS` (plus the aliases "PAT"
    and "PS" for bit 7) and "PFN".  Returns e.g.
    ``["PFN: expected 0x123456, got 0x123457", "NX: expected set, got clear"]``;
    an empty list means the entries agree on every requested field.
    """
    if actual == expected:  # the common case: no field can differ
        for field in fields:
            if field.upper() != "PFN" and field.upper() not in _FIELD_BITS:
                raise ValueError(f"unknown PTE field {field!r}")
        return []
    a = decode_entry(actual, pae=pae, level=level)
    e = decode_entry(expected, pae=pae, level=level)
    out: list[str] = []
    for field in fields:
        key = field.upper()
        if key == "PFN":
            if a.pfn != e.pfn:
                out.append(f"PFN: expected {e.pfn:#x}, got {a.pfn:#x}")
            continue
        if key not in _FIELD_BITS:
            raise ValueError(f"unknown PTE field {field!r}")
        bit = _FIELD_BITS[key]
        want, got = (e.value >> bit) & 1, (a.value >> bit) & 1
        if want != got:
            word = {1: "set", 0: "clear"}
            out.append(f"{key}: expected {word[want]}, got {word[got]}")
    return out
