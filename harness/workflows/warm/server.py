"""The warm guest's server: `highmem up` starts it detached (`python -m
harness.workflows.warm.server`, its own session, output in warm.log of its run directory).
It holds one Lab, prepared and with a guest up and attached, and serves requests on a unix
socket in a 0700 directory under /tmp, one request line and one answer per connection:

- `run` {specs, module_dirs, run_dir, reset}: the modules' directories rebuilt with
  `make M=` as soon as the request is read (no image, no reboot; the build overlaps the
  restore of the guest that follows the previous request); runs in order, each module's
  fresh .ko copied into the guest over SSH right before its insmod (again after every
  restore: a restored guest has none), the modules run as `highmem run` runs them (a clean
  kernel per module from the snapshot unless reset is off), report.txt and report.json
  written to run_dir (when it is "", to answers/NNNNN of the server's run directory); the
  answer holds the exit status and the paths of those files (with results "json", of
  results.json too: the ModuleResults as JSON, core/result_json.py, from which the pytest
  plugin makes its items), so an answer of any size goes through (workflows/warm/answer.py).
  After answering, the next guest is restored at once.
- `status`: its record; `down`: stop. Both answered at once, even while a run goes on.

Its lifetime is explicit: warm.json (workflows/warm/model.py's WarmRecord) in its run directory says
starting/ready/failed; SIGTERM (`highmem down`) stops QEMU and gdb, removes the socket
directory and the record. Killed with -9, QEMU and gdb die with it (PR_SET_PDEATHSIG) and
its record is found stale by the next `highmem status`/`run`/`down`/`up` and removed. It
exits by itself after --idle-timeout seconds without a request. Its image is kept alive by
a hard link (another run may prune the image cache meanwhile: WarmOperations.keep_image).
"""

import argparse
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

from ...core.errors import HarnessError, Terminated
from ...core.options import RunOptions
from ...core.phases import Phases
from ...core.repo import MODULES_DIR
from ...core.results import ModuleResult, RunResult, exit_status
from ...core.suite import ModuleSpec, refuse_own_names
from ...run import run_modules, write_reports
from .model import (
    KEEP_PREFIX,
    SOCKET_NAME,
    STATUS_FILE,
    WarmRecord,
    decode,
    encode,
    guest_knobs,
    spec_from_json,
)
from ...lab import Lab, Session
from ...operations import StageOperations
from ...stages.build import KernelBuild
from ...stages.console_log import ConsoleLog
from ...stages import owned
from ...stages.modbuild import CORE, build_modules, module_names, symvers
from ...stages.module_run import run_module
from ...stages.progress import say
from ...stages.sockdir import make_sockdir
from .answer import next_answer_dir, write_answer
from .channel import WarmError, read_line
from .push import push_ko
from .record import ident, proc_facts, write_record

REQUEST_READ_S = 10.0   # a client has this long to send its request line
DirBuild = tuple[Path, list[Path], dict[str, str]]  # a directory, its .ko files, failures


class WarmSession:
    """The Lab's session (a GuestSession, delegated to) whose modules are pushed: the
    fresh .ko of each module is copied into the guest over SSH before its insmod."""

    def __init__(self, inner: Any, kos: dict[str, Path]) -> None:
        self.inner, self.kos = inner, kos

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run_module(self, spec: ModuleSpec, console: ConsoleLog) -> ModuleResult:
        g = self.inner.module_guest(console)
        ko = self.kos.get(spec.name)
        if ko is not None:
            g.kos[spec.name] = push_ko(self.inner.guest_ssh(), ko)
        return run_module(g, spec)


