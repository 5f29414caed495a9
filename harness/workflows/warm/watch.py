"""`highmem watch MODULE_DIR [--module NAME]`: the edit loop. Every save of a `.c`, `.h`,
Kbuild or Makefile in the directory (inotify, 150 ms of quiet; editors' scratch files
ignored) rebuilds the module with `make M=` (by content: stages/modbuild.py) and runs it on
the warm guest (one is started if none is up, and stays up after); one compact verdict per
save, naming the save (its number, time and content digest): PASS, or the failing case and
PTE field, or the compiler's first error, with the time from the save to the verdict. A save
during a run supersedes it: that run's verdict is not shown and the newest content runs next
(workflows/warm/saves.py). Ctrl-C ends the watch.
"""

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from ...core.errors import HarnessError, Terminated
from .inotify_events import GONE
from ...core.modinputs import dir_digest
from ...core.options import RunOptions
from ...core.repo import MODULES_DIR
from ...core.suite import ModuleSpec
from .model import WarmRecord, pick_module, verdict_lines
from .saves import RUN, SHOWN, UNCHANGED, Run, SaveTracker, is_watched, save_label
from .inotify import DirWatch
from ...stages.modbuild import module_names
from ...stages.paths import new_run_dir
from ...stages.progress import say
from .channel import WarmError
from .record import proc_facts
from .client import send_run, up, warm_options

WATCH_TIMEOUT_S = 60.0   # per run of the module, unless --timeout
IDLE_WAIT_S = 1.0        # the longest read of events with nothing pending
RUN_POLL_S = 0.05        # how often a run in flight is looked at


def shared_dir(mdir: Path) -> Path | None:
    """modules/, whose headers a user directory includes (None: mdir is modules/)."""
    return None if mdir == MODULES_DIR.resolve() else MODULES_DIR.resolve()


def content_digest(mdir: Path) -> str:
    """The digest of the directory's input files as they are now, and of the headers of
    modules/ for a user directory (core/modinputs.py)."""
    files = {}
    shared = shared_dir(mdir)
    for d, prefix in ((mdir, ""), *(((shared, "modules/"),) if shared else ())):
        for f in sorted(d.iterdir()):
            if is_watched(f.name) and (not prefix or f.suffix == ".h") and f.is_file():
                try:
                    files[prefix + f.name] = f.read_bytes()
                except OSError:
                    continue
    return dir_digest(files)


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _say_line(text: str) -> None:
    print(f"[{_clock(time.time())}] {text}", flush=True)


def _warm_guest(opts: RunOptions) -> WarmRecord:
    return up(opts, announce="no warm guest is up: starting one (it stays up after the "
              "watch; `highmem down` stops it)")[0]


def run_once(rec: WarmRecord, spec: ModuleSpec, opts: RunOptions) -> tuple[WarmRecord, Any]:
    """Run the module once on the warm guest: (the warm guest, a new one if this one went
    away (`highmem down` meanwhile), its response)."""
    try:
        return rec, send_run(rec, (spec,), opts, new_run_dir("watch"))
    except WarmError as e:
        if proc_facts(rec.pid)[0] is not None:
            raise
        say(f"the warm guest went away ({e.what})")
        rec = _warm_guest(opts)
        return rec, send_run(rec, (spec,), opts, new_run_dir("watch"))


class RunInFlight:
    """run_once in a thread (daemon: Ctrl-C does not wait for it), so that the saves made
    meanwhile are seen as they come."""

    def __init__(self, rec: WarmRecord, spec: ModuleSpec, opts: RunOptions) -> None:
        self.result: tuple[WarmRecord, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, args=(rec, spec, opts), daemon=True)
        self.thread.start()

    def _go(self, rec: WarmRecord, spec: ModuleSpec, opts: RunOptions) -> None:
        try:
            self.result = run_once(rec, spec, opts)
        except BaseException as e:  # handed to the main thread by outcome()
            self.error = e

    def done(self) -> bool:
        return not self.thread.is_alive()

    def outcome(self) -> tuple[WarmRecord, Any]:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def print_verdict(run: Run, resp: Any, shown: bool, now: float) -> None:
    label = save_label(run.save, run.digest, _clock(run.save.at))
    if not shown:
        _say_line(f"{label}: superseded by a newer save: its verdict is not shown")
        return
    took = None if not run.save.names else now - run.save.at
    for line in verdict_lines(resp["report_json"], took):
        _say_line(f"{label} {line}")


