"""struct hm_expect parsing and the PTE verdicts, on hand-built bytes and walks."""

import pytest

from harness.core import checkpoint as cp
from harness.core.pagewalk import walk_pae
from tests.unit.fakemem import FakePhysMem

MASKS = cp.KernelMasks(default_kernel_pte_mask=(1 << 64) - 1, supported_pte_mask=(1 << 64) - 1)
CR3 = 0x1000
VA = 0xFFFBB000          # first kmap_local slot of CPU 0 (6.12, NR_CPUS=4, no debug)
PFN = 0x23F400           # above 4 GiB


def expect_bytes(kind=1, prot=1, va=VA, pfn=PFN, label=b"above 4g: mapped", magic=cp.MAGIC,
                 version=cp.VERSION, count=0, entries=0, where=0, content=0, flags=0, aux=0):
    return cp.EXPECT.pack(magic, version, kind, prot, va, pfn, count, entries, 0, where,
                          content, flags, aux, label)


def tables(pte_value: int) -> FakePhysMem:
    """PDPT at 0x1000 -> PMD table at 0x2000 -> PTE table at 0x3000 for VA."""
    mem = FakePhysMem()
    mem.write_u64(CR3 + 8 * (VA >> 30), 0x2000 | 1)
    mem.write_u64(0x2000 + 8 * ((VA >> 21) & 0x1FF), 0x3000 | 0x63)
    mem.write_u64(0x3000 + 8 * ((VA >> 12) & 0x1FF), pte_value)
    return mem


def judge(pte_value: int, kind="mapped", pfn=PFN, masks=MASKS, qemu=None, prot=None):
    w = walk_pae(CR3, VA, tables(pte_value).read)
    prot = cp.PROTS[1][1] if prot is None else prot
    q = w.phys if qemu is None else qemu
    return cp.judge_entry("t", kind, VA, pfn, prot, w, masks, q)


def test_parse_expect_roundtrip():
    e = cp.parse_expect(expect_bytes())
    assert (e.kind, e.va, e.pfn, e.label, e.prot_name) == \
        ("mapped", VA, PFN, "above 4g: mapped", "PAGE_KERNEL")


@pytest.mark.parametrize("kw,msg", [({"magic": 1}, "bad magic"), ({"version": 9}, "version 9"),
                                    ({"kind": 7}, "kind 7"), ({"prot": 9}, "protection 9"),
                                    ({"flags": 5, "aux": 4089}, "offset 4089"),
                                    ({"flags": 7, "aux": 8}, "PKMAP_COUNT")])
def test_parse_expect_rejects(kw, msg):
    with pytest.raises(cp.ExpectError, match=msg):
        cp.parse_expect(expect_bytes(**kw))


def test_content_offset_is_aux_only_with_content_at():
    assert cp.content_offset(cp.CHECK_CONTENT, 1000) == 0
    e = cp.parse_expect(expect_bytes(flags=cp.CHECK_CONTENT | cp.CHECK_CONTENT_AT, aux=4088))
    assert cp.content_offset(e.flags, e.aux) == 4088


def test_parse_range():
    raw = b"".join(cp.RANGE_ENTRY.pack(0xF8000000 + i * 4096, 0, 0x100000 + i) for i in range(3))
    assert cp.parse_range(raw, 3)[2] == (0xF8002000, 0x100002)


def test_mapped_pass():
    c = judge(0x8000000000000163 | PFN << 12)
    assert c.passed and c.pfn == PFN and c.flags == "P RW A D G NX"


@pytest.mark.parametrize("pte,field", [
    (0x8000000000000163 | (PFN + 1) << 12, "PFN"),
    (0x0000000000000163 | PFN << 12, "NX"),
    (0x8000000000000063 | PFN << 12, "G"),
    (0x8000000000000161 | PFN << 12, "RW"),
    (0x8000000000000162 | PFN << 12, "P"),
])
def test_mapped_fail_names_the_field(pte, field):
    c = judge(pte)
    assert not c.passed
    assert any(m.startswith(field + ":") for m in c.mismatches), c.mismatches


def test_mapped_respects_kernel_masks():
    """With PTI the kernel clears G in __default_kernel_pte_mask: 0x...063 is then right."""
    pti = cp.KernelMasks(default_kernel_pte_mask=~(1 << 8) & ((1 << 64) - 1),
                         supported_pte_mask=(1 << 64) - 1)
    assert judge(0x8000000000000063 | PFN << 12, masks=pti).passed
    assert not judge(0x8000000000000163 | PFN << 12, masks=pti).passed


def test_qemu_disagreement_fails():
    c = judge(0x8000000000000163 | PFN << 12, qemu=0x1234000)
    assert any(m.startswith("QEMU:") for m in c.mismatches)


def test_unmapped_pass_and_fail():
    assert judge(0, kind="unmapped", qemu=None).passed
    c = judge(0x8000000000000163 | PFN << 12, kind="unmapped")
    assert not c.passed and "expected 0 after unmap" in c.mismatches[0]


def test_stale_is_checked_like_mapped():
    assert judge(0x8000000000000163 | PFN << 12, kind="stale").passed
    assert not judge(0, kind="stale").passed