class WarmOperations(StageOperations):
    """StageOperations whose guests run the pushed modules of `kos` (name -> host .ko),
    and whose image outlives the image cache's pruning (keep_image())."""

    def __init__(self) -> None:
        super().__init__()
        self.kos: dict[str, Path] = {}
        self.kept_image: tuple[Path, Path] | None = None  # (the image, a hard link to it)

    def keep_image(self, initrd: Path) -> None:
        """A hard link to the image beside it (a name the image cache's pruning does not
        match): another run may prune the image while this server lives for hours; boot()
        puts the same file (same size and mtime: the snapshot still fits) back."""
        for old in initrd.parent.glob(f"{KEEP_PREFIX}*"):  # of servers killed with -9
            pid = old.name[len(KEEP_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and proc_facts(int(pid))[0] is None:
                old.unlink(missing_ok=True)
        keep = initrd.parent / f"{KEEP_PREFIX}{os.getpid()}-{initrd.name}"
        keep.unlink(missing_ok=True)
        os.link(initrd, keep)
        self.kept_image = (initrd, keep)

    def boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
             run_dir: Path) -> Any:
        if self.kept_image is not None and self.kept_image[0] == initrd \
                and not initrd.exists():
            try:
                os.link(self.kept_image[1], initrd)
                say(f"  the image {initrd.name} was pruned by another run: put back")
            except FileExistsError:  # made again meanwhile (its snapshot may not fit)
                pass
        return WarmSession(super().boot(kernel, initrd, opts, run_dir), self.kos)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.kept_image is not None:
                self.kept_image[1].unlink(missing_ok=True)


def core_source_hash() -> str:
    """hm_checkpoint's sources as they are now: the guest loaded the .ko built from them
    when the warm guest started (the .ko itself differs when kbuild builds it alone)."""
    h = hashlib.sha256()
    for name in (f"{CORE}.c", f"{CORE}.h"):
        f = MODULES_DIR / name
        h.update(f.read_bytes() if f.exists() else b"")
    return h.hexdigest()


class WarmServer:
    """One Lab and its socket; serve() until SIGTERM, a `down` request or idle."""

    def __init__(self, opts: RunOptions, run_dir: Path, idle_timeout: float) -> None:
        self.opts, self.run_dir, self.idle_timeout = opts, run_dir, idle_timeout
        self.ops = WarmOperations()
        self.lab = Lab(opts, run_dir, Phases(), self.ops)
        self.sockdir = make_sockdir()
        (run_dir / "sockets-warm").symlink_to(self.sockdir)
        pid = os.getpid()
        self.record = WarmRecord(pid=pid, started=proc_facts(pid)[1] or "", run_dir=str(run_dir),
                                 socket=str(self.sockdir / SOCKET_NAME),
                                 knobs=guest_knobs(opts))
        self.core_sha = ""
        self.stop = False
        self.used = False       # the guest ran modules that a reset must not leave behind
        self.prewarm = False    # the next guest is to be made ready
        self.requests: queue.Queue[tuple[socket.socket, dict[str, Any],
                                         Future[list[DirBuild]] | None]] = queue.Queue()
        self.builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="make")
        self.answers: list[Path] = []   # answers/NNNNN made for requests without run_dir

    def start(self) -> None:
        """Prepare (configure, build, image), the guest up and attached; record ready."""
        write_record(self.run_dir, self.record)
        t0 = time.monotonic()
        self.lab.prepare()
        assert self.lab.built is not None and self.lab.initrd is not None
        self.core_sha = core_source_hash()
        self._set_kos()
        self.ops.keep_image(self.lab.initrd)
        self.lab.boot(attach=True)
        k = self.lab.kernel
        self.record.state = "ready"
        self.record.vmlinux = str(k.vmlinux)
        self.record.vmlinux_ident = ident(k.vmlinux) or ""
        self.record.source_identity = k.source.identity
        self.record.image = str(self.lab.initrd)
        self.record.up_seconds = round(time.monotonic() - t0, 2)
        write_record(self.run_dir, self.record)
        say(f"warm guest ready in {self.record.up_seconds:.1f} s: {self.record.socket}")

    def _set_kos(self) -> None:
        assert self.lab.built is not None
        self.ops.kos.clear()
        self.ops.kos.update({k.stem: k for k in self.lab.built.kos if k.stem != CORE})

    def serve(self) -> None:
        """A listener thread reads each request and starts its modules' build at once (so a
        build overlaps the restore of the next guest); this thread prewarms the guest, runs
        the requests in order and answers them."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            srv.bind(self.record.socket)
            srv.listen(4)
            srv.settimeout(0.5)
            threading.Thread(target=self._listen, args=(srv,), daemon=True).start()
            idle_since = time.monotonic()
            while not self.stop:
                if self.prewarm:
                    self._prewarm()
                try:
                    conn, req, build = self.requests.get(timeout=1.0)
                except queue.Empty:
                    if time.monotonic() - idle_since > self.idle_timeout:
                        say(f"no request for {self.idle_timeout:.0f} s: stopping")
                        return
                    continue
                with conn:
                    self._answer(conn, lambda: self.run(req, build) if build is not None
                                 else self.ssh(req))
                self.prewarm = True
                idle_since = time.monotonic()

    def _listen(self, srv: socket.socket) -> None:
        """Accept, read the request; `status` and `down` answered here (even while a run
        goes on), a `run` queued with its build started."""
        while not self.stop:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:  # closed: the server stops
                return
            try:
                req = decode(read_line(conn, time.monotonic() + REQUEST_READ_S))
                op = req["op"]
            except (HarnessError, ValueError, KeyError) as e:
                bad = {"ok": False, "error": f"bad request: {e}", "fix": "report this"}
                with conn:
                    self._answer(conn, lambda: bad)
                continue
            if op == "run" and not self.stop:
                self.requests.put((conn, req, self.builder.submit(self._build, req)))
                continue
            if op == "ssh" and not self.stop:  # on the guest, between runs: queued too
                self.requests.put((conn, req, None))
                continue
            with conn:
                self._answer(conn, lambda: self.handle(op))

    def _answer(self, conn: socket.socket, make: Callable[[], dict[str, Any]]) -> None:
        """Send make()'s answer; an error of the user or the machine, or a bug of ours,
        is an answer too (and the server goes on)."""
        try:
            resp = make()
        except (ValueError, KeyError, TypeError) as e:
            resp = {"ok": False, "error": f"bad request: {e}", "fix": "report this"}
        except HarnessError as e:
            resp = {"ok": False, "error": e.what, "fix": e.fix}
        except Exception as e:  # noqa: BLE001 - our bug: answer, log, keep serving
            traceback.print_exc()
            resp = {"ok": False, "error": f"internal error of the warm guest: "
                    f"{type(e).__name__}: {e}", "fix": "read warm.log in its run directory "
                    "and report it"}
        try:
            conn.sendall(encode(resp))
        except OSError:
            say("the client left before its answer")

    def handle(self, op: str) -> dict[str, Any]:
        if op == "status":
            return {"ok": True, "record": json.loads(self.record.to_json())}
        if op == "down":
            self.stop = True
            return {"ok": True}
        if op == "run":
            raise WarmError("the warm guest is stopping", "start one: highmem up")
        raise ValueError(f"unknown op {op!r}")

    def ssh(self, req: dict[str, Any]) -> dict[str, Any]:
        """`highmem ssh -- CMD` on the warm guest (booted again if a run left none); the
        guest counts as used: the next run with resets starts on a clean one."""
        cmd, timeout = str(req["cmd"]), float(req.get("timeout", 60.0))
        if self.lab.session is None:
            self.lab.boot(attach=True)
        session = self.lab.session
        assert session is not None
        rc, out, err = session.run(cmd, timeout)  # type: ignore[attr-defined]
        self.used = True
        return {"ok": True, "rc": rc, "out": out, "err": err}

    def run(self, req: dict[str, Any], build: "Future[list[DirBuild]]") -> dict[str, Any]:
        """Wait for the modules' build, run the specs, write and return the report."""
        specs = [spec_from_json(s) for s in req["specs"]]
        run_dir = Path(req["run_dir"] or self.run_dir)
        lab = self.lab
        lab.phases, lab.boots = Phases(), []
        lab.opts.reset = bool(req.get("reset", True))
        say(f"run: {', '.join(s.title for s in specs)} -> {run_dir}")
        with lab.phases.phase("build"):  # what is left of it: it began when the request came
            self._apply(build.result())
        result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=lab.phases)
        reset = lab.opts.reset

        def before(i: int, n: int) -> None:
            # the last module's guest is dropped after the answer (_prewarm), not before
            lab.opts.reset = reset and i < n - 1
        try:
            run_modules(lab, tuple(specs), result, before)
        finally:
            lab.opts.reset = reset
        self.used = lab.resets  # (no snapshot: one kernel for all modules, as in a run)
        result.boots = lab.boots
        if result.interrupted:  # the server is being stopped: no answer, as before
            raise Terminated() if result.interrupted == "SIGTERM" else KeyboardInterrupt()
        return run_answer(result, req, self.run_dir, self.answers)

    def _build(self, req: dict[str, Any]) -> "list[DirBuild]":
        """(In the builder thread.) `make M=` for each directory of the request's modules:
        [(directory, .ko files, {module: first error})]."""
        dirs = {str(n): Path(d) for n, d in dict(req.get("module_dirs", {})).items()}
        kernel = self.lab.kernel
        out = []
        for d in dict.fromkeys(dirs.get(str(s["name"]), MODULES_DIR) for s in req["specs"]):
            if d != MODULES_DIR:
                refuse_own_names(d, module_names(d), module_names(MODULES_DIR))
            extra = None if d == MODULES_DIR else symvers(kernel)
            out.append((d, *build_modules(kernel, d, extra_symbols=extra)))
        return out

    def _apply(self, builds: "list[DirBuild]") -> None:
        """The Lab's built modules and build failures updated from the builds (a module
        that does not compile is then NO BUILD)."""
        built = self.lab.built
        assert built is not None
        for d, kos, failures in builds:
            names = set(module_names(d)) | {k.stem for k in kos} | set(failures)
            built.kos = [k for k in built.kos if k.stem not in names] + kos
            for n in names:
                built.failures.pop(n, None)
            built.failures.update(failures)
        if core_source_hash() != self.core_sha:
            raise WarmError(f"{CORE}.c or .h changed since the warm guest started (its guest "
                            "loaded the old module)", "restart it: highmem down; highmem up")
        self._set_kos()

    def _prewarm(self) -> None:
        """The next guest up now (restored from the snapshot, SSH connected), so a request
        finds it ready: the guest of the last request is dropped here, after its answer,
        when each module must start from a clean kernel; one that died idle is replaced."""
        self.prewarm = False  # once per request: a guest that does not come up is not retried
        lab = self.lab
        s: Session | None = lab.session
        if s is not None and (self.used or not s.alive()):
            s.close()
            lab.session = None
        self.used = False
        if lab.session is None and not self.stop:
            try:
                lab.boot(attach=True)
                lab.session.guest_ssh()  # type: ignore[union-attr,attr-defined]  # connected now
            except HarnessError as e:
                say(f"the next guest did not come up ({e.what}); the next request boots")

    def close(self) -> None:
        self.stop = True
        self.builder.shutdown(wait=False, cancel_futures=True)
        try:
            self.lab.close()
        finally:
            shutil.rmtree(self.sockdir, ignore_errors=True)
            (self.run_dir / "sockets-warm").unlink(missing_ok=True)


