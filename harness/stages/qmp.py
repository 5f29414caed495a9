"""QEMU's monitor over QMP (the qemu.qmp library), on the guest's unix socket.

For human-monitor commands whose output is long (`info tlb`) or asked often (`gva2gpa` at
every checkpoint): QEMU 7.2's gdbstub stalls after a few hundred lines of `monitor` output,
and QMP answers in about 1 ms. QEMU serves one QMP client at a time, so a guest has one
`Monitor`, kept open for its life (a second connection would wait for ever): everything
that needs the monitor asks it.
"""

import asyncio
import time
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from ..core.errors import BootError


class Monitor:
    """One QMP connection for a guest: human-monitor commands on a given vCPU, each with
    a deadline."""

    def __init__(self, qmp_socket: Path, timeout: float = 30.0, wait_s: float = 0.0) -> None:
        """Connect; `wait_s`: how long to wait for a QEMU that is just starting to create
        the socket."""
        self.socket, self.timeout = qmp_socket, timeout
        self.loop = asyncio.new_event_loop()
        self.client = QMPClient("highmem-harness")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._run(self.client.connect(str(qmp_socket)))
                return
            except BootError:
                if time.monotonic() >= deadline:
                    self.loop.close()
                    raise
                self.client = QMPClient("highmem-harness")
                time.sleep(0.01)

    def _run(self, coro: Any) -> Any:
        try:
            return self.loop.run_until_complete(asyncio.wait_for(coro, self.timeout))
        except (OSError, Exception) as e:  # qemu.qmp raises its own QMPError family
            raise BootError(f"QMP on {self.socket} failed or did not answer within "
                            f"{self.timeout:.0f} s: {e!r}",
                            "read console.log in the run directory; QEMU may have exited") from e

    def hmp(self, command: str, cpu: int = 0) -> str:
        """A human-monitor command on vCPU `cpu`; its text output."""
        return str(self._run(self.client.execute(
            "human-monitor-command", {"command-line": command, "cpu-index": cpu})))

    def qmp(self, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """A QMP command; its return value (a dict; {} for commands that return nothing)."""
        r = self._run(self.client.execute(command, args or {}))
        return r if isinstance(r, dict) else {}

    def close(self) -> None:
        try:
            self.loop.run_until_complete(asyncio.wait_for(self.client.disconnect(), 5))
        except (OSError, Exception):  # already gone with QEMU
            pass
        finally:
            self.loop.close()
