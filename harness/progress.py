"""Phase timing and progress lines: a user never stares at a silent terminal."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


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


@dataclass
class Phases:
    """Wall-clock seconds per pipeline phase, in the order they ran."""

    times: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        say(f"== {name}")
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.monotonic() - t0

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds

    def total(self) -> float:
        return time.monotonic() - self.started + self.times.get("deps", 0.0)

    def format(self) -> str:
        parts = [f"{k} {v:.1f} s" for k, v in self.times.items()]
        return "Elapsed: " + ", ".join(parts) + f"; total {self.total():.1f} s"
