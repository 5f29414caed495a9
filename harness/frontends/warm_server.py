"""The warm guest's server: `highmem up` starts it detached (`python -m
harness.frontends.warm_server`, its own session, output in warm.log of its run directory).
It holds one Lab, prepared and with a guest up and attached, and serves requests on a unix
socket in a 0700 directory under /tmp, one connection at a time:

- `run` {specs, module_dirs, run_dir, reset}: the modules' directories rebuilt with
  `make M=` (no image, no reboot), each fresh .ko copied into the guest over SSH right
  before its insmod (again after every restore: a restored guest has none), the modules run
  as `highmem run` runs them (a clean kernel per module from the snapshot unless reset is
  off), report.txt and report.json written to run_dir; the answer holds both and the exit
  status. After answering, the next guest is restored at once, so the next request finds
  it ready.
  With run_dir "" no report files are written; with results "pickle" the answer also
  holds the ModuleResult objects (the pytest plugin's items are made from them).
- `status`: its record.

Its lifetime is explicit: warm.json (core/warm.py's WarmRecord) in its run directory says
starting/ready/failed; SIGTERM (`highmem down`) stops QEMU and gdb, removes the socket
directory and the record. Killed with -9, QEMU and gdb die with it (PR_SET_PDEATHSIG) and
its record is found stale by the next `highmem status`/`run`/`down`/`up` and removed. It
exits by itself after --idle-timeout seconds without a request.
"""

import argparse
import base64
import hashlib
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from ..core import report
from ..core.errors import HarnessError, Terminated
from ..core.options import RunOptions
from ..core.phases import Phases
from ..core.repo import MODULES_DIR
from ..core.results import ModuleResult, RunResult, exit_status
from ..core.suite import ModuleSpec
from ..core.warm import (
    SOCKET_NAME,
    STATUS_FILE,
    WarmRecord,
    decode,
    encode,
    guest_knobs,
    spec_from_json,
)
from ..lab import Lab, Session
from ..operations import StageOperations
from ..stages.build import KernelBuild
from ..stages.console_log import ConsoleLog
from ..stages.modbuild import CORE, build_modules, module_names, symvers
from ..stages.module_run import run_module
from ..stages.progress import say
from ..stages.sockdir import make_sockdir
from ..stages.warm_channel import WarmError, read_line
from ..stages.warm_push import push_ko
from ..stages.warm_record import ident, proc_facts, write_record

REQUEST_READ_S = 10.0   # a client has this long to send its request line


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
    """StageOperations whose guests run the pushed modules of `kos` (name -> host .ko)."""

    def __init__(self) -> None:
        super().__init__()
        self.kos: dict[str, Path] = {}

    def boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
             run_dir: Path) -> Any:
        return WarmSession(super().boot(kernel, initrd, opts, run_dir), self.kos)


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
        self.used = False   # the guest ran modules that a reset must not leave behind

    def start(self) -> None:
        """Prepare (configure, build, image), the guest up and attached; record ready."""
        write_record(self.run_dir, self.record)
        t0 = time.monotonic()
        self.lab.prepare()
        assert self.lab.built is not None and self.lab.initrd is not None
        self.core_sha = core_source_hash()
        self._set_kos()
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
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            srv.bind(self.record.socket)
            srv.listen(4)
            srv.settimeout(1.0)
            idle_since = time.monotonic()
            while not self.stop:
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    if time.monotonic() - idle_since > self.idle_timeout:
                        say(f"no request for {self.idle_timeout:.0f} s: stopping")
                        return
                    continue
                with conn:
                    self._one(conn)
                self._prewarm()
                idle_since = time.monotonic()

    def _one(self, conn: socket.socket) -> None:
        try:
            req = decode(read_line(conn, time.monotonic() + REQUEST_READ_S))
            resp = self.handle(req)
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

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            return {"ok": True, "record": json.loads(self.record.to_json())}
        if op == "down":
            self.stop = True
            return {"ok": True}
        if op == "run":
            return self.run(req)
        raise ValueError(f"unknown op {op!r}")

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        """Rebuild the modules' directories, run the specs, write and return the report."""
        specs = [spec_from_json(s) for s in req["specs"]]
        dirs = {str(n): Path(d) for n, d in dict(req.get("module_dirs", {})).items()}
        run_dir = Path(req["run_dir"] or self.run_dir)
        lab = self.lab
        lab.phases, lab.boots = Phases(), []
        lab.opts.reset = bool(req.get("reset", True))
        say(f"run: {', '.join(s.title for s in specs)} -> {run_dir}")
        with lab.phases.phase("build"):
            self._rebuild(specs, dirs)
        result = RunResult(run_dir=run_dir, modules=[], meminfo={}, phases=lab.phases)
        reset = lab.opts.reset
        for i, spec in enumerate(specs):
            # the last module's guest is dropped after the answer (_prewarm), not before
            lab.opts.reset = reset and i < len(specs) - 1
            result.modules.append(lab.run_spec(spec))
            result.meminfo, result.layout = lab.meminfo, lab.layout
        lab.opts.reset = reset
        self.used = lab.resets  # (no snapshot: one kernel for all modules, as in a run)
        result.boots = lab.boots
        text = report.format_report(result)
        if req["run_dir"]:
            report.write_json(run_dir / "report.json", result)
            (run_dir / "report.txt").write_text(text + "\n")
        resp = {"ok": True, "report": text, "exit": exit_status(result),
                "report_json": json.loads(report.report_json(result)),
                "warm_run_dir": str(self.run_dir)}
        if req.get("results") == "pickle":  # the pytest plugin wants the objects
            resp["results_pickle"] = base64.b64encode(pickle.dumps(result.modules)).decode()
        return resp

    def _rebuild(self, specs: list[ModuleSpec], dirs: dict[str, Path]) -> None:
        """`make M=` for each directory of the specs' modules; the Lab's built modules
        and build failures updated (a module that does not compile is NO BUILD)."""
        built = self.lab.built
        assert built is not None
        kernel = self.lab.kernel
        for d in dict.fromkeys(dirs.get(s.name, MODULES_DIR) for s in specs):
            extra = None if d == MODULES_DIR else symvers(kernel)
            kos, failures = build_modules(kernel, d, extra_symbols=extra)
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
        lab = self.lab
        s: Session | None = lab.session
        if s is not None and (self.used or not s.alive()):
            s.close()
            lab.session = None
        self.used = False
        if lab.session is None and not self.stop:
            try:
                lab.boot(attach=True)
                lab.session.guest_ssh()  # type: ignore[union-attr]  # connected now, not at the push
            except HarnessError as e:
                say(f"the next guest did not come up ({e.what}); the next request boots")

    def close(self) -> None:
        try:
            self.lab.close()
        finally:
            shutil.rmtree(self.sockdir, ignore_errors=True)
            (self.run_dir / "sockets-warm").unlink(missing_ok=True)


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
