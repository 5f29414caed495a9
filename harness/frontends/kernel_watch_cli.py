"""`highmem watch-kernel`: boot the guest with the harness's gdb attached (as `highmem pte`
does), run a shell workload over SSH once unwatched (the baseline time), then again with
breakpoints on the kernel's map and unmap paths (stages/kernel_watch.py), judging every
kmap_local, kmap, vmap and vm_map_ram mapping the kernel makes meanwhile. Prints and saves
(watch-kernel.txt, watch-kernel.json in the run directory) what was judged per kind, the
stops per second, the slowdown, and each finding with its caller.

Exit 0: no finding and at least --expect-mappings judged; 1: a finding, or too few judged;
2: usage or environment (error:/fix:).
"""

from __future__ import annotations

import argparse
import json
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from ..core import kernel_watch as kw
from ..core.errors import HarnessError
from ..core.repo import MODULES_DIR
from ..operations import GuestSession, guest_session
from ..stages.image import MODULE_DIR_IN_GUEST
from ..kernel.watch_facts import Facts, read_facts
from ..stages.kernel_watch import Watch, WatchError
from ..stages.mi_target import MiTarget
from ..stages.progress import say
from .inspect_cli import new_lab

# tmpfs page cache (write, read, copy), a pipe, exec of busybox applets: each page the
# kernel copies goes through a kmap_local map of a highmem page (ramfs/tmpfs and pipe
# buffers are __GFP_HIGHMEM), every exec copies its argv through one (copy_strings)
WORKLOAD = """set -e
d=/tmp/hm-watch.$$; mkdir $d; cd $d
dd if=/dev/urandom of=a bs=4096 count={pages} 2>/dev/null
cat a > b; cp b c; cat c | cat | cat > d; cmp a d
i=0; while [ $i -lt {execs} ]; do
  busybox true; echo $i | busybox sed s/0/1/ >/dev/null; i=$((i+1))
done
cd /; rm -rf $d; echo hm-watch-done"""


def workload(args: argparse.Namespace) -> str:
    script = args.workload or WORKLOAD.format(pages=args.pages, execs=args.execs)
    if args.insmod:
        ko = f"{MODULE_DIR_IN_GUEST}/{args.insmod}.ko"
        script = f"insmod {ko} {' '.join(map(shlex.quote, args.param))} || " \
            f"{{ echo 'insmod {args.insmod} failed'; exit 97; }}\n" + script
    return script


def module_dirs(dirs: list[str]) -> dict[str, Path]:
    """--module-dir DIR (repeatable): each module DIR/NAME.c is built against the kernel
    and put in the image (insmod it with --insmod NAME)."""
    out: dict[str, Path] = {}
    for d in dirs:
        path = Path(d).resolve()
        names = sorted(p.stem for p in path.glob("*.c"))
        if not path.is_dir() or not names:
            raise HarnessError(f"--module-dir {d}: no directory with module sources (*.c)",
                               "give a directory with a Kbuild and NAME.c files")
        out.update({n: path for n in names})
    return out


def drain(child: pexpect.spawn | None) -> str:
    """What the guest printed since the last call (read into console.log): QEMU must
    never block on a full console while the watch holds the guest."""
    if child is None:
        return ""
    try:
        return str(child.read_nonblocking(65536, timeout=0))
    except (pexpect.TIMEOUT, pexpect.EOF):
        return ""


def _timed(run: Callable[[str, float], tuple[int, str, str]], script: str,
           timeout: float) -> tuple[float, int, str]:
    t0 = time.monotonic()
    rc, out, err = run(script, timeout)
    return time.monotonic() - t0, rc, out + err


@dataclass
class Outcome:
    """What one watched run gave: the watch (its tally), the workload's times and exit,
    the kernel's complaints."""

    watch: Watch
    facts: Facts
    plain: float = 0.0
    watched: float = 0.0
    seconds: float = 0.0
    rc: int | None = None
    out: str = ""
    messages: list[str] = field(default_factory=list)


