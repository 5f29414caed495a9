"""The harness's MI gdb, kept for the life of a Lab: vmlinux's symbols and DWARF are read
once, the kernel's masks and layout once, and each guest of the run (the first boot, every
snapshot restore) is attached to in turn. A gdb that does not answer, or a kernel that
changed, gets a new gdb.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import GdbError
from .checker import Checker
from .gdbmi import Gdb
from .guest_ram import GuestRam
from .qmp import Monitor

DETACH_TIMEOUT_S = 3.0
WARM_TIMEOUT_S = 300.0   # gdb reading vmlinux and the DWARF of task_struct on a busy host
NORMAL_TIMEOUT_S = 30.0  # each later command
WARM_EXPR = "sizeof(((struct task_struct *)0)->kmap_ctrl.pteval)"


class KeptGdb:
    """One gdb (and its Checker) reused across the guests of one kernel."""

    def __init__(self) -> None:
        self.gdb: Gdb | None = None
        self.checker: Checker | None = None
        self.vmlinux: Path | None = None
        self.armed: int | None = None   # hm_checkpoint()'s address, breakpoint inserted
        self.symbols = False            # the gdb loaded vmlinux (else: registers and memory)
        self._warming: threading.Thread | None = None
        self._warm_error: BaseException | None = None

    def prewarm(self, vmlinux: Path, transcript: Path) -> None:
        """Start the gdb with symbols now, in the background: it reads vmlinux and the
        DWARF the layout needs while QEMU boots the guest (attach() waits for it)."""
        if self.gdb is not None and self.symbols and self.vmlinux == vmlinux:
            return
        self.close()
        self.vmlinux, self.symbols = vmlinux, True
        # started here (its death signal follows this thread), waited for by the helper
        self.gdb = Gdb(vmlinux, transcript, timeout=WARM_TIMEOUT_S, setup=False)
        self._warming = threading.Thread(target=self._warm, args=(self.gdb,),
                                         daemon=True, name="gdb-prewarm")
        self._warming.start()

    def _warm(self, gdb: Gdb) -> None:
        try:
            gdb.setup()
            gdb.cmd(f'-data-evaluate-expression "{WARM_EXPR}"')
            gdb.timeout = NORMAL_TIMEOUT_S
        except BaseException as e:  # noqa: BLE001 - handed to attach()
            self._warm_error = e

    def _warmed(self) -> None:
        """Wait for prewarm(); its error (gdb failed to start) is attach()'s."""
        if self._warming is not None:
            self._warming.join(WARM_TIMEOUT_S + 10)
            self._warming = None
        if self._warm_error is not None:
            e, self._warm_error = self._warm_error, None
            self.close()
            if isinstance(e, GdbError):
                raise e

    def attach(self, vmlinux: Path, transcript: Path, socket: Path, ram: GuestRam | None,
               monitor: Monitor | None,
               facts: dict[str, Any] | None = None) -> tuple[Gdb, Checker]:
        """gdb attached to the guest at `socket` (the guest stops); a new gdb if there is
        none, it is for another vmlinux, or it does not attach. `facts`: what a gdb with
        symbols read of this kernel before (a snapshot's): then a gdb without symbols
        does (it starts at once), unless one with symbols is running already."""
        if self.vmlinux != vmlinux or (not facts and not self.symbols):
            self.close()
        for attempt in (1, 2):
            if self.gdb is None:
                self.symbols = not facts or ram is None
                self.gdb = Gdb(vmlinux if self.symbols else None, transcript)
                self.vmlinux = vmlinux
            try:
                self.gdb.attach(socket)
                break
            except GdbError:
                self.close()
                if attempt == 2:
                    raise
        assert self.gdb is not None
        self.gdb.fallback_stop = (lambda: None if monitor.qmp("stop") else None) \
            if monitor is not None else None
        if self.checker is None:
            self.checker = Checker(self.gdb, ram, monitor)
            if facts and not self.symbols:
                self.checker.load_facts(facts)
        else:  # same kernel: masks and layout kept; this guest's RAM and monitor
            self.checker.ram, self.checker.monitor, self.checker.last = ram, monitor, None
        return self.gdb, self.checker

    def ensure_symbols(self) -> None:
        """Load vmlinux into a gdb that was started without it (for the inspection
        commands and the fixtures, which evaluate C expressions)."""
        if self.gdb is None or self.symbols or self.vmlinux is None:
            return
        running = self.gdb.running  # all-stop gdb takes no command while the guest runs
        if running:
            self.gdb.interrupt(timeout=DETACH_TIMEOUT_S * 10)
        self.gdb.cmd(f"-file-symbol-file {self.vmlinux}", timeout=WARM_TIMEOUT_S)
        self.symbols = True
        if running:
            self.gdb.resume()

    @contextmanager
    def patient(self) -> Iterator[None]:
        """While gdb reads the kernel through its DWARF for the first time (each new CU
        costs seconds on a busy host): the long deadline."""
        assert self.gdb is not None
        self.gdb.timeout = WARM_TIMEOUT_S
        try:
            yield
        finally:
            self.gdb.timeout = NORMAL_TIMEOUT_S

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
        within DETACH_TIMEOUT_S each is ended, and so is one whose target went away under
        it (QEMU exited while gdb held it stopped, or gdb itself died): such a gdb was seen
        to fail its next attach (an internal error, then the attach's whole timeout), and
        a new one starts in milliseconds (without symbols, for a restored guest)."""
        if self.gdb is None:
            return
        if self.gdb.target_gone or self.gdb.exited() is not None:
            self.close()
            return
        try:
            if self.running():
                self.gdb.interrupt(timeout=DETACH_TIMEOUT_S)
            if not self.gdb.target_gone:
                self.gdb.cmd("-target-disconnect", timeout=DETACH_TIMEOUT_S)
                self._forget_target()
            else:
                self.close()  # QEMU exited meanwhile
        except GdbError:
            self.close()

    def _forget_target(self) -> None:
        assert self.gdb is not None
        self.gdb.pending.clear()
        self.gdb.fallback_stop = None  # that guest's QMP goes with it
        self.gdb.peer_alive = None

    def running(self) -> bool:
        """gdb is waiting on a guest that runs (it reads no command until that stops)."""
        return self.gdb is not None and self.gdb.running and not self.gdb.target_gone

    def target_killed(self) -> None:
        """The running guest's QEMU was just killed: wait for gdb to see its target close
        (a few ms; no stop to ask for), then keep gdb for the next guest. A gdb that does
        not report it within DETACH_TIMEOUT_S is ended."""
        if self.gdb is None:
            return
        deadline = time.monotonic() + DETACH_TIMEOUT_S
        try:
            while not self.gdb.target_gone and time.monotonic() < deadline:
                self.gdb.wait_stopped(max(0.0, deadline - time.monotonic()))
        except GdbError:
            pass
        if self.gdb.target_gone:
            self._forget_target()
        else:
            self.close()

    def close(self) -> None:
        if self._warming is not None:  # let it finish starting gdb, then end that gdb
            self._warming.join(WARM_TIMEOUT_S + 10)
            self._warming = None
        if self.gdb is not None:
            self.gdb.close()
        self.gdb = self.checker = self.vmlinux = self.armed = None
        self.symbols = False
