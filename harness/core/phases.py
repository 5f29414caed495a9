"""Wall-clock time per pipeline phase (configure, build, image, boot, module, gdb checks),
for the report's `Elapsed:` line and report.json. Pure but for the `== phase` header line a
phase prints on stderr when it starts."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Phases:
    """Wall-clock seconds per pipeline phase, in the order they ran."""

    times: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.monotonic() - t0

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds

    def move(self, src: str, dst: str, seconds: float) -> None:
        """`seconds` of phase `src` belong to `dst` (known once the phase ran: a guest
        restored, not booted); `src` is gone if nothing of it is left."""
        left = self.times.get(src, 0.0) - seconds
        if left < 1e-3:
            self.times.pop(src, None)
        else:
            self.times[src] = left
        self.add(dst, seconds)

    def total(self) -> float:
        return time.monotonic() - self.started + self.times.get("deps", 0.0)

    def format(self) -> str:
        parts = [f"{k} {v:.1f} s" for k, v in self.times.items()]
        return "Elapsed: " + ", ".join(parts) + f"; total {self.total():.1f} s"
