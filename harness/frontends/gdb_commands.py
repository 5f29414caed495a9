"""Project commands for an interactive gdb on the harness's guest. Loaded by `highmem gdb`
as `gdb ... -x harness/frontends/gdb_commands.py`, or by hand with `source` in a gdb attached
to QEMU's gdbstub (with vmlinux loaded):

  hm-pte VA [--cpu N] [--json]
                       the full walk of VA (a number or any C expression): CR3, PDPTE,
                       PMD, PTE with decoded flags, phys, PFN, struct page, area; on
                       CPU N (default: a kmap_local slot's own CPU, else the selected one)
  hm-kmaps [--json]    PKMAP slots in use, kmap_local/kmap_atomic slots with a PTE,
                       tasks holding kmap_local maps (kmap_ctrl)
  hm-vmaps [--json]    VM_MAP vmap areas with their pages' PFNs (highmem or not)
  hm-layout [--json]   the address-space layout computed from the live kernel
  hm-qemu CMD          a QEMU human-monitor command through QMP (the guest's
                       qmp-tools.sock, in $HIGHMEM_QMP), on the selected CPU, with a
                       deadline; floods and session breakers (info tlb, stop, cont, quit)
                       refused with what to use instead (core/monitor_commands.py)
  hm-dump FILE         a vmcore of the guest (QMP dump-guest-memory), checked
  monitor CMD          with $HIGHMEM_QMP set (`highmem gdb` sets it): gdb's own `monitor`
                       replaced by hm-qemu, so `monitor info tlb` is refused instead of
                       stalling QEMU's gdbstub, and the rest answers through QMP

The reports are harness/kernel/reports.py's; the target here is gdb itself (parse_and_eval,
memory reads, and `monitor xp` for physical memory, which gdb's own reads would wrap at
4 GiB). This file runs in gdb's Python, not in the project's venv: it imports only
harness.core, harness.kernel, the pure frontends/inspect_args.py and the two stdlib-only
stages stages/qmp_line.py and stages/vmcore_dump.py (no pygdbmi, no qemu.qmp:
tests/unit/test_gdb_monitor.py loads it in a real gdb).
"""

import json
import os
import sys
import time
from pathlib import Path

import gdb  # type: ignore[import-not-found]

_here = globals().get("__file__")  # REPO/harness/frontends/gdb_commands.py
REPO = os.environ.get("HIGHMEM_REPO") or (
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_here))))
    if _here else os.getcwd())
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from harness.core.errors import HarnessError  # noqa: E402 (needs REPO on sys.path)
from harness.core.gdb_text import parse_symbol, parse_xp  # noqa: E402
from harness.core.monitor_commands import check_command, cut_output  # noqa: E402
from harness.frontends.inspect_args import walk_cpu  # noqa: E402 (pure, stdlib only)
from harness.kernel import reports  # noqa: E402
from harness.kernel.target import Kernel, SymbolMissing  # noqa: E402
from harness.stages import vmcore_dump  # noqa: E402
from harness.stages.qmp_line import QmpLine  # noqa: E402

QMP_ENV = "HIGHMEM_QMP"      # inspect_args.TOOLS_ENV: the guest's qmp-tools.sock
MONITOR_TIMEOUT = 30.0


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
    """hm-pte VA [--cpu N] [--json]: walk VA's page tables and explain it.

On CPU N if given; else a kmap_local VA on the CPU whose slot it is (where its mapping was
made), any other VA on the selected CPU.

CR3, the PDPT entry, the PMD entry and the PTE (PAE; PDE and PTE without PAE), each with
its value and decoded flags (P RW US PWT PCD A D PAT/PS G NX, PROTNONE), the physical
address, PFN and struct page, and the area VA lies in. VA is any C expression."""

    name = "hm-pte"

    def report(self, target: GdbTarget, args: list[str]) -> reports.Report:
        cpu = None
        if "--cpu" in args:
            i = args.index("--cpu")
            if i + 1 >= len(args) or not args[i + 1].isdigit():
                raise gdb.GdbError("usage: hm-pte VA [--cpu N] [--json]")
            cpu, args = int(args[i + 1]), args[:i] + args[i + 2:]
        if len(args) != 1:
            raise gdb.GdbError("usage: hm-pte VA [--cpu N] [--json]")
        va = int(gdb.parse_and_eval(f"(unsigned long)({args[0]})"))
        cpu = walk_cpu(cpu, Kernel(target).layout.kmap_local_slot(va))
        if cpu is None or cpu == target.cpu:
            return reports.pte_report(target, va)
        before = gdb.selected_thread()
        wanted = [t for t in gdb.selected_inferior().threads() if t.num == cpu + 1]
        if not wanted:
            raise gdb.GdbError(f"hm-pte: there is no CPU {cpu} (`info threads`: thread N "
                               "is CPU N-1)")
        wanted[0].switch()       # quietly: `thread N` prints the frame it switches to
        try:
            return reports.pte_report(GdbTarget(), va)
        finally:
            before.switch()


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


