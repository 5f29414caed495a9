"""Checkpoint stage, pure: read a module's `struct hm_expect` and judge page walks
against it. The C side is modules/hm_checkpoint.h (HM_CP_VERSION 1); this file mirrors it.

Nothing here does I/O: `checker.py` fetches bytes and walks through gdb, then calls
`judge_entry`. A checkpoint can hold several PTE assertions (a vmap range has one per page).
"""

import functools
import struct
from dataclasses import dataclass, field

from . import pte as ptemod
from .hexjson import hex64
from .layout import Layout
from .pagewalk import Walk

MAGIC = 0x50434D48
VERSION = 1
EXPECT = struct.Struct("<IHHIIQIIIIQII56s")  # struct hm_expect, __packed, 112 bytes
RANGE_ENTRY = struct.Struct("<IIQ")          # struct hm_range_entry, 16 bytes
assert EXPECT.size == 112 and RANGE_ENTRY.size == 16

KINDS = {1: "mapped", 2: "unmapped", 3: "range", 4: "stale", 5: "range_unmapped"}
PROT_ANY = 3
PROTS = {0: ("none", 0), 1: ("PAGE_KERNEL", ptemod.PAGE_KERNEL_FLAGS),
         2: ("PAGE_KERNEL_RO", ptemod.PAGE_KERNEL_RO_FLAGS),
         PROT_ANY: ("any", ptemod.PAGE_KERNEL_FLAGS)}
VERDICT_PASS, VERDICT_FAIL = 1, 2
VERDICT_OFFSET = 32
MAPPED_FIELDS = ("P", "PFN", "RW", "NX", "G")
ANY_FIELDS = ("P", "PFN")
CHECK_CONTENT, CHECK_PKMAP_COUNT = 0x1, 0x2
CHECK_CONTENT_AT = 0x4  # with CHECK_CONTENT: the u64 at byte offset aux of the page


def content_offset(flags: int, aux: int) -> int:
    """The byte offset in the page of the u64 a content check reads (0 unless
    CHECK_CONTENT_AT; parse_expect refuses an offset past the page's last u64)."""
    return aux if flags & CHECK_CONTENT_AT else 0
WHERE_KMAP_LOCAL, WHERE_PKMAP, WHERE_VMALLOC, WHERE_LOWMEM = 1, 2, 3, 4


class ExpectError(ValueError):
    """The bytes at the checkpoint are not a struct hm_expect this harness understands."""


@dataclass(frozen=True)
class Expect:
    """One `struct hm_expect` as the module filled it in."""

    kind: str
    prot: int
    va: int
    pfn: int
    count: int
    entries: int
    label: str
    where: int = 0
    content: int = 0
    flags: int = 0
    aux: int = 0

    @property
    def where_area(self) -> int:
        return self.where >> 28

    @property
    def slot(self) -> tuple[int, int]:
        """(cpu, depth) of a HM_WHERE_KMAP_LOCAL expectation."""
        return (self.where >> 16) & 0xFFF, self.where & 0xFFFF

    @property
    def prot_name(self) -> str:
        return PROTS.get(self.prot, (f"prot#{self.prot}", 0))[0]

    @property
    def prot_flags(self) -> int:
        return PROTS.get(self.prot, ("", 0))[1]


def parse_expect(raw: bytes) -> Expect:
    if len(raw) < EXPECT.size:
        raise ExpectError(f"{len(raw)} bytes, struct hm_expect has {EXPECT.size}")
    magic, version, kind, prot, va, pfn, count, entries, _verdict, where, content, flags, \
        aux, label = EXPECT.unpack(raw[:EXPECT.size])
    if magic != MAGIC:
        raise ExpectError(f"bad magic {magic:#x} (want {MAGIC:#x}): not a struct hm_expect")
    if version != VERSION:
        raise ExpectError(f"struct hm_expect version {version}, this harness reads {VERSION}: "
                          "rebuild the module against this checkout's modules/hm_checkpoint.h")
    if kind not in KINDS:
        raise ExpectError(f"unknown checkpoint kind {kind}")
    if prot not in PROTS:
        raise ExpectError(f"unknown protection {prot}")
    if where >> 28 > WHERE_LOWMEM:
        raise ExpectError(f"unknown address expectation {where:#x}")
    if flags & CHECK_CONTENT_AT and (aux > 4096 - 8 or flags & CHECK_PKMAP_COUNT):
        raise ExpectError(f"content offset {aux}: past the page's last u64 (4088), or "
                          "with HM_CHECK_PKMAP_COUNT (both use aux)")
    return Expect(kind=KINDS[kind], prot=prot, va=va, pfn=pfn, count=count, entries=entries,
                  label=label.split(b"\0", 1)[0].decode(errors="replace"), where=where,
                  content=content, flags=flags, aux=aux)