def _feed(saves: SaveTracker, events: DirWatch, timeout: float, mdir: Path) -> None:
    """The events that come within `timeout` s, fed to `saves`: of the directory's files,
    and of the headers of modules/ (as `modules/NAME.h`) for a user directory."""
    for d, name, kind in events.read(timeout):
        if kind == GONE:
            raise HarnessError(f"the watched directory {d or mdir} was deleted or moved",
                               "run highmem watch again on the module's directory")
        if d is not None and d != mdir:
            if not name.endswith(".h"):
                continue
            name = f"modules/{name}"
        saves.feed(time.time(), name, kind)


def watch_loop(mdir: Path, rec: WarmRecord, spec: ModuleSpec, opts: RunOptions,
               events: DirWatch) -> None:
    """Until Ctrl-C: events -> saves -> one run at a time -> the newest save's verdict."""
    saves = SaveTracker()
    saves.start_watch(time.time())
    flight: RunInFlight | None = None
    while True:
        if flight is None and saves.queued is not None:
            started = saves.start(content_digest(mdir))
            if started is not None and started[0] == RUN:
                flight = RunInFlight(rec, spec, opts)
            elif started is not None and started[0] == UNCHANGED:
                _say_line(f"save {started[1].number}: the content is the one of the verdict "
                          "shown last: not rerun")
        now = time.time()
        pending = saves.wait_s(now)
        timeout = IDLE_WAIT_S if pending is None else pending
        if flight is not None:
            timeout = min(timeout, RUN_POLL_S)
        _feed(saves, events, timeout, mdir)
        save = saves.settle(time.time())
        if save is not None:
            _say_line(f"saved: {', '.join(save.names)} (save {save.number})")
        if flight is not None and flight.done():
            rec, resp = flight.outcome()
            flight = None
            # the events up to now count: a save during the run is not missed
            _feed(saves, events, 0.0, mdir)
            outcome, run = saves.finish(content_digest(mdir), time.time())
            print_verdict(run, resp, outcome == SHOWN, time.time())


def cmd_watch(args: argparse.Namespace) -> int:
    mdir = Path(args.dir).resolve()
    if not mdir.is_dir():
        raise HarnessError(f"module directory {args.dir} does not exist",
                           "give the directory holding your module's .c and Kbuild")
    if not (mdir / "Kbuild").exists() and not (mdir / "Makefile").exists():
        raise HarnessError(f"{mdir} has no Kbuild or Makefile",
                           "add a Kbuild file with 'obj-m += your_module.o'")
    name = pick_module(args.module, module_names(mdir), str(mdir))
    opts = warm_options(args)
    opts.reset = args.reset
    if mdir != MODULES_DIR.resolve():
        opts.module_dirs = {name: mdir}
    spec = ModuleSpec(name, timeout=args.timeout or WATCH_TIMEOUT_S)
    rec = _warm_guest(opts)
    print(f"watching {mdir} for {name} on the warm guest (pid {rec.pid}): each save of "
          "*.c, *.h, Kbuild, Makefile reruns it; Ctrl-C stops", flush=True)
    try:
        shared = shared_dir(mdir)
        with DirWatch(mdir, *([shared] if shared else [])) as events:
            watch_loop(mdir, rec, spec, opts, events)
    except KeyboardInterrupt as e:
        print("stopped watching; the warm guest stays up (`highmem down` stops it)",
              flush=True)
        return 143 if isinstance(e, Terminated) else 0
    return 0
