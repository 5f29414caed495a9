"""The harness's MI gdb, kept for the life of a Lab: vmlinux's symbols and DWARF are read
once, the kernel's masks and layout once, and each guest of the run (the first boot, every
snapshot restore) is attached to in turn. A gdb that does not answer, or a kernel that
changed, gets a new gdb.
"""

from pathlib import Path

from ..core.errors import GdbError
from .checker import Checker
from .gdbmi import Gdb
from .guest_ram import GuestRam
from .qmp import Monitor

DETACH_TIMEOUT_S = 3.0


class KeptGdb:
    """One gdb (and its Checker) reused across the guests of one kernel."""

    def __init__(self) -> None:
        self.gdb: Gdb | None = None
        self.checker: Checker | None = None
        self.vmlinux: Path | None = None
        self.armed: int | None = None   # hm_checkpoint()'s address, breakpoint inserted

    def attach(self, vmlinux: Path, transcript: Path, socket: Path, ram: GuestRam | None,
               monitor: Monitor | None) -> tuple[Gdb, Checker]:
        """gdb attached to the guest at `socket` (the guest stops); a new gdb if there is
        none, it is for another vmlinux, or it does not attach."""
        if self.vmlinux != vmlinux:
            self.close()
        for attempt in (1, 2):
            if self.gdb is None:
                self.gdb, self.vmlinux = Gdb(vmlinux, transcript), vmlinux
            try:
                self.gdb.attach(socket)
                break
            except GdbError:
                self.close()
                if attempt == 2:
                    raise
        assert self.gdb is not None
        if self.checker is None:
            self.checker = Checker(self.gdb, ram, monitor)
        else:  # same kernel: masks and layout kept; this guest's RAM and monitor
            self.checker.ram, self.checker.monitor, self.checker.last = ram, monitor, None
        return self.gdb, self.checker

    def arm(self, breakpoint_addr: int) -> None:
        """Hardware breakpoint on hm_checkpoint() (once per gdb: gdb inserts its breakpoints
        into each new target when it resumes), then resume."""
        assert self.gdb is not None
        if self.armed != breakpoint_addr:
            if self.armed is not None:
                self.gdb.cmd("-break-delete")
            self.gdb.cmd(f"-break-insert -h *{breakpoint_addr:#x}")
            self.armed = breakpoint_addr
        self.gdb.resume()

    def detach(self) -> None:
        """Before the guest is stopped for good: stop it if it runs (all-stop gdb cannot
        detach a running target), drop the connection, keep gdb. A gdb that does not do so
        within DETACH_TIMEOUT_S each is ended."""
        if self.gdb is None:
            return
        try:
            if self.gdb.running:
                self.gdb.interrupt(timeout=DETACH_TIMEOUT_S)
            self.gdb.cmd("-target-disconnect", timeout=DETACH_TIMEOUT_S)
            self.gdb.pending.clear()
        except GdbError:
            self.close()

    def close(self) -> None:
        if self.gdb is not None:
            self.gdb.close()
        self.gdb = self.checker = self.vmlinux = self.armed = None