def parse_range(raw: bytes, count: int) -> list[tuple[int, int]]:
    """(va, pfn) pairs of a range checkpoint (`struct hm_range_entry[count]`)."""
    if len(raw) < count * RANGE_ENTRY.size:
        raise struct.error(f"{len(raw)} bytes hold fewer than {count} range entries")
    return [(va, pfn) for va, _pad, pfn in RANGE_ENTRY.iter_unpack(raw[:count * RANGE_ENTRY.size])]


@dataclass(frozen=True)
class KernelMasks:
    """The running kernel's `__default_kernel_pte_mask` and `__supported_pte_mask`
    (pteval_t, 64-bit with PAE): PTI clears G in the first, no CPU NX clears NX in the second."""

    default_kernel_pte_mask: int
    supported_pte_mask: int
    pae: bool = True


@dataclass(slots=True)
class PteCheck:
    """One PTE assertion: what was expected at `va`, what the walk found, the verdict."""

    label: str
    kind: str
    va: int
    expected: int | None        # full expected pte_t value (None: only "PTE == 0")
    actual: int | None          # the PTE (None: the walk stopped above the PTE level)
    flags: str
    pfn: int | None
    mismatches: list[str] = field(default_factory=list)
    qemu_phys: int | None = None  # QEMU's gva2gpa, the independent translation
    walk_phys: int | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, object]:
        """Its fields and `passed`; the PTE values and physical addresses as "0x..."
        strings (core/hexjson.py: a PAE PTE does not fit a JSON number), va and pfn as
        numbers."""
        return {"label": self.label, "kind": self.kind, "va": self.va,
                "expected": hex64(self.expected), "actual": hex64(self.actual),
                "flags": self.flags, "pfn": self.pfn, "mismatches": list(self.mismatches),
                "qemu_phys": hex64(self.qemu_phys), "walk_phys": hex64(self.walk_phys),
                "passed": not self.mismatches}


@functools.lru_cache(maxsize=256)
def _flags_text(bits: int, pae: bool) -> str:
    """format_flags of a 4 KiB PTE whose non-frame bits are `bits` (the flag names do not
    depend on the frame: a range's thousands of PTEs share a handful of these)."""
    return ptemod.format_flags(ptemod.decode_entry(bits, pae=pae))


def judge_fast(label: str, kind: str, va: int, expected: int, pte: int | None,
               qemu_phys: int | None, pae: bool) -> PteCheck | None:
    """The PteCheck `judge_entry` returns for an address whose 4 KiB PTE (`pte`, read at
    the PTE level; None: the walk stopped above it) is exactly what was expected and QEMU
    agrees, built without a Walk or a decode: mapped/stale, `pte` == `expected`, present,
    QEMU translating `va` where the PTE does; unmapped, `pte` 0 and QEMU finding nothing.
    None for every other address, which `judge_entry` then judges (and names what differs).
    `expected` is `expected_kernel_pte()` of the address's pfn; not for PROT_ANY checkpoints.
    """
    if kind == "unmapped":
        if pte == 0 and qemu_phys is None:
            return PteCheck(label, kind, va, 0, 0, "-", 0, [], None, None)
        return None
    if pte != expected or pte is None or not pte & 1:
        return None
    frame_mask = ptemod.PAE_PFN_MASK if pae else ptemod.NONPAE_PFN_MASK
    phys = (pte & frame_mask) | (va & 0xFFF)
    if qemu_phys != phys:
        return None
    return PteCheck(label, kind, va, expected, pte, _flags_text(pte & ~frame_mask, pae),
                    (pte & frame_mask) >> 12, [], qemu_phys, phys)


