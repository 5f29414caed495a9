"""harness.kernel's reports on a hand-built kernel: page tables in fake physical memory, kernel
structures in its lowmem, and a fake target answering gdb's expressions. Addresses and
values are modelled on the 6.12 HIGHMEM64G guest with hm_hold.ko loaded (PKMAP slots 1-3,
kmap_local slot 0 of CPU 1 at 0xfffab000, a vmap of pages above/below 4 GiB and lowmem)."""

import json
import re
import struct

import pytest

from harness.core.gdb_text import parse_symbol, parse_xp
from harness.core.layout import LayoutInputs, compute_layout
from harness.frontends.inspect_args import GDB_COMMANDS, gdb_argv, parse_hold_lines
from harness.kernel import reports
from harness.kernel.target import (
    Kernel,
    SymbolMissing,
    addr_expr,
    count_expr,
    offset_expr,
    read_layout,
    size_expr,
    value_expr,
)
from tests.unit.fakemem import FakePhysMem

PAGE_OFFSET = 0xC0000000
CR3, PMD, PKMAP_PT, FIXMAP_PT, VMALLOC_PT = 0x004FE500, 0x014F7000, 0x01543000, 0x014F8000, \
    0x01600000
KERNEL = 0x8000000000000163           # P RW A D G NX
MEM_MAP, PAGE_STRUCT = 0xF2974000, 32
PKMAP_COUNT, PCPU_HOT, PER_CPU_OFFSET = 0xC1320000, 0xC1300000, 0xC1310000
SINGLE, VMAP_AREAS, VM_STRUCTS = 0xC1330000, 0xC1340000, 0xC1350000
INIT_TASK, IDLE1, HOLDER, SPINNER, APP, APP_T = (0xC1100000 + i * 0x1000 for i in range(6))
TS = {"cpu": 12, "pid": 16, "tasks": 24, "thread_node": 32, "signal": 40, "comm": 48,
      "kmap_ctrl": 64}
VMAP = 0xF7E64000


class FakeTarget:
    """The Target protocol over FakePhysMem: lowmem VA = phys + PAGE_OFFSET."""

    def __init__(self, mem: FakePhysMem, ints: dict[str, int], cr3: int, cr4: int) -> None:
        self.mem, self.ints, self.cr3, self.cr4, self.cpu = mem, ints, cr3, cr4, 0

    def int_value(self, expr: str) -> int:
        if expr in self.ints:
            return self.ints[expr]
        m = re.fullmatch(r"\(int\)pkmap_count\[(\d+)\]", expr)
        if m:
            return struct.unpack("<i", self.read_virt(PKMAP_COUNT + 4 * int(m[1]), 4))[0]
        raise SymbolMissing(expr)

    def read_phys(self, addr: int, size: int) -> bytes:
        return self.mem.read(addr, size)

    def read_virt(self, addr: int, size: int) -> bytes:
        assert addr >= PAGE_OFFSET, f"not lowmem: {addr:#x}"
        return self.mem.read(addr - PAGE_OFFSET, size)

    def symbol(self, addr: int) -> str | None:
        return "hm_hold_init+0x1d" if addr == 0xF7E181BD else None


