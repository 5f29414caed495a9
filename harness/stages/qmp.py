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
