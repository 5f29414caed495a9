"""The kernel-reading target (harness/kernel/target.py's Target) over the harness's MI gdb:
used by the checkpoint checker and by the CLI inspection commands. The guest must be stopped
(`stopped_target` stops it for the time of a report)."""

import contextlib
from collections.abc import Iterator

from ..core.errors import GdbError
from ..core.gdb_text import parse_symbol
from ..kernel.target import SymbolMissing
from .gdbmi import Gdb


class MiTarget:
    """The reports' target over the harness's MI gdb. The guest must be stopped."""

    def __init__(self, gdb: Gdb, cpu: int | None = None) -> None:
        self.gdb, self.cpu = gdb, cpu

    def int_value(self, expr: str) -> int:
        try:
            return self.gdb.int_value(expr)
        except GdbError as e:
            if e.what.startswith("gdb: "):          # gdb could not evaluate it (no timeout)
                raise SymbolMissing(e.what) from None
            raise
        except ValueError as e:                     # e.g. "<optimized out>"
            raise SymbolMissing(f"{expr}: {e}") from None

    def read_phys(self, addr: int, size: int) -> bytes:
        return self.gdb.read_phys(addr, size)

    def read_virt(self, addr: int, size: int) -> bytes:
        return self.gdb.read_virt(addr, size)

    def symbol(self, addr: int) -> str | None:
        _, stream = self.gdb.cmd(f'-interpreter-exec console "info symbol {addr:#x}"')
        return parse_symbol("".join(stream))

    @property
    def cr3(self) -> int:
        return self.gdb.int_value("(unsigned long)$cr3")

    @property
    def cr4(self) -> int:
        return self.gdb.int_value("(unsigned long)$cr4")


@contextlib.contextmanager
def stopped_target(gdb: Gdb, timeout: float = 30.0) -> Iterator[MiTarget]:
    """Interrupt the running guest (all CPUs), yield a target on the CPU that reported the
    stop, and resume the guest afterwards, also on error.

    gdb runs MI synchronously (mi-async off): while the target runs it reads no commands, so
    `-exec-interrupt` would wait forever. SIGINT is what gdb itself listens for (Ctrl-C)."""
    stopped = gdb.interrupt(timeout)
    try:
        yield MiTarget(gdb, int(str(stopped.get("thread-id", "1"))) - 1)
    finally:
        gdb.resume()