def kernel_ints(pae: bool = True) -> dict[str, int]:
    ints = {
        value_expr("high_memory"): 0xF75FE000, value_expr("highstart_pfn"): 0x375FE,
        value_expr("__FIXADDR_TOP"): 0xFFFFF000, value_expr("FIX_KMAP_BEGIN"): 68,
        value_expr("FIX_KMAP_END"): 131, value_expr("__end_of_fixed_addresses"): 1025,
        value_expr("__end_of_permanent_fixed_addresses"): 133,
        count_expr("((struct task_struct *)0)->kmap_ctrl.pteval"): 16,
        count_expr("__per_cpu_offset"): 4, size_expr("struct cpu_entry_area"): 176128,
        count_expr("pkmap_count"): 512 if pae else 1024, value_expr("mem_map"): MEM_MAP,
        size_expr("struct page"): PAGE_STRUCT, value_expr("max_pfn"): 0x240000,
        addr_expr("pkmap_count"): PKMAP_COUNT, value_expr("pkmap_page_table"): PKMAP_PT
        + PAGE_OFFSET, value_expr("__kmap_pte"): FIXMAP_PT + PAGE_OFFSET + 0x1BB * 8,
        value_expr("__cpu_online_mask.bits[0]"): 0b11, addr_expr("pcpu_hot"): PCPU_HOT,
        offset_expr("struct pcpu_hot", "current_task"): 0,
        addr_expr("__per_cpu_offset"): PER_CPU_OFFSET, addr_expr("init_task"): INIT_TASK,
        offset_expr("struct kmap_ctrl", "pteval"): 4,
        offset_expr("struct signal_struct", "thread_head"): 8,
        addr_expr("'vmalloc.c'::single"): SINGLE, value_expr("nr_vmap_nodes"): 1,
        size_expr("struct vmap_node"): 3140, offset_expr("struct vmap_node", "busy.head"): 3080,
        size_expr("struct vmap_area"): 36, size_expr("struct vm_struct"): 40,
    }
    for member, off in TS.items():
        ints[offset_expr("struct task_struct", "thread_info.cpu" if member == "cpu"
                         else member)] = off
    for member, off in {"list": 12, "vm": 28, "flags": 32}.items():
        ints[offset_expr("struct vmap_area", member)] = off
    for member, off in {"addr": 4, "size": 8, "flags": 12, "pages": 16, "nr_pages": 20,
                        "caller": 32}.items():
        ints[offset_expr("struct vm_struct", member)] = off
    return ints


def virt(mem: FakePhysMem, va: int, data: bytes) -> None:
    mem.write(va - PAGE_OFFSET, data)


def u32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def add_task(mem: FakePhysMem, addr: int, pid: int, comm: str, cpu: int,
             ptevals: list[int], signal: int, pte_size: int = 8) -> None:
    virt(mem, addr + TS["cpu"], u32s(cpu))
    virt(mem, addr + TS["pid"], u32s(pid))
    virt(mem, addr + TS["comm"], comm.encode())
    virt(mem, addr + TS["signal"], u32s(signal))
    virt(mem, addr + TS["kmap_ctrl"], struct.pack("<i", len(ptevals)))
    for i, v in enumerate(ptevals):
        virt(mem, addr + TS["kmap_ctrl"] + 4 + pte_size * i,
             v.to_bytes(8, "little")[:pte_size])


def link(mem: FakePhysMem, heads: list[int]) -> None:
    """A circular list_head list through the given list_head addresses."""
    for i, h in enumerate(heads):
        virt(mem, h, u32s(heads[(i + 1) % len(heads)], heads[i - 1]))


def build_tasks(mem: FakePhysMem, pte_size: int = 8) -> None:
    sig = {t: 0xC1200000 + i * 0x100 for i, t in enumerate((INIT_TASK, IDLE1, HOLDER,
                                                             SPINNER, APP))}
    for addr, pid, comm, cpu, ptevals, s in (
            (INIT_TASK, 0, "swapper/0", 0, [], sig[INIT_TASK]),
            (IDLE1, 0, "swapper/1", 1, [], sig[IDLE1]),
            (HOLDER, 65, "hm_hold", 0, [0x800000023E402163], sig[HOLDER]),
            (SPINNER, 66, "spinner", 1, [0x800000023E406163], sig[SPINNER]),
            (APP, 70, "app", 0, [], sig[APP]),
            (APP_T, 71, "app-worker", 0, [0x80000000BF805163], sig[APP])):
        add_task(mem, addr, pid, comm, cpu, ptevals, s, pte_size)
    link(mem, [t + TS["tasks"] for t in (INIT_TASK, HOLDER, SPINNER, APP)])
    for t in (INIT_TASK, IDLE1, HOLDER, SPINNER):
        link(mem, [sig[t] + 8, t + TS["thread_node"]])
    link(mem, [sig[APP] + 8, APP + TS["thread_node"], APP_T + TS["thread_node"]])
    virt(mem, PER_CPU_OFFSET, u32s(0x100000, 0x200000, 0, 0))
    virt(mem, PCPU_HOT + 0x100000, u32s(INIT_TASK))
    virt(mem, PCPU_HOT + 0x200000, u32s(SPINNER))


