"""`highmem watch MODULE_DIR [--module NAME]`: the edit loop. Every save of a `.c`, `.h`,
Kbuild or Makefile in the directory (polled every 0.2 s) rebuilds the module with
`make M=` and runs it on the warm guest (one is started if none is up, and stays up after);
one compact verdict per save: PASS, or the failing case and PTE field, or the compiler's
first error, with the time from the save to the verdict. Ctrl-C ends the watch.
"""

import argparse
import time
from pathlib import Path

from ..core.errors import HarnessError, Terminated
from ..core.options import RunOptions
from ..core.repo import MODULES_DIR
from ..core.suite import ModuleSpec
from ..core.warm import WarmRecord, changed_since, is_watched, pick_module, verdict_lines
from ..stages.modbuild import module_names
from ..stages.paths import new_run_dir
from ..stages.progress import say
from ..stages.warm_channel import WarmError
from ..stages.warm_record import proc_facts
from .warm_client import send_run, up, warm_options

POLL_S = 0.2
WATCH_TIMEOUT_S = 60.0   # per run of the module, unless --timeout


def mtimes(d: Path) -> dict[str, int]:
    """The watched files of `d`: name -> mtime (ns)."""
    out = {}
    for f in d.iterdir():
        if is_watched(f.name):
            try:
                out[f.name] = f.stat().st_mtime_ns
            except OSError:
                continue
    return out


def _warm_guest(opts: RunOptions) -> WarmRecord:
    return up(opts, announce="no warm guest is up: starting one (it stays up after the "
              "watch; `highmem down` stops it)")[0]


def verdict(rec: WarmRecord, spec: ModuleSpec, opts: RunOptions,
            saved: float | None) -> WarmRecord:
    """Run the module once on the warm guest and print its verdict lines; the warm guest
    (a new one if this one went away: `highmem down` meanwhile)."""
    try:
        resp = send_run(rec, (spec,), opts, new_run_dir("watch"))
    except WarmError as e:
        if proc_facts(rec.pid)[0] is not None:
            raise
        say(f"the warm guest went away ({e.what})")
        rec = _warm_guest(opts)
        resp = send_run(rec, (spec,), opts, new_run_dir("watch"))
    took = None if saved is None else time.time() - saved
    stamp = time.strftime("%H:%M:%S")
    for line in verdict_lines(resp["report_json"], took):
        print(f"[{stamp}] {line}", flush=True)
    return rec


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
    if mdir != MODULES_DIR:
        opts.module_dirs = {name: mdir}
    spec = ModuleSpec(name, timeout=args.timeout or WATCH_TIMEOUT_S)
    rec = _warm_guest(opts)
    print(f"watching {mdir} for {name} on the warm guest (pid {rec.pid}): each save of "
          "*.c, *.h, Kbuild, Makefile reruns it; Ctrl-C stops", flush=True)
    seen = mtimes(mdir)
    try:
        rec = verdict(rec, spec, opts, None)
        while True:
            time.sleep(POLL_S)
            now = mtimes(mdir)
            changed = changed_since(seen, now)
            if not changed:
                continue
            seen = now
            saved = max((now[n] for n in changed if n in now), default=time.time_ns()) / 1e9
            print(f"[{time.strftime('%H:%M:%S')}] saved: {', '.join(changed)}", flush=True)
            rec = verdict(rec, spec, opts, saved)
    except KeyboardInterrupt as e:
        print("stopped watching; the warm guest stays up (`highmem down` stops it)",
              flush=True)
        return 143 if isinstance(e, Terminated) else 0