def judge_entry(label: str, kind: str, va: int, pfn: int, prot_flags: int,
                walk: Walk, masks: KernelMasks, qemu_phys: int | None,
                any_prot: bool = False) -> PteCheck:
    """Judge one address. mapped/stale: the PTE maps `pfn` with the flags `prot_flags` gets
    after the kernel's masks (P, PFN, RW, NX, G compared, each named when it differs), and
    QEMU's own translation agrees; unmapped: the PTE is 0. A walk that could not read the
    tables (`walk.error`: an entry points outside RAM) fails either kind, the entry named."""
    actual = walk.pte
    info = ptemod.decode_entry(actual, pae=masks.pae) if actual is not None else None
    check = PteCheck(label=label, kind=kind, va=va, expected=None, actual=actual,
                     flags=ptemod.format_flags(info) if info else "(no PTE)",
                     pfn=info.pfn if info else None, qemu_phys=qemu_phys, walk_phys=walk.phys)
    if walk.error is not None:
        check.expected = 0 if kind == "unmapped" else ptemod.expected_kernel_pte(
            pfn, prot_flags, masks.default_kernel_pte_mask, masks.supported_pte_mask,
            pae=masks.pae)
        check.mismatches.append(f"tables: {walk.error}")
        return check
    if kind == "unmapped":
        check.expected = 0
        if actual not in (None, 0):
            check.mismatches.append(f"PTE: expected 0 after unmap, got {actual:#x}")
        if qemu_phys is not None:
            check.mismatches.append(f"QEMU: gva2gpa still translates to {qemu_phys:#x}")
        return check
    expected = ptemod.expected_kernel_pte(pfn, prot_flags, masks.default_kernel_pte_mask,
                                          masks.supported_pte_mask, pae=masks.pae)
    check.expected = expected
    if actual is None:
        check.mismatches.append(f"PTE: walk stopped: {walk.fault or 'no 4 KiB PTE'}")
        return check
    if any_prot:
        # lowmem: the direct map may use a large page; only the translation is judged
        if walk.phys is None or walk.phys >> 12 != pfn:
            got = f"{walk.phys >> 12:#x}" if walk.phys is not None else "none"
            check.mismatches.append(f"PFN: expected {pfn:#x}, got {got}")
        check.pfn = walk.phys >> 12 if walk.phys is not None else None
    elif walk.page_size != 4096:
        check.mismatches.append(f"PTE: a {walk.page_size // 1024} KiB large page, not 4 KiB")
    else:
        check.mismatches += ptemod.compare_pte(actual, expected, MAPPED_FIELDS, pae=masks.pae)
    if walk.phys is not None and qemu_phys is not None and walk.phys != qemu_phys:
        check.mismatches.append(f"QEMU: gva2gpa gives {qemu_phys:#x}, our walk {walk.phys:#x}")
    elif walk.phys is not None and qemu_phys is None:
        check.mismatches.append("QEMU: gva2gpa finds no mapping where our walk does")
    return check


def judge_where(e: Expect, va: int, pfn: int, layout: Layout) -> list[str]:
    """The address expectation of a checkpoint against the running kernel's layout."""
    area = e.where_area
    if area == WHERE_KMAP_LOCAL:
        cpu, depth = e.slot
        want = layout.kmap_local_va(cpu, depth)
        if va != want:
            return [f"VA: expected the kmap_local slot of CPU {cpu} at depth {depth}, "
                    f"{want:#x}, got {va:#x} ({layout.area_of(va)})"]
    elif area == WHERE_PKMAP and not layout.in_pkmap(va):
        return [f"VA: expected in PKMAP [{layout.pkmap_base:#x}, "
                f"{layout.pkmap_va(layout.last_pkmap):#x}), got {va:#x} ({layout.area_of(va)})"]
    elif area == WHERE_VMALLOC and not layout.in_vmalloc(va):
        return [f"VA: expected in vmalloc [{layout.vmalloc_start:#x}, "
                f"{layout.vmalloc_end:#x}), got {va:#x} ({layout.area_of(va)})"]
    elif area == WHERE_LOWMEM and va != layout.page_offset + (pfn << 12):
        return [f"VA: expected page_address() = {layout.page_offset + (pfn << 12):#x}, "
                f"got {va:#x} ({layout.area_of(va)})"]
    return []


def judge_content(expected: int, actual: int, phys: int) -> list[str]:
    if expected != actual:
        return [f"CONTENT: expected {expected:#018x} at phys {phys:#x}, got {actual:#018x}"]
    return []


def judge_pkmap_count(expected: int, actual: int) -> list[str]:
    if expected != actual:
        return [f"PKMAP_COUNT: expected {expected}, got {actual}"]
    return []