def build_vmaps(mem: FakePhysMem) -> None:
    areas = [(VMAP, 4 * 4096, 0x4, 0), (0xF7E00000, 2 * 4096, 0x2, 0),
             (0xF7E70000, 2 * 4096, 0x204, 0xC1360000)]
    heads = [SINGLE + 3080]
    for i, (start, size, flags, pages) in enumerate(areas):
        va, vm = VMAP_AREAS + i * 0x40, VM_STRUCTS + i * 0x40
        virt(mem, va, u32s(start, start + size))
        virt(mem, va + 28, u32s(vm))
        virt(mem, vm + 4, u32s(start, size, flags, pages, 1 if pages else 0))
        virt(mem, vm + 32, u32s(0xF7E181BD))
        heads.append(va + 12)
    virt(mem, VMAP_AREAS + 3 * 0x40, u32s(0xF7F00000, 0xF7F40000))    # vm_map_ram block
    virt(mem, VMAP_AREAS + 3 * 0x40 + 32, u32s(2))
    heads.append(VMAP_AREAS + 3 * 0x40 + 12)
    link(mem, heads)
    virt(mem, 0xC1360000, u32s(MEM_MAP + 0x23E501 * PAGE_STRUCT))      # pages[0] != PTE
    for va, pfn in ((VMAP, 0x23E403), (VMAP + 0x1000, 0xBF801), (VMAP + 0x2000, 0x403),
                    (0xF7E70000, 0x23E500)):
        mem.write_u64(VMALLOC_PT + ((va >> 12) & 0x1FF) * 8, KERNEL | pfn << 12)


@pytest.fixture
def pae_target() -> FakeTarget:
    mem = FakePhysMem()
    mem.write_u64(CR3 + 3 * 8, PMD | 0x21)                    # PDPTE[3]: P A
    for idx, table in ((507, PKMAP_PT), (511, FIXMAP_PT), (447, VMALLOC_PT)):
        mem.write_u64(PMD + idx * 8, table | 0x67)
    for slot, pfn in ((1, 0x23E400), (2, 0xBF800), (3, 0x23E401)):
        mem.write_u64(PKMAP_PT + slot * 8, KERNEL | pfn << 12)
    virt(mem, PKMAP_COUNT, struct.pack("<4i", 0, 2, 2, 1))
    mem.write_u64(FIXMAP_PT + 0x1AB * 8, 0x800000023E406163)  # CPU 1 slot 0: the spinner
    build_tasks(mem)
    build_vmaps(mem)
    return FakeTarget(mem, kernel_ints(), CR3, 0x6B0)        # CR4.PAE set


def test_pte_report_pae_above_4g(pae_target):
    r = reports.pte_report(pae_target, 0xFF601000)
    assert [lv.name for lv in r.levels] == ["PDPTE", "PMD", "PTE"]
    assert [lv.flags for lv in r.levels] == ["P A", "P RW US A D", "P RW A D G NX"]
    assert r.present and r.phys == 0x23E400000 and r.pfn == 0x23E400
    assert r.page == MEM_MAP + 0x23E400 * PAGE_STRUCT and r.highmem
    assert r.area == "PKMAP slot 1"
    assert r.notes == ["pkmap_count[1] = 2: mapped, 1 user"]
    text = r.format()
    assert "PTE    [  1] @ 0x001543008 = 800000023e400163  P RW A D G NX" in text
    assert "PFN 0x23e400 (highmem, above 4 GiB)" in text
    data = json.loads(json.dumps(r.to_json()))
    assert data["levels"][2]["value"] == "0x800000023e400163"  # a string: > 53 bits
    assert data["phys"] == "0x23e400000" and data["pfn"] == 0x23E400 and data["va"] == r.va


