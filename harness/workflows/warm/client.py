"""`highmem up`, `status`, `down`, and `highmem run` on a warm guest (the server is
warm_server.py; the edit loop `highmem watch` is warm_watch.py).

`up` starts the server detached, shows its progress (its warm.log) until it says ready or
failed, and returns: exit 0, or its error/fix and exit 2. `highmem run` finds a live warm
guest of the same kernel and knobs and sends it the run; a warm guest that does not fit
(other knobs, a rebuilt kernel, a changed source) is named and left alone, and the run
boots its own guest as always. A record whose server is gone is stale: reported, removed,
never used.
"""

import argparse
import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...core.errors import HarnessError
from ...core.monitor_commands import USER_QMP_SOCKET
from ...core.options import RunOptions
from ...core.repo import MODULES_DIR, REPO
from ...core.results import ModuleResult
from ...core.suite import ModuleSpec
from ...frontends.guest_record import running_guest
from ...frontends.inspect_args import sockets_text
from .model import (
    SERVER_MODULE,
    STATUS_FILE,
    WarmRecord,
    guest_knobs,
    request_timeout,
    run_request,
    unfit_reason,
)
from ...stages.paths import new_run_dir
from ...stages.progress import say
from ...stages.sockdir import OWNER
from ...stages.source import resolve_source
from .answer import read_answer
from .channel import WarmError, call
from .record import find_records, ident, live_records, proc_facts, read_record, remove_stale
from ...frontends.cli import LAB_KNOBS, run_options
from .server import options_text

UP_WAIT_S = 1800.0      # a cold kernel build on shared cores fits
IDLE_S = 4 * 3600.0     # a warm guest forgotten stops by itself
DOWN_WAIT_S = 30.0
STATUS_WAIT_S = 3.0      # its listener answers at once, even during a run


def fitting(opts: RunOptions, root: Path | None = None) -> WarmRecord | None:
    """The live warm guest (of artifacts directory `root`, default $HIGHMEM_ARTIFACTS)
    that can run a run of `opts` (None: none is up, or none fits; each one that does not
    fit is named on stderr)."""
    live = live_records(root)
    if not live:
        return None
    knobs = guest_knobs(opts)
    try:
        source_identity: str | None = resolve_source(opts.source).identity
    except HarnessError:
        source_identity = None
    for rec in live:
        why = unfit_reason(rec, knobs, ident(Path(rec.vmlinux)), source_identity)
        if why is None:
            return rec
        say(f"(a warm guest is up (pid {rec.pid}) but not used: {why}; `highmem down` "
            "stops it)")
    return None


def run_on_warm(rec: WarmRecord, opts: RunOptions, suite: tuple[ModuleSpec, ...],
                run_dir: Path) -> int:
    """`highmem run` on a warm guest: the report printed, its exit status."""
    say(f"highmem-harness run on the warm guest (pid {rec.pid}): modules rebuilt, no "
        f"image, no boot; artifacts in {run_dir}")
    (run_dir / "warm-guest").symlink_to(rec.run_dir)
    try:
        resp = send_run(rec, suite, opts, run_dir)
    except KeyboardInterrupt:
        say("interrupted: the warm guest finishes the run it was given and stays up")
        raise
    print(resp["report"], flush=True)
    return int(resp["exit"])


def send_run(rec: WarmRecord, suite: tuple[ModuleSpec, ...], opts: RunOptions,
             run_dir: Path) -> dict[str, Any]:
    """The answer to a run of `suite` on the warm guest, its files read: `report` (the
    text), `report_json` (the data), `exit`."""
    dirs = {n: str(d.resolve()) for n, d in opts.module_dirs.items()
            if d.resolve() != MODULES_DIR}
    req = run_request(suite, dirs, str(run_dir.resolve()), opts.reset)
    resp = call(Path(rec.socket), req, request_timeout(req))
    answer = read_answer(resp)
    return {**resp, "report": answer.report, "report_json": answer.report_json}


def run_specs_on_warm(rec: WarmRecord, specs: tuple[ModuleSpec, ...],
                     module_dirs: dict[str, Path], reset: bool) -> list[ModuleResult]:
    """The ModuleResults of `specs` run on the warm guest (for the pytest plugin), read
    from the results.json its answer names (JSON, core/result_json.py). The socket must be
    our own server's: a 0700 directory of ours whose owner is the record's pid."""
    _check_ours(rec)
    dirs = {n: str(d.resolve()) for n, d in module_dirs.items() if d.resolve() != MODULES_DIR}
    req = run_request(specs, dirs, "", reset)
    req["results"] = "json"
    resp = call(Path(rec.socket), req, request_timeout(req))
    results = read_answer(resp, with_results=True).results
    assert results is not None
    return results


