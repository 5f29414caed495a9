"""`highmem watch`'s saves and runs, as a state machine fed the directory's events: no
clock, no files, no I/O (the front end passes the time and the directory's content digest).

- A save is a burst of events on watched files that ends with QUIET_S without another
  (an editor's write, rename and chmod are one save, not three).
- Editors' scratch files do not count: hidden names (`.x.c.swp`, emacs's `.#x.c` lock),
  backups (`x.c~`, `#x.c#`), vim's `4913` probe; a file created and deleted within one
  burst cancels out.
- One run at a time; a save that settles while a run is in flight waits (a newer one
  replaces it). A run's verdict is shown only if nothing was saved from the moment its
  digest was taken to its end; else it is superseded (not shown) and the newest content
  runs next. So a verdict shown is always for the newest save seen.
- A save whose content digest is the one of the verdict last shown does not run again.
"""

from dataclasses import dataclass, field

from .inotify_events import CREATE, DELETE, GONE, OVERFLOW
from ...core.modinputs import is_input

QUIET_S = 0.15
SCRATCH_NAMES = ("4913",)
SCRATCH_ENDINGS = ("~", "#", ".swp", ".swo", ".swx", ".tmp", ".bak", ".orig")


def is_scratch(name: str) -> bool:
    """An editor's temporary, lock or backup file, never a source of the module (`name`:
    of the file, or DIR/file)."""
    name = name.rsplit("/", 1)[-1]
    return (name.startswith((".", "#")) or name.endswith(SCRATCH_ENDINGS)
            or name in SCRATCH_NAMES)


def is_watched(name: str) -> bool:
    """Whether a save of this file (in the module directory) reruns the module."""
    return is_input(name) and not is_scratch(name)


@dataclass(frozen=True)
class Save:
    """The number-th save seen (1: the watch's start), of `names` (empty: a rerun); `at`:
    the time of its last event."""

    number: int
    names: tuple[str, ...]
    at: float


@dataclass
class Run:
    save: Save
    digest: str                # of the directory's inputs when the run started
    touched: bool = False      # a watched file changed after that


SHOWN, SUPERSEDED, RUN, UNCHANGED = "shown", "superseded", "run", "unchanged"


@dataclass
class SaveTracker:
    quiet: float = QUIET_S
    pending: dict[str, str] = field(default_factory=dict)  # name -> first kind of the burst
    last_event: float = 0.0
    count: int = 0
    queued: Save | None = None
    run: Run | None = None
    shown: tuple[int, str] | None = None   # (save number, digest) of the last verdict shown

    def start_watch(self, t: float) -> Save:
        """The first run, of the directory as the watch found it."""
        return self._queue((), t)

    def feed(self, t: float, name: str, kind: str) -> None:
        """One event: `kind` (inotify_events) on file `name` at time `t`."""
        if kind == GONE:
            raise ValueError("the watched directory is gone: the front end ends the watch")
        if kind != OVERFLOW and not is_watched(name):
            return
        if self.run is not None:
            self.run.touched = True
        name = "(events lost)" if kind == OVERFLOW else name
        first = self.pending.get(name)
        if kind == DELETE and first == CREATE:
            del self.pending[name]           # a scratch file: created, then deleted
        elif first is None:
            self.pending[name] = kind
        self.last_event = t

    def wait_s(self, t: float) -> float | None:
        """How long until the burst in progress settles (None: none in progress)."""
        if not self.pending:
            return None
        return max(0.0, self.last_event + self.quiet - t)

    def settle(self, t: float) -> Save | None:
        """The save the burst in progress makes, once it has been quiet for `quiet`; it
        is queued (replacing an older save that did not start)."""
        if not self.pending or t - self.last_event < self.quiet:
            return None
        names = tuple(sorted(self.pending))
        self.pending.clear()
        return self._queue(names, self.last_event)

    def _queue(self, names: tuple[str, ...], at: float) -> Save:
        self.count += 1
        self.queued = Save(self.count, names, at)
        return self.queued

    def start(self, digest: str) -> tuple[str, Save] | None:
        """Start the queued save's run, of the content `digest` (taken now, before the
        run reads the directory): (RUN, the save), now `self.run`; (UNCHANGED, the save)
        if the content is the one of the verdict last shown (dropped: nothing to rerun);
        None if no save is queued or a run is in flight."""
        if self.queued is None or self.run is not None:
            return None
        save, self.queued = self.queued, None
        if self.shown is not None and self.shown[1] == digest:
            return UNCHANGED, save
        self.run = Run(save, digest)
        return RUN, save

    def finish(self, digest: str, t: float) -> tuple[str, Run]:
        """The run in flight ended; `digest`: the directory's content now. SHOWN: its
        verdict is the newest save's; SUPERSEDED: a save came meanwhile, its verdict is not
        shown, and the newest content is queued to run (a rerun if no save is waiting)."""
        run = self.run
        if run is None:
            raise ValueError("no run in flight")
        self.run = None
        if run.touched or digest != run.digest:
            if self.queued is None and not self.pending:
                self._queue((), t)
            return SUPERSEDED, run
        self.shown = (run.save.number, run.digest)
        return SHOWN, run


def save_label(save: Save, digest: str, clock: str) -> str:
    """`save 3 (12:04:01, 1a2b3c4d)`: which save a verdict line is of (clock: the save's
    time as HH:MM:SS)."""
    return f"save {save.number} ({clock}, {digest[:8]})"