def test_pte_report_protnone(pae_target):
    pfn = 0x23E407
    protnone = (~(pfn << 12) & 0x000FFFFFFFFFF000) | 0x100    # inverted PFN, G = PROTNONE
    pae_target.mem.write_u64(VMALLOC_PT + 0x67 * 8, protnone)
    r = reports.pte_report(pae_target, 0xF7E67000)
    assert not r.present and r.protnone and r.pfn == pfn
    assert r.levels[-1].flags == "PROTNONE" and r.fault == "PTE not present"
    assert "not mapped: PTE not present (PROTNONE, PFN 0x23e407)" in r.format()


@pytest.mark.parametrize("va,area", [(0xC0100000, "lowmem"), (VMAP, "vmalloc"),
                                     (0xFF603000, "PKMAP slot 3"),
                                     (0xFFFBB000, "kmap_local slot 0 of CPU 0"),
                                     (0xFFFAA000, "kmap_local slot 1 of CPU 1"),
                                     (0xFFFFE000, "fixmap")])
def test_area_names(pae_target, va, area):
    assert reports.pte_report(pae_target, va).area == area


def test_pte_report_kmap_local_names_the_holder(pae_target):
    r = reports.pte_report(pae_target, 0xFFFAB000)
    assert r.pfn == 0x23E406
    assert r.notes == [("held by pid 66 spinner: kmap_ctrl.pteval[0] = 0x800000023e406163, "
                        "running on CPU 1")]
    r = reports.pte_report(pae_target, 0xFFFBB000)          # the sleeping holder's slot
    assert not r.present and r.fault == "PTE not present"
    assert r.notes == [                                     # two sleepers share the slot
        ("held by pid 65 hm_hold: kmap_ctrl.pteval[0] = 0x800000023e402163, "
         "not running, so its PTE is cleared until it is scheduled in"),
        ("held by pid 71 app-worker: kmap_ctrl.pteval[0] = 0x80000000bf805163, "
         "not running, so its PTE is cleared until it is scheduled in")]
    assert reports.pte_report(pae_target, 0xFFFAA000).notes == [
        "no task's kmap_ctrl holds slot 1 of CPU 1"]


def test_kmaps_report(pae_target):
    r = reports.kmaps_report(pae_target)
    assert [(s.nr, s.count, s.pfn, s.stale) for s in r.pkmap] == [
        (1, 2, 0x23E400, False), (2, 2, 0xBF800, False), (3, 1, 0x23E401, True)]
    assert r.pkmap[2].state.startswith("stale")
    assert [(k.cpu, k.slot, k.va, k.pfn, k.holder) for k in r.kmap_local] == [
        (1, 0, 0xFFFAB000, 0x23E406, "pid 66 spinner kmap_ctrl[0]")]
    assert r.current == {0: "pid 0 swapper/0 (kmap_ctrl.idx 0)",
                         1: "pid 66 spinner (kmap_ctrl.idx 1)"}
    by_pid = {t.pid: t for t in r.tasks}
    assert sorted(by_pid) == [65, 66, 71]                   # a thread found via thread_node
    holder = by_pid[65]
    assert not holder.running and holder.entries[0].va == 0xFFFBB000
    assert holder.entries[0].pfn == 0x23E402 and holder.entries[0].live_pte == 0
    assert "restored at sched-in" in holder.entries[0].state
    assert by_pid[66].running and by_pid[66].entries[0].state == "PTE present"
    text = r.format()
    assert "stale: kunmap()ed, PTE kept until flush_all_zero_pkmaps()" in text
    assert "pid 65 hm_hold on CPU 0 (not running" in text
    assert json.loads(json.dumps(r.to_json()))["pkmap"][0]["va"] == 0xFF601000