def _check_ours(rec: WarmRecord) -> None:
    d = Path(rec.socket).parent
    try:
        st = d.lstat()
        owner = int((d / OWNER).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        owner, st = -1, None
    if st is None or stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid() \
            or st.st_mode & 0o077 or owner != rec.pid:
        raise WarmError(f"the warm guest's socket directory {d} is not its server's own "
                        "0700 directory", "stop it with `highmem down` and start a new one")


def start_server(opts: RunOptions, wait_s: float = UP_WAIT_S,
                 idle_s: float = IDLE_S) -> WarmRecord:
    """Start a warm server detached (it stops after idle_s without a request) and wait
    until it is ready (its progress shown); HarnessError (its error and fix) if it fails
    or does not get ready within wait_s."""
    # the image of our modules only (the snapshot of `highmem run`'s): user modules are
    # built and pushed per request, so their edits never change the image
    opts = dataclasses.replace(opts, module_dirs={})
    run_dir = new_run_dir("warm")
    log = run_dir / "warm.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    argv = [sys.executable, "-m", SERVER_MODULE, "--run-dir", str(run_dir),
            "--options", options_text(opts), "--idle-timeout", str(idle_s)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    say(f"starting a warm guest (pid {proc.pid}; log {log})")
    try:
        return _wait_ready(proc.poll, run_dir, log, wait_s)
    except BaseException:
        if proc.poll() is None:  # interrupted, or too slow: stop what we started
            proc.terminate()
            try:
                proc.wait(timeout=DOWN_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def _wait_ready(exited: Callable[[], int | None], run_dir: Path, log: Path,
                wait_s: float) -> WarmRecord:
    """Until the server's record says ready (its log shown meanwhile); HarnessError when
    it says failed, its process ended (`exited()` is its exit status, None while it runs)
    or wait_s passed."""
    deadline = time.monotonic() + wait_s
    shown = 0
    status = run_dir / STATUS_FILE
    while True:
        shown = _show_log(log, shown)
        rec = read_record(status)
        if rec is not None and rec.state == "ready":
            return rec
        if rec is not None and rec.state == "failed":
            status.unlink(missing_ok=True)
            raise HarnessError(rec.error, rec.fix)
        code = exited()
        if code is not None:
            _show_log(log, shown)
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise HarnessError(f"the warm guest's server exited ({code}) before it was "
                               f"ready: {tail[0]}", f"read {log}")
        if time.monotonic() > deadline:
            raise HarnessError(f"the warm guest was not ready within {wait_s:.0f} s",
                               f"read {log}; pass a longer --wait")
        time.sleep(0.2)


def up(opts: RunOptions, wait_s: float = UP_WAIT_S, announce: str = "",
       idle_s: float = IDLE_S) -> tuple[WarmRecord, bool]:
    """A ready warm guest for `opts`: (the one up, False), (the one another `highmem up`
    is starting, once ready, False), or (a new one, True; `announce` said first)."""
    rec = fitting(opts)
    if rec is not None:
        return rec, False
    knobs = guest_knobs(opts)
    for r in live_records():
        if r.state == "starting" and r.knobs == knobs:
            say(f"a warm guest is starting (pid {r.pid}): waiting for it")
            pid = r.pid
            return _wait_ready(lambda: None if proc_facts(pid)[0] else -1, Path(r.run_dir),
                               Path(r.run_dir) / "warm.log", wait_s), False
    if announce:
        say(announce)
    return start_server(opts, wait_s, idle_s), True


def _show_log(log: Path, shown: int) -> int:
    """Print the server log's new lines on stderr; the new offset."""
    try:
        with log.open("rb") as f:
            f.seek(shown)
            data = f.read()
    except OSError:
        return shown
    end = data.rfind(b"\n") + 1
    if end:
        sys.stderr.write(data[:end].decode(errors="replace"))
        sys.stderr.flush()
    return shown + end


def warm_options(args: argparse.Namespace) -> RunOptions:
    return run_options(args, (*LAB_KNOBS, "append"))


def cmd_up(args: argparse.Namespace) -> int:
    for name in ("wait", "idle_timeout"):
        value = getattr(args, name)
        if not value > 0:  # nan too
            raise HarnessError(f"--{name.replace('_', '-')} {value:g} is not a positive "
                               "number of seconds", "write e.g. --idle-timeout 3600")
    rec, new = up(warm_options(args), args.wait, idle_s=args.idle_timeout)
    if not new:
        print(f"a warm guest is already up: pid {rec.pid}, run directory {rec.run_dir}")
        return 0
    print(f"warm guest up in {rec.up_seconds:.1f} s: pid {rec.pid}, run directory "
          f"{rec.run_dir}; `highmem run` and `highmem watch` use it, `highmem down` stops it")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    found = find_records()
    rows: list[dict[str, Any]] = []
    for f in found:
        rec = f.record
        row: dict[str, Any] = {"status_file": str(f.path), "alive": f.alive,
                               "stale": f.stale}
        if rec is not None:
            row.update(pid=rec.pid, state=rec.state, run_dir=rec.run_dir, socket=rec.socket,
                       vmlinux=rec.vmlinux, image=rec.image, knobs=rec.knobs)
            guest = Path(rec.run_dir) / "sockets"
            if f.alive and guest.is_symlink():
                row["user_qmp_socket"] = str(guest.resolve() / USER_QMP_SOCKET)
            if f.alive and rec.state == "ready":
                row["answers"] = bool(send_status(rec).get("ok"))
        rows.append(row)
        if not f.alive and not f.owned:
            row["stale"] = f"{f.stale}; not in a directory this harness made: left alone"
        elif not f.alive:
            remove_stale(f)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no warm guest is up (`highmem up` starts one)")
    boot = running_guest()
    if boot is not None and boot.get("sockdir"):
        print(f"`highmem boot` guest up: pid {boot['pid']}, run directory {boot['run_dir']}\n"
              f"  {sockets_text(Path(boot['sockdir']))}")
    for r in rows:
        if r["alive"]:
            k = r["knobs"]
            state = r["state"] if r.get("answers", True) else \
                f"{r['state']} but not answering (read warm.log in its run directory)"
            print(f"up: pid {r['pid']}, {state}, --memory {k.get('memory')} --smp "
                  f"{k.get('smp')} --accel {k.get('accel')}"
                  + (f" --config {k['configs']}" if k.get("configs") else "")
                  + f"; kernel {r['vmlinux']}; run directory {r['run_dir']}; "
                  f"socket {r['socket']}")
            guest = Path(r["run_dir"]) / "sockets"     # stages/qemu.py's link to its sockets
            if guest.is_symlink():
                print(f"  {sockets_text(guest.resolve())}")
        else:
            print(f"stale: {r['status_file']}: {r['stale']}"
                  + ("" if r["stale"].endswith("left alone") else ": removed"))
    return 0


def stop_server(rec: WarmRecord) -> bool:
    """SIGTERM to the server, wait for it to go (SIGKILL after DOWN_WAIT_S); True if it
    was running."""
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + DOWN_WAIT_S
    while proc_facts(rec.pid)[0] is not None:  # a zombie counts as gone
        if time.monotonic() > deadline:
            os.kill(rec.pid, signal.SIGKILL)
            time.sleep(0.5)
            break
        time.sleep(0.1)
    return True


def cmd_down(args: argparse.Namespace) -> int:
    found = find_records()
    if not found:
        print("no warm guest is up")
    for f in found:
        if f.alive and f.record is not None:
            stop_server(f.record)
            print(f"stopped the warm guest of pid {f.record.pid} (QEMU and gdb with it)")
        else:
            print(f"removed a stale record: {f.path}: {f.stale}")
        remove_stale(f)  # gone now (the server removes its own; this covers SIGKILL)
    return 0


def send_ssh(rec: WarmRecord, cmd: str, timeout: float) -> tuple[int, str, str]:
    """`cmd` in the warm guest over its SSH (run by the server between runs): (exit code,
    stdout, stderr)."""
    resp = call(Path(rec.socket), {"op": "ssh", "cmd": cmd, "timeout": timeout},
                timeout + 120.0)  # a run ahead of it in the queue, a guest booted again
    return int(resp["rc"]), str(resp["out"]), str(resp["err"])


def send_status(rec: WarmRecord) -> dict[str, Any]:
    """The server's own answer (it is alive and serving)."""
    try:
        return call(Path(rec.socket), {"op": "status"}, STATUS_WAIT_S)
    except WarmError as e:
        return {"ok": False, "error": e.what}
