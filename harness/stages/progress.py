"""Progress lines on stderr: a user never stares at a silent terminal (phase timing is
harness/core/phases.py)."""

import sys
import time


def say(msg: str) -> None:
    """Progress goes to stderr, so that data (`highmem ssh`, `--json`, reports) on stdout
    stays clean."""
    print(msg, file=sys.stderr, flush=True)


class Ticker:
    """Prints a status line at most every `every` seconds (in place on a terminal)."""

    def __init__(self, prefix: str, every: float = 2.0) -> None:
        self.prefix = prefix
        self.every = every
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, status: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        line = f"  {self.prefix}: {status} ({now - self.start:.0f} s)"
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line[:160])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