def test_vmaps_report(pae_target):
    r = reports.vmaps_report(pae_target)
    assert r.busy == 4
    assert r.kinds == {"vmap": 2, "vmalloc": 1, "vm_map_ram": 1}
    assert [a.start for a in r.areas] == [VMAP, 0xF7E70000]
    a = r.areas[0]
    assert a.caller == "hm_hold_init+0x1d" and not a.pages_array
    assert [(p.pfn, p.highmem, p.above_4g) for p in a.pages] == [
        (0x23E403, True, True), (0xBF801, True, False), (0x403, False, False)]
    put = r.areas[1]
    assert put.pages_array and put.flags == "VM_MAP|VM_MAP_PUT_PAGES"
    assert put.notes == ["page 0: pages[] says PFN 0x23e501, the PTE 0x23e500"]
    assert "[  2] 0xf7e66000  P RW A D G NX     PFN     0x403  lowmem" in r.format()


def test_layout_report_checks_the_kernels_pointers(pae_target):
    r = reports.layout_report(pae_target)
    assert r.layout["pkmap_base"] == 0xFF600000 and r.layout["page_offset"] == PAGE_OFFSET
    assert r.fixaddr_start == 0xFFFFF000 - (133 << 12)
    assert r.kmap_local_first == 0xFFFBB000 and r.kmap_local_last == 0xFFF7C000
    assert all(": the PTE of" in c for c in r.checks), r.checks


def test_missing_current_task_symbol_falls_back_to_6_1(pae_target):
    del pae_target.ints[addr_expr("pcpu_hot")]
    pae_target.ints[addr_expr("current_task")] = PCPU_HOT
    assert reports.kmaps_report(pae_target).current[1].startswith("pid 66")


# -- non-PAE (HIGHMEM4G): 2 levels of 32-bit entries, PKMAP in a 4 MiB-aligned table ----

PGD2, PT2 = 0x00100000, 0x00200000


@pytest.fixture
def nonpae_target() -> FakeTarget:
    mem = FakePhysMem()
    t = FakeTarget(mem, kernel_ints(pae=False), PGD2, 0x690)   # CR4.PAE clear
    base = read_layout(Kernel(t)).pkmap_base
    mem.write_u32(PGD2 + (base >> 22) * 4, PT2 | 0x67)
    mem.write_u32(PT2 + 1 * 4, 0xBF800163)                    # no NX bit without PAE
    virt(mem, PKMAP_COUNT, struct.pack("<2i", 0, 2))
    build_tasks(mem, pte_size=4)
    return t


def test_layout_2level_masks_with_4_mib():
    inputs = LayoutInputs(
        page_offset=PAGE_OFFSET, high_memory=0xF75FE000, fixaddr_top=0xFFFFF000,
        fix_kmap_begin=68, fix_kmap_end=131, end_of_fixed_addresses=1025, km_max_idx=16,
        nr_cpus=4, cpu_entry_area_size=176128, last_pkmap=1024)
    lay = compute_layout(inputs, pae=False)
    assert lay.cpu_entry_area_base == 0xFF800000        # (0xffbfe000 - 173 pages) & 4 MiB
    assert lay.pkmap_base == 0xFF000000 and lay.vmalloc_end == 0xFEFFE000


def test_pte_report_2level(nonpae_target):
    r = reports.pte_report(nonpae_target, 0xFF001000)
    assert not r.pae and [lv.name for lv in r.levels] == ["PDE", "PTE"]
    assert r.levels[-1].flags == "P RW A D G" and r.pfn == 0xBF800
    assert r.area == "PKMAP slot 1" and r.notes == ["pkmap_count[1] = 2: mapped, 1 user"]
    assert "= bf800163  P RW A D G" in r.format() and "2-level" in r.format()


