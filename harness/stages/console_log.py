"""The guest's console as QEMU printed it, read back from the run's console.log (the file
QEMU's serial output is logged to): slices from a mark, and the crash lines that appeared
since the last look. File reads only, no process: the Lab reads it for boot and module
artifacts, module_run.py watches it for an oops while insmod runs."""

from pathlib import Path

from ..core.failure import crash_lines


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