def watched_run(s: GuestSession, symbols: kw.SymbolTable, args: argparse.Namespace,
                script: str) -> Outcome:
    """The workload unwatched (the baseline), then watched; the guest attached."""
    ram = s.checker.ram
    if ram is None:
        raise WatchError("the guest has no shared RAM file to read at each stop",
                         "make /dev/shm a writable tmpfs (QEMU's RAM backend lives there)")
    base = workload(argparse.Namespace(**{**vars(args), "insmod": None}))
    plain, rc, out = _timed(s.run, base, args.max_seconds)
    if rc != 0:
        raise HarnessError(f"the workload failed unwatched (exit {rc}): {out[-300:]}",
                           "fix the --workload command")
    say(f"== watch-kernel: the workload took {plain:.1f} s unwatched")
    log_from = int(s.run("dmesg | wc -l", 60)[1].strip() or 0)
    s.gdb.interrupt()
    with s.kept.patient():
        facts = read_facts(MiTarget(s.gdb), s.checker.kernel_layout(),
                           s.checker.kernel_masks())
    o = Outcome(Watch(s.gdb, ram, facts, symbols.name, budget=args.budget,
                      map_entries=args.map_entries), facts, plain)
    o.watch.arm()
    errors: list[BaseException] = []
    done = threading.Event()

    def run_workload() -> None:
        try:
            o.watched, o.rc, o.out = _timed(s.run, script, args.max_seconds)
        except BaseException as e:  # noqa: BLE001 - raised below unless the guest panicked
            errors.append(e)
        finally:
            done.set()
    worker = threading.Thread(target=run_workload, daemon=True, name="workload")
    t0 = time.monotonic()
    worker.start()
    o.watch.serve(lambda: not done.is_set(), t0 + args.max_seconds,
                  lambda: drain(s.qemu.child if s.qemu else None))
    o.seconds = time.monotonic() - t0
    if o.watch.panic:   # SSH is gone with the guest: the console's line is the message
        o.messages = [o.watch.panic]
        return o
    o.watch.finish()
    s.gdb.resume()
    worker.join(30)
    if errors:
        e = errors[0]
        raise e if isinstance(e, HarnessError) else HarnessError(
            f"the watched workload did not finish: {e}", "read console.log in the run directory")
    o.messages = kw.kernel_complaints(s.run(f"dmesg | tail -n +{log_from + 1}", 60)[1])
    return o


def report(o: Outcome, args: argparse.Namespace, run_dir: Path) -> tuple[bool, str, dict]:
    """(passed, text, JSON) of a watched run."""
    t = o.watch.tally
    watched = o.watched or o.seconds
    ok = not t.findings and not o.messages and t.judged >= args.expect_mappings and o.rc == 0
    lines = [f"Kernel mappings judged while live: {t.judged} (workload {o.plain:.1f} s "
             f"unwatched, {watched:.1f} s watched: x{watched / o.plain if o.plain else 0:.1f})",
             kw.format_tally(t, o.seconds, args.budget)]
    if o.messages:
        lines += ["Kernel messages while watched:", *(f"  {m}" for m in o.messages)]
    if o.rc != 0:
        lines.append(f"The watched workload exited {o.rc}: {o.out[-300:]}")
    if t.judged < args.expect_mappings:
        lines.append(f"FAIL: {t.judged} mappings judged, fewer than --expect-mappings "
                     f"{args.expect_mappings}")
    lines.append(f"Verdict: {'PASS' if ok else 'FAIL'} (artifacts: {run_dir})")
    data = {"judged": dict(t.live), "after_unmap": dict(t.cleared), "unseen": dict(t.unseen),
            "stops": t.stops, "seconds": o.seconds, "budget": args.budget, "paused": t.paused,
            "unwatched_s": o.plain, "watched_s": watched, "callers": dict(t.callers),
            "findings": [f.to_json() for f in t.findings], "kernel_messages": o.messages,
            "unreadable": t.unreadable, "workload_rc": o.rc, "passed": ok}
    return ok, "\n".join(lines), data


def cmd_watch_kernel(args: argparse.Namespace) -> int:
    dirs = module_dirs(args.module_dir)
    kw.check_watch_options(args.budget, args.pages, args.execs, args.expect_mappings,
                           args.insmod, set(dirs) | {p.stem for p in MODULES_DIR.glob("*.c")})
    lab, run_dir = new_lab(args, "watch-kernel")
    lab.opts.module_dirs = dirs
    try:
        s = guest_session(lab, attach=True)
        symbols = kw.SymbolTable((lab.kernel.vmlinux.parent / "System.map").read_text())
        o = watched_run(s, symbols, args, workload(args))
    finally:
        lab.close()
    ok, text, data = report(o, args, run_dir)
    (run_dir / "watch-stops.json").write_text(json.dumps(
        {"kernel": kw.kernel_to_json(o.facts.kernel), "stops": o.watch.recorded},
        indent=1) + "\n")
    (run_dir / "watch-kernel.txt").write_text(text + "\n")
    (run_dir / "watch-kernel.json").write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(data, indent=2) if args.json else text)
    return 0 if ok else 1
