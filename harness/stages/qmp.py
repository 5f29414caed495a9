"""QEMU's monitor over QMP (the qemu.qmp library), on the run's unix socket.

For human-monitor commands with long output (`info tlb`): QEMU 7.2's gdbstub stalls after a
few hundred lines of `monitor` output, QMP returns it in one JSON answer.
"""

from pathlib import Path

from qemu.qmp.legacy import QEMUMonitorProtocol

from ..core.errors import BootError


def hmp(qmp_socket: Path, command: str, cpu: int = 0, timeout: float = 60.0) -> str:
    """Run a human-monitor command on vCPU `cpu`; its text output."""
    mon = QEMUMonitorProtocol(str(qmp_socket))
    try:
        mon.settimeout(timeout)
        mon.connect()
        return str(mon.cmd("human-monitor-command", **{"command-line": command,
                                                       "cpu-index": cpu}))
    except (OSError, Exception) as e:  # qemu.qmp raises its own QMPError family
        raise BootError(f"QMP '{command}' on {qmp_socket} failed: {e}",
                        "read console.log in the run directory; QEMU may have exited") from e
    finally:
        mon.close()


class Monitor:
    """One QMP connection kept for a guest's life: human-monitor commands on a given vCPU
    (`gva2gpa`, `info tlb`, `info mtree -f`) with a deadline, about 1 ms each."""

    def __init__(self, qmp_socket: Path, timeout: float = 30.0) -> None:
        self.socket = qmp_socket
        self.mon = QEMUMonitorProtocol(str(qmp_socket))
        try:
            self.mon.settimeout(timeout)
            self.mon.connect()
        except (OSError, Exception) as e:  # qemu.qmp raises its own QMPError family
            raise BootError(f"cannot connect to QMP on {qmp_socket}: {e}",
                            "read console.log in the run directory; QEMU may have exited") from e

    def hmp(self, command: str, cpu: int = 0) -> str:
        try:
            return str(self.mon.cmd("human-monitor-command",
                                    **{"command-line": command, "cpu-index": cpu}))
        except (OSError, Exception) as e:
            raise BootError(f"QMP '{command}' failed: {e}",
                            "read console.log in the run directory; QEMU may have exited") from e

    def close(self) -> None:
        try:
            self.mon.close()
        except (OSError, Exception):  # already gone with QEMU
            pass
