"""QMP over a plain unix socket, standard library only, one short connection per command:
for the one-shot inspector commands (`highmem qemu`, `highmem dump`) and for gdb's Python
(`hm-qemu`, the `monitor` wrapper), which has neither the venv nor qemu.qmp.

It connects to the guest's qmp-tools.sock (stages/qemu.py), never to the harness's own
qmp.sock (held by stages/qmp.py's Monitor for the guest's life) nor to the user's
qmp-user.sock. QEMU serves one client per socket: a second one waits in the listen queue
until the first has gone, so every step here has a deadline.
"""

import json
import socket
import time
from pathlib import Path
from typing import Any

from ..core.errors import HarnessError


class QmpError(HarnessError):
    """QMP did not answer in time, the socket is gone, or QEMU refused the command."""


class QmpLine:
    """One QMP connection: greeting, qmp_capabilities, then commands, each answered
    within `timeout` seconds. A context manager; close() on every exit path."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path, self.timeout = path, timeout
        self.events: list[dict[str, Any]] = []
        self._buf = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(str(path))
            self._reply(time.monotonic() + timeout, greeting=True)
            self.execute("qmp_capabilities")
        except OSError as e:
            self.close()
            raise QmpError(f"QMP socket {path}: {e.strerror or e}",
                           "is the guest still up? `highmem status` lists the guests") from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "QmpLine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpError(f"QMP on {self.path} did not answer within "
                               f"{self.timeout:.0f} s",
                               "another client may hold this socket (one at a time), or "
                               "QEMU is busy: try again, or give a longer --timeout")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise QmpError(f"QEMU closed the QMP socket {self.path}",
                               "the guest has gone: read console.log in its run directory")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            raise QmpError(f"QMP on {self.path} sent a line that is not JSON: {line[:80]!r}",
                           "is that socket QEMU's QMP? see docs/inspect.md") from None
        return msg if isinstance(msg, dict) else {}

    def _reply(self, deadline: float, greeting: bool = False) -> Any:
        """The next answer (events are kept in self.events); the greeting's, if asked."""
        while True:
            msg = self._line(deadline)
            if greeting and "QMP" in msg:
                return msg["QMP"]
            if "event" in msg:
                self.events.append(msg)
                continue
            if "error" in msg:
                err = msg["error"]
                raise QmpError(f"QEMU refused it: {err.get('class', '?')}: "
                               f"{err.get('desc', err)}", "see `highmem qemu help`, or "
                               "QEMU's QMP reference for the command's arguments")
            if "return" in msg:
                return msg["return"]

    def execute(self, command: str, args: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        """A QMP command; its `return` value. QmpError if QEMU answers with an error or not
        within `timeout` (default: the connection's)."""
        req: dict[str, Any] = {"execute": command}
        if args:
            req["arguments"] = args
        try:
            self.sock.sendall(json.dumps(req).encode() + b"\n")
        except OSError as e:
            raise QmpError(f"QMP socket {self.path}: {e.strerror or e}",
                           "the guest has gone: read console.log in its run directory") \
                from None
        return self._reply(time.monotonic() + (timeout or self.timeout))

    def hmp(self, command: str, cpu: int | None = None, timeout: float | None = None) -> str:
        """A human-monitor command (on vCPU `cpu` if given); its text."""
        args: dict[str, Any] = {"command-line": command}
        if cpu is not None:
            args["cpu-index"] = cpu
        return str(self.execute("human-monitor-command", args, timeout))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
