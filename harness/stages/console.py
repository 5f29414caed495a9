"""Guest channel stage: a root shell on the serial console, driven with pexpect.

Each command ends with an `echo` of a numbered marker carrying `$?`, so the exit code comes
back exactly and output is cut at the right place. The marker holds a random nonce drawn for
each command, and the shell assembles it from two quoted halves, so the marker's text is
never sent to the guest whole: a module that prints `@@HM<n>RC=0@@` (into the console, or
into the kernel log a later `dmesg` shows) cannot end a command early or fake its status.
The guest's /init sets the console log level to 1, so kernel messages stay in dmesg rather
than interleaving here (an oops still shows: the kernel raises the level itself).
"""

import re
import secrets
import time

import pexpect

from ..core.errors import GuestError


class SerialShell:
    """Runs shell commands in the guest over its serial console (a pexpect child)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.n = 0
        self.nonces: dict[int, str] = {}

    def sync(self, timeout: float = 20.0) -> None:
        """After the ready marker: turn echo off and wait until the shell answers."""
        self.child.sendline("stty -echo 2>/dev/null; PS1=''; export PS1")
        self.run("true", timeout=timeout)

    def drain(self, timeout: float = 1.0) -> None:
        """Read what the guest printed and nobody read yet, up to QEMU's end of output (or
        `timeout`): after QEMU exited, its last words (a panic) are still in the pty, and
        only a read puts them in console.log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                if not self.child.isalive():
                    continue  # QEMU gone: its output ends with EOF, not a pause
                return
            except (pexpect.EOF, OSError, ValueError):
                return

    def start(self, cmd: str) -> int:
        """Send a command without waiting; `poll(token)` collects its result."""
        self.n += 1
        nonce = secrets.token_hex(8)
        self.nonces[self.n] = nonce
        self.child.sendline(f"{cmd}; echo '@@HM{self.n}'\"x{nonce}RC=$?@@\"")
        return self.n

    def poll(self, token: int, timeout: float = 0.0) -> tuple[int, str] | None:
        """The (exit code, output) of a started command, or None if it has not ended yet."""
        try:
            nonce = self.nonces[token]
            self.child.expect(re.compile(rf"@@HM{token}x{nonce}RC=(\d+)@@"), timeout=timeout)
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
