"""Stage 7, guest channel: a root shell on the serial console, driven with pexpect.

Each command ends with an `echo` of a numbered marker carrying `$?`, so the exit code comes
back exactly and output is cut at the right place. The guest's /init sets the console
log level to 1, so kernel messages stay in dmesg rather than interleaving here (an oops
still shows: the kernel raises the level itself).
"""

import re
import time
from pathlib import Path

import pexpect

from .errors import GuestError
from .failure import crash_lines


class SerialShell:
    """Runs shell commands in the guest over its serial console (a pexpect child)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.n = 0

    def sync(self, timeout: float = 20.0) -> None:
        """After the ready marker: turn echo off and wait until the shell answers."""
        self.child.sendline("stty -echo 2>/dev/null; PS1=''; export PS1")
        self.run("true", timeout=timeout)

    def start(self, cmd: str) -> int:
        """Send a command without waiting; `poll(token)` collects its result."""
        self.n += 1
        self.child.sendline(f"{cmd}; echo @@HM{self.n}RC=$?@@")
        return self.n

    def poll(self, token: int, timeout: float = 0.0) -> tuple[int, str] | None:
        """The (exit code, output) of a started command, or None if it has not ended yet."""
        try:
            self.child.expect(re.compile(rf"@@HM{token}RC=(\d+)@@"), timeout=timeout)
        except pexpect.TIMEOUT:
            return None
        except pexpect.EOF:
            raise GuestError("the guest's console closed (QEMU exited or the kernel "
                             "panicked)", "read console.log in the run directory") from None
        out = str(self.child.before).replace("\r", "")
        return int(self.child.match.group(1)), out.strip("\n")

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str]:
        token = self.start(cmd)
        deadline = time.monotonic() + timeout
        while True:
            res = self.poll(token, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            if res is not None:
                return res
            if time.monotonic() >= deadline:
                raise GuestError(f"guest command timed out after {timeout:.0f} s: {cmd}",
                                 "read console.log in the run directory; raise the timeout "
                                 "with --timeout if the guest is just slow")

    def check(self, cmd: str, timeout: float = 60.0) -> str:
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError(f"guest command failed (exit {rc}): {cmd}: {out[-300:]}",
                             "read console.log in the run directory")
        return out


class ConsoleLog:
    """The guest's console as QEMU printed it (the file pexpect logs to): slices from a
    mark, and the crash lines that appeared since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = self.size()
        self.seen = self.start

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def text(self) -> str:
        """Everything printed since this object was made."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def new_crash(self) -> str | None:
        """The first crash line printed since the last call, or None."""
        end = self.size()
        if end <= self.seen:
            return None
        with self.path.open("rb") as f:
            f.seek(self.seen)
            raw = f.read(end - self.seen)
        cut = raw.rfind(b"\n") + 1            # look at whole lines only
        if cut == 0:
            return None
        self.seen += cut
        lines = crash_lines(raw[:cut].decode(errors="replace"))
        return lines[0] if lines else None