def test_kmaps_report_2level(nonpae_target):
    r = reports.kmaps_report(nonpae_target)
    assert r.last_pkmap == 1024
    assert [(s.nr, s.va, s.pte, s.pfn) for s in r.pkmap] == [(1, 0xFF001000, 0xBF800163,
                                                              0xBF800)]
    holder = next(t for t in r.tasks if t.pid == 65)
    assert holder.entries[0].pteval == 0x3E402163             # 32-bit pte_t: no NX
    assert holder.entries[0].flags == "P RW A D G"


# -- small pure parts -------------------------------------------------------------------

def test_parse_xp_and_symbol():
    text = "00000000014f7000: 0x00000000014f7021 0x0000000000000000\n"
    assert parse_xp(text, 16) == struct.pack("<QQ", 0x14F7021, 0)
    assert parse_symbol("pvh_start_xen + 16 in section .text") == "pvh_start_xen+0x10"
    assert parse_symbol("hm_hold_init in section .init.text of /x/hm_hold.ko") == \
        "hm_hold_init"
    assert parse_symbol("No symbol matches 0x1.") is None


def test_parse_hold_lines():
    dmesg = ("[ 6.17] hm_hold: kmap above_4g va=0xff601000 pfn=0x23e400\n"
             "[ 6.17] hm_hold: vmap[7] va=0xf7e6b000 pfn=0x406\n"
             "[ 6.18] hm_hold: kmap_local va=0xfffbb000 pfn=0x23e402 cpu=0 pid=62\n"
             "[ 6.21] hm_hold: ready\n")
    assert parse_hold_lines(dmesg) == [
        {"kind": "kmap above_4g", "va": 0xFF601000, "pfn": 0x23E400},
        {"kind": "vmap[7]", "va": 0xF7E6B000, "pfn": 0x406},
        {"kind": "kmap_local", "va": 0xFFFBB000, "pfn": 0x23E402}]


def test_gdb_argv_order(tmp_path):
    class KB:
        vmlinux, gdb_script = tmp_path / "vmlinux", tmp_path / "vmlinux-gdb.py"
    argv = gdb_argv(KB(), tmp_path / "gdb.sock", lx_symbols=True)  # type: ignore[arg-type]
    ex = [argv[i + 1] for i, a in enumerate(argv) if a == "-ex"]
    assert ex == ["set pagination off", f"source {tmp_path}/vmlinux-gdb.py",
                  f"target remote {tmp_path}/gdb.sock", "lx-symbols"]
    assert argv[-2:] == ["-x", str(GDB_COMMANDS)]


def test_inspect_json_writes_no_number_beyond_53_bits(pae_target):
    """`highmem pte/kmaps/vmaps/layout --json`: every PTE value and physical address a
    "0x..." string (a PAE PTE with NX read as a jq 1.6 double is another PTE); virtual
    addresses and PFNs numbers."""
    from harness.core.hexjson import read_int, unsafe_numbers
    va = 0xFF601000
    for r in (reports.pte_report(pae_target, va), reports.kmaps_report(pae_target),
              reports.vmaps_report(pae_target), reports.layout_report(pae_target)):
        data = json.loads(json.dumps(r.to_json()))
        assert not unsafe_numbers(data), type(r).__name__
    k = json.loads(json.dumps(reports.kmaps_report(pae_target).to_json()))
    slot = k["pkmap"][0]
    assert isinstance(slot["pte"], str) and isinstance(slot["va"], int)
    assert read_int(slot["pte"]) == reports.kmaps_report(pae_target).pkmap[0].pte
    v = json.loads(json.dumps(reports.vmaps_report(pae_target).to_json()))
    assert all(isinstance(p["pte"], str) for a in v["areas"] for p in a["pages"])
