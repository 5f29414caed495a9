"""The warm guest's socket: a unix socket in the server's 0700 directory, one request
line and one response line per connection (workflows/warm/model.py encodes them). Every wait has a
deadline: a server that does not answer is an error, not a hang.
"""

import socket
import time
from pathlib import Path
from typing import Any

from ...core.errors import HarnessError
from .model import MAX_LINE, decode, encode


class WarmError(HarnessError):
    """The warm guest's server did not answer, or answered with an error."""


def read_line(conn: socket.socket, deadline: float) -> bytes:
    """Bytes up to a newline; WarmError at the deadline or if the peer closes first."""
    buf = bytearray()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise WarmError("the warm guest's server did not answer in time",
                            "look at warm.log in its run directory (`highmem status`), or "
                            "stop it with `highmem down`")
        conn.settimeout(left)
        try:
            chunk = conn.recv(1 << 16)
        except TimeoutError:
            continue
        if not chunk:
            raise WarmError("the warm guest's server closed the connection without an "
                            "answer", "look at warm.log in its run directory; `highmem "
                            "down` then `highmem up` starts a new one")
        buf += chunk
        if len(buf) > MAX_LINE:
            raise WarmError("the warm guest's server sent an oversized answer",
                            "stop it with `highmem down`")
    return bytes(buf)


def call(sock: Path, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request, return its response; WarmError when the server cannot be reached,
    does not answer within `timeout` seconds, or says it failed (its error and fix)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(min(timeout, 10.0))
        try:
            conn.connect(str(sock))
            conn.sendall(encode(msg))
        except OSError as e:
            raise WarmError(f"cannot reach the warm guest's server at {sock}: "
                            f"{e.strerror or e}", "`highmem status` shows it; `highmem down` "
                            "removes a dead one") from None
        try:
            resp = decode(read_line(conn, deadline))
        except ValueError as e:
            raise WarmError(f"the warm guest's server answered nonsense: {e}",
                            "stop it with `highmem down` and report this") from None
    if not resp.get("ok"):
        raise WarmError(str(resp.get("error", "the warm guest failed")),
                        str(resp.get("fix", "look at warm.log in its run directory")))
    return resp
