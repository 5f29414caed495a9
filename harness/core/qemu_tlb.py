"""QEMU's own page walk as text (pure): `info tlb` and `gva2gpa` answers of the i386
monitor (QEMU 7.2 target/i386/monitor.c: `print_pte` prints `VA: PA FLAGS`, a large page
once at its base), read back so that every PTE assertion is cross-checked by QEMU.
"""

import re

from .pte import PAE_PFN_MASK

TLB_LINE = re.compile(r"^[ \t]*([0-9a-f]{8,16}): ([0-9a-f]{8,16}) ([-XGPDACTUW]{9})[ \t]*\r?$",
                      re.MULTILINE)
GPA = re.compile(r"gpa:\s*(0x[0-9a-fA-F]+)")


def parse_tlb(text: str) -> dict[int, tuple[int, str]]:
    """`info tlb`: {va: (pa without the NX bit QEMU leaves in it, flags)}."""
    return {int(va, 16): (int(pa, 16) & PAE_PFN_MASK, flags)
            for va, pa, flags in TLB_LINE.findall(text)}


def tlb_translate(tlb: dict[int, tuple[int, str]], va: int, pae: bool = True) -> int | None:
    """The physical address QEMU maps `va` to, from a parsed `info tlb` (a 4 KiB page, or
    a large page: 2 MiB with PAE, 4 MiB without, flagged P); None if not mapped."""
    page = tlb.get(va & ~0xFFF)
    if page is not None:
        return page[0] | (va & 0xFFF)
    big = 0x1FFFFF if pae else 0x3FFFFF
    large = tlb.get(va & ~big)
    if large is not None and "P" in large[1]:
        return large[0] + (va & big)
    return None


def parse_gva2gpa(text: str) -> int | None:
    """`gva2gpa VA` -> the guest physical address, None for "Unmapped"."""
    m = GPA.search(text)
    return int(m.group(1), 16) if m else None