def _qmp_socket(name: str) -> Path:
    sock = os.environ.get(QMP_ENV)
    if not sock:
        raise gdb.GdbError(f"{name}: no QMP socket known (`highmem gdb` sets ${QMP_ENV}); "
                           "by hand: python import os; os.environ['HIGHMEM_QMP'] = "
                           "'SOCKDIR/qmp-tools.sock'")
    return Path(sock)


def _selected_cpu() -> int | None:
    thread = gdb.selected_thread()
    return thread.num - 1 if thread is not None else None


class HmQemu(gdb.Command):
    """hm-qemu CMD: a QEMU human-monitor command through QMP, on the selected CPU.

Goes to the guest's qmp-tools.sock (not gdb's gdbstub, which stalls on long output), with
a deadline. Commands that flood, hang or take the guest from under gdb are refused with
what to use instead: info tlb (hm-pte VA, hm-kmaps, hm-vmaps), stop, cont, quit,
system_reset, gdbserver, dump-guest-memory (hm-dump FILE), log, snapshots."""

    name = "hm-qemu"

    def __init__(self, name: str = "") -> None:
        self.name = name or self.name
        super().__init__(self.name, gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        try:
            line = check_command(arg)
            with QmpLine(_qmp_socket(self.name), timeout=MONITOR_TIMEOUT) as q:
                out = q.hmp(line, cpu=_selected_cpu())
        except HarnessError as e:
            raise gdb.GdbError(f"{self.name}: {e.what}\n{e.fix}") from None
        gdb.write(cut_output(out))


class HmDump(gdb.Command):
    """hm-dump FILE: a vmcore of the guest in the new file FILE (QMP dump-guest-memory,
ELF, paging off), its headers checked: every RAM block in a PT_LOAD, each CPU's registers.
crash opens it (crash vmlinux FILE). The guest gdb holds stopped stays stopped."""

    name = "hm-dump"

    def __init__(self) -> None:
        super().__init__(self.name, gdb.COMMAND_DATA)

    def invoke(self, arg: str, from_tty: bool) -> None:
        args = gdb.string_to_argv(arg)
        if len(args) != 1:
            raise gdb.GdbError("usage: hm-dump FILE")
        try:
            path = vmcore_dump.new_file(args[0])
            with QmpLine(_qmp_socket(self.name), timeout=MONITOR_TIMEOUT) as q:
                d = vmcore_dump.dump(q, path, 900.0, lambda s: gdb.write(s + "\n"))
        except HarnessError as e:
            raise gdb.GdbError(f"{self.name}: {e.what}\n{e.fix}") from None
        if d.problems:
            raise gdb.GdbError(f"{self.name}: {path}: " + "; ".join(d.problems))
        gdb.write(f"{path}: {d.summary}; {d.seconds:.1f} s\n")


for _cmd in (HmPte, HmKmaps, HmVmaps, HmLayout, HmQemu, HmDump):
    _cmd()
if os.environ.get(QMP_ENV):
    # gdb's `monitor` (and `mon`) goes to QEMU's gdbstub, which stalls on long output and
    # cannot be stopped from gdb: replaced by hm-qemu's checks and QMP (docs/inspect.md)
    HmQemu("monitor")
gdb.write("highmem-harness: hm-pte VA, hm-kmaps, hm-vmaps, hm-layout, hm-qemu CMD, "
          "hm-dump FILE (help hm-pte ...)\n")
