"""The kernel-reading target (kernel_target.Target) over the harness's MI gdb: used by the
checkpoint checker and by the CLI inspection commands. The guest must be stopped."""

from .errors import GdbError
from .gdbmi import Gdb
from .kernel_target import SymbolMissing, parse_symbol


class MiTarget:
    """harness.inspect's target over the harness's MI gdb. The guest must be stopped."""

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