def run_answer(result: RunResult, req: dict[str, Any], server_run_dir: Path,
               made: list[Path]) -> dict[str, Any]:
    """The answer to the `run` request `req` whose modules ran: report.txt and report.json
    written in its run directory (or a new answers/NNNNN of `server_run_dir`; `made`: those
    made before), with results "json" results.json too (the pytest plugin's items); the
    exit status and the files' paths, whatever their size (workflows/warm/answer.py)."""
    out = Path(req["run_dir"]) if req["run_dir"] else next_answer_dir(server_run_dir, made)
    write_reports(result, to=out)
    wanted = result.modules if req.get("results") == "json" else None
    return {"ok": True, "exit": exit_status(result), "warm_run_dir": str(server_run_dir),
            **write_answer(out, wanted)}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def parse_options(text: str) -> RunOptions:
    d = json.loads(text)
    d["source"] = Path(d["source"])
    d["module_dirs"] = {k: Path(v) for k, v in d.get("module_dirs", {}).items()}
    return RunOptions(**d)


def options_text(opts: RunOptions) -> str:
    d = {k: getattr(opts, k) for k in opts.__dataclass_fields__}
    d["source"] = str(opts.source)
    d["module_dirs"] = {k: str(v) for k, v in opts.module_dirs.items()}
    return json.dumps(d)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="warm_server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", type=Path, required=True)
    ap.add_argument("--options", required=True, help="RunOptions as JSON")
    ap.add_argument("--idle-timeout", type=float, default=4 * 3600.0)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        owned.hold(a.run_dir)  # its client made it and exits: `highmem clean` leaves it
    except OSError:
        pass  # no marker (made by hand): nothing to hold
    server = WarmServer(parse_options(a.options), a.run_dir, a.idle_timeout)
    status = 0
    try:
        server.start()
        server.serve()
    except HarnessError as e:
        print(str(e), file=sys.stderr, flush=True)
        server.record.state, server.record.error, server.record.fix = "failed", e.what, e.fix
        write_record(server.run_dir, server.record)
        status = 2
    except KeyboardInterrupt:
        say("stopping (SIGTERM)")
    finally:
        server.close()
        if server.record.state != "failed":
            (a.run_dir / STATUS_FILE).unlink(missing_ok=True)
        say("warm guest stopped: QEMU and gdb ended, socket directory removed")
    return status


if __name__ == "__main__":
    sys.exit(main())
