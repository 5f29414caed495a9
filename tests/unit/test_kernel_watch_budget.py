"""The watch's stop budget (stages/kernel_watch.py) over a fake gdb: past N stops in a
second the entry breakpoints are disabled in one command and what was remembered of maps is
dropped; after the pause they are enabled again."""

from harness.kernel.watch_facts import ENTRIES, Facts
from harness.stages.kernel_watch import Watch
from tests.unit.test_kernel_watch import K


class FakeGdb:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def cmd(self, command: str, timeout: float | None = None) -> tuple[dict, list[str]]:
        self.sent.append(command)
        return {"payload": {"bkpt": {"number": str(len(self.sent))}}}, []


def watch(budget: float) -> tuple[Watch, FakeGdb]:
    facts = Facts(K, K.layout.page_offset, K.layout.high_memory, {0: 0, 1: 0}, 0, 0, 0, 0, 64,
                  8, {fn: 0xC1000000 + 0x100 * i for i, fn in enumerate(ENTRIES)})
    gdb = FakeGdb()
    w = Watch(gdb, None, facts, lambda a: "", budget=budget)  # type: ignore[arg-type]
    w.arm()
    return w, gdb


def test_arm_inserts_one_breakpoint_per_entry_and_filters_kunmap_local_on_eax():
    w, gdb = watch(10)
    inserts = [c for c in gdb.sent if c.startswith("-break-insert")]
    assert len(inserts) == len(ENTRIES) and len(w.entry_bkpts) == len(ENTRIES)
    cond = [c for c in gdb.sent if "-c " in c]
    lo = K.layout.fix_to_virt(K.layout.fix_kmap_end)
    assert len(cond) == 1 and f"$eax >= {lo:#x}" in cond[0]


def test_without_map_entries_kmap_local_maps_are_not_stopped_at():
    facts = watch(10)[0].facts
    gdb = FakeGdb()
    w = Watch(gdb, None, facts, lambda a: "", map_entries=False)  # type: ignore[arg-type]
    w.arm()
    assert facts.entries["__kmap_local_pfn_prot"] not in w.entry_bkpts
    assert len(w.entry_bkpts) == len(ENTRIES) - 1


def test_budget_pauses_the_entry_breakpoints_and_forgets_maps():
    w, gdb = watch(3)
    w.maps[(1, 0)] = (5, 0x163)
    w.areas[0xF8000000] = ("vmap", [5], 0x163)
    for i in range(3):
        w._count_stop(100.0 + i * 0.1)
    assert not w.paused_until and w.maps
    w._count_stop(100.35)
    assert gdb.sent[-1].startswith("-break-disable ") and len(gdb.sent[-1].split()) == 1 + 7
    assert (w.paused_until, w.tally.paused, w.maps, w.areas) == (101.35, 1, {}, {})
    w._count_stop(100.4)                 # a return breakpoint while paused: no second disable
    assert w.tally.paused == 1 and w.tally.stops == 5
    w._unpause()
    assert gdb.sent[-1].startswith("-break-enable ") and not w.paused_until


def test_stops_spread_over_seconds_stay_within_the_budget():
    w, gdb = watch(3)
    for i in range(20):
        w._count_stop(100.0 + i * 0.5)    # 2 a second
    assert w.tally.paused == 0 and not any("disable" in c for c in gdb.sent)
