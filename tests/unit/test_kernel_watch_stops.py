"""The watch at a stop (stages/kernel_watch.py Watch.on_stop) over a fake gdb (registers)
and fake guest RAM (page tables, a task_struct, the per-CPU current pointer): a
kunmap_local_indexed() entry is judged from RAM; the slot it unmapped is judged cleared at
that CPU's next stop, and a PTE left there is found; a stale PTE in any free slot is found
once."""

from harness.kernel.watch_facts import ENTRIES, UNMAP_LOCAL, Facts
from harness.stages.kernel_watch import Watch
from tests.unit.fakemem import FakePhysMem
from tests.unit.test_kernel_watch import K, LOCAL

CR3, PMD, PTES = 0x1000, 0x2000, 0x3000
CURRENT, TASK = 0xC0100000, 0xC0200000       # lowmem: phys = va - 0xC0000000
KMAP_CTRL, PTEVAL = 0x40, 0x8
ENTRY = {fn: 0xC1000000 + 0x100 * i for i, fn in enumerate(ENTRIES)}
CPU, PTE = LOCAL["cpu"], LOCAL["pte"]


class FakeGdb:
    def __init__(self) -> None:
        self.regs: dict[str, int] = {}

    def registers(self, names: tuple[str, ...]) -> dict[str, int]:
        return {n: self.regs.get(n, 0) for n in names}


def guest() -> tuple[Watch, FakeGdb, FakePhysMem]:
    mem = FakePhysMem()
    slot0 = K.slot_va(CPU, 0)
    mem.write_u64(CR3 + 8 * (slot0 >> 30), PMD | 1)
    mem.write_u64(PMD + 8 * ((slot0 >> 21) & 0x1FF), PTES | 0x63)
    mem.write_u32(CURRENT - K.layout.page_offset, TASK)
    facts = Facts(K, K.layout.page_offset, K.layout.high_memory, {CPU: CURRENT}, KMAP_CTRL,
                  PTEVAL, 0, 0, 64, 8, ENTRY)
    gdb = FakeGdb()
    w = Watch(gdb, mem, facts, lambda a: "copy_page_to_iter+0x10")  # type: ignore[arg-type]
    return w, gdb, mem


def set_slot(mem: FakePhysMem, slot: int, pte: int) -> None:
    mem.write_u64(PTES + 8 * ((K.slot_va(CPU, slot) >> 12) & 0x1FF), pte)


def set_task(mem: FakePhysMem, idx: int, ptevals: list[int]) -> None:
    base = TASK - K.layout.page_offset + KMAP_CTRL
    mem.write_u32(base, idx)
    for i, v in enumerate(ptevals):
        mem.write_u64(base + PTEVAL + 8 * i, v)


def stop(w: Watch, gdb: FakeGdb, pc: int, eax: int = 0) -> None:
    gdb.regs = {"eax": eax, "esp": 0xC0300000, "cr3": CR3, "cr4": 1 << 5}
    w.on_stop({"thread-id": str(CPU + 1), "frame": {"addr": hex(pc)}})


def test_an_unmap_is_judged_live_then_cleared_at_the_next_stop():
    w, gdb, mem = guest()
    set_task(mem, 1, [PTE])
    set_slot(mem, 0, PTE)
    stop(w, gdb, ENTRY[UNMAP_LOCAL], K.slot_va(CPU, 0))
    assert (w.tally.live["kmap_local"], w.tally.findings) == (1, [])
    set_task(mem, 0, [])
    set_slot(mem, 0, 0)                                     # what pte_clear() did
    stop(w, gdb, 0xC1234567)                                # the CPU's next stop
    assert (w.tally.cleared["kmap_local"], w.tally.findings) == (1, [])


def test_a_pte_left_after_unmap_is_found():
    w, gdb, mem = guest()
    set_task(mem, 1, [PTE])
    set_slot(mem, 0, PTE)
    stop(w, gdb, ENTRY[UNMAP_LOCAL], K.slot_va(CPU, 0))
    set_task(mem, 0, [])                                    # popped, PTE left
    stop(w, gdb, 0xC1234567)
    [f] = w.tally.findings
    assert (f.kind, f.when, f.field) == ("kmap_local", "after unmap", "PTE")


def test_a_wrong_live_pte_is_found_with_its_caller():
    w, gdb, mem = guest()
    set_task(mem, 1, [PTE])
    set_slot(mem, 0, PTE & ~(1 << 63))
    stop(w, gdb, ENTRY[UNMAP_LOCAL], K.slot_va(CPU, 0))
    assert [(f.field, f.where) for f in w.tally.findings] == \
        [("PTEVAL", "copy_page_to_iter+0x10"), ("NX", "copy_page_to_iter+0x10")]


def test_a_stale_pte_in_a_free_slot_is_found_once_and_held_slots_are_not_judged():
    w, gdb, mem = guest()
    set_task(mem, 2, [PTE, PTE])
    set_slot(mem, 0, PTE)
    set_slot(mem, 1, PTE)                                   # held: idx 2
    set_slot(mem, 5, PTE)                                   # free, but a PTE
    stop(w, gdb, 0xC1234567)
    stop(w, gdb, 0xC1234567)
    [f] = w.tally.findings
    assert (f.when, f.va) == ("free slot", K.slot_va(CPU, 5))


def test_the_map_entry_gives_the_pfn_a_wrong_pte_and_pteval_are_judged_against():
    from harness.kernel.watch_facts import MAP_LOCAL
    w, gdb, mem = guest()
    pfn = LOCAL["mapped"][0]
    set_task(mem, 0, [])
    gdb.regs = {"eax": pfn, "edx": 0x163, "ecx": 0x80000000, "esp": 0xC0300000, "cr3": CR3,
                "cr4": 1 << 5}
    w.on_stop({"thread-id": str(CPU + 1), "frame": {"addr": hex(ENTRY[MAP_LOCAL])}})
    assert w.maps == {(TASK, 0): (pfn, 0x8000000000000163)}
    wrong = PTE + 0x1000                                    # both the PTE and kmap_ctrl's copy
    set_task(mem, 1, [wrong])
    set_slot(mem, 0, wrong)
    stop(w, gdb, ENTRY[UNMAP_LOCAL], K.slot_va(CPU, 0))
    assert [f.field for f in w.tally.findings] == ["PFN"] and not w.maps
