"""Project commands for an interactive gdb on the harness's guest. Loaded by `highmem gdb`
as `gdb ... -x harness/frontends/gdb_commands.py`, or by hand with `source` in a gdb attached
to QEMU's gdbstub (with vmlinux loaded):

  hm-pte VA [--json]   the full walk of VA (a number or any C expression): CR3, PDPTE,
                       PMD, PTE with decoded flags, phys, PFN, struct page, area
  hm-kmaps [--json]    PKMAP slots in use, kmap_local/kmap_atomic slots with a PTE,
                       tasks holding kmap_local maps (kmap_ctrl)
  hm-vmaps [--json]    VM_MAP vmap areas with their pages' PFNs (highmem or not)
  hm-layout [--json]   the address-space layout computed from the live kernel

The reports are harness/kernel/reports.py's; the target here is gdb itself (parse_and_eval,
memory reads, and `monitor xp` for physical memory, which gdb's own reads would wrap at
4 GiB). This file runs in gdb's Python, not in the project's venv: it imports only
harness.core and harness.kernel (no pygdbmi; tests/unit/test_layers.py holds that).
"""

import json
import os
import sys
import time

import gdb  # type: ignore[import-not-found]

_here = globals().get("__file__")  # REPO/harness/frontends/gdb_commands.py
REPO = os.environ.get("HIGHMEM_REPO") or (
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_here))))
    if _here else os.getcwd())
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from harness.core.errors import HarnessError  # noqa: E402 (needs REPO on sys.path)
from harness.core.gdb_text import parse_symbol, parse_xp  # noqa: E402
from harness.kernel import reports  # noqa: E402
from harness.kernel.target import SymbolMissing  # noqa: E402


class GdbTarget:
    """The reports' target (harness/kernel/target.py's Target) inside gdb, on the selected
    thread (= vCPU)."""

    def __init__(self) -> None:
        thread = gdb.selected_thread()
        if thread is None:
            raise gdb.GdbError("no target: attach first (target remote SOCKET)")
        self.cpu = thread.num - 1

    def int_value(self, expr: str) -> int:
        try:
            return int(gdb.parse_and_eval(expr))
        except gdb.error as e:
            raise SymbolMissing(f"{expr}: {e}") from None

    def read_phys(self, addr: int, size: int) -> bytes:
        words = max(1, -(-size // 8))
        return parse_xp(gdb.execute(f"monitor xp /{words}gx {addr:#x}", to_string=True), size)

    def read_virt(self, addr: int, size: int) -> bytes:
        return bytes(gdb.selected_inferior().read_memory(addr, size))

    def symbol(self, addr: int) -> str | None:
        return parse_symbol(gdb.execute(f"info symbol {addr:#x}", to_string=True))

    @property
    def cr3(self) -> int:
        return self.int_value("(unsigned long)$cr3")

    @property
    def cr4(self) -> int:
        return self.int_value("(unsigned long)$cr4")


class _ReportCommand(gdb.Command):
    name = ""

    def __init__(self) -> None:
        super().__init__(self.name, gdb.COMMAND_DATA)

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        raise NotImplementedError

    def invoke(self, arg: str, from_tty: bool) -> None:
        args = gdb.string_to_argv(arg)
        as_json = "--json" in args
        args = [a for a in args if a != "--json"]
        t0 = time.monotonic()
        try:
            rep = self.report(GdbTarget(), args)
        except (HarnessError, SymbolMissing) as e:
            raise gdb.GdbError(f"{self.name}: {e}") from None
        gdb.write((json.dumps(rep.to_json(), indent=2) if as_json else rep.format()) + "\n")
        if not as_json:
            gdb.write(f"({self.name}: {time.monotonic() - t0:.2f} s)\n")


class HmPte(_ReportCommand):
    """hm-pte VA [--json]: walk VA's page tables on the selected CPU and explain it.

CR3, the PDPT entry, the PMD entry and the PTE (PAE; PDE and PTE without PAE), each with
its value and decoded flags (P RW US PWT PCD A D PAT/PS G NX, PROTNONE), the physical
address, PFN and struct page, and the area VA lies in. VA is any C expression."""

    name = "hm-pte"

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        if len(args) != 1:
            raise gdb.GdbError("usage: hm-pte VA [--json]")
        va = int(gdb.parse_and_eval(f"(unsigned long)({args[0]})"))
        return reports.pte_report(target, va)


class HmKmaps(_ReportCommand):
    """hm-kmaps [--json]: every live kmap of the stopped kernel.

PKMAP slots in use (pkmap_count, PTE, page; stale count-1 slots marked), kmap_local and
kmap_atomic slots with a PTE, each CPU's current task, and every task whose kmap_ctrl holds
maps (a task that is not running has its PTEs cleared until it is scheduled in)."""

    name = "hm-kmaps"

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        return reports.kmaps_report(target)


class HmVmaps(_ReportCommand):
    """hm-vmaps [--json]: the VM_MAP vmap areas, each page's PTE, PFN, highmem or not."""

    name = "hm-vmaps"

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        return reports.vmaps_report(target)


class HmLayout(_ReportCommand):
    """hm-layout [--json]: PAGE_OFFSET, high_memory, VMALLOC_START/END, PKMAP_BASE,
FIXADDR_TOP/START, FIX_KMAP_BEGIN/END, KM_MAX_IDX, computed from the live kernel."""

    name = "hm-layout"

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        return reports.layout_report(target)


for _cmd in (HmPte, HmKmaps, HmVmaps, HmLayout):
    _cmd()
gdb.write("highmem-harness: hm-pte VA, hm-kmaps, hm-vmaps, hm-layout (help hm-pte ...)\n")
