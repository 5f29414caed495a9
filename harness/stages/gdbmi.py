"""gdb/MI over pygdbmi, with one rule: every command waits for its own token's result record
under a real deadline (pygdbmi alone decides a response is over after a pause).

gdb is started under `setpriv --pdeathsig KILL`, so it dies with the harness; `close()` ends
it on every normal path. The transcript of every record goes to gdb-mi.log.

Every wait reads gdb in steps of at most 0.1 s and looks at the process between them: a gdb
that died (killed, crashed) is a GdbExited at once ("gdb exited: killed by SIGKILL"), never
a command's or a stop's whole deadline spent waiting for it.
"""

import json
import signal
import time
from pathlib import Path
from typing import Any, Callable

from pygdbmi.gdbcontroller import GdbController

from ..core.errors import GdbError
from ..core.gdb_text import parse_xp
from .paths import cache_dir
from .procutil import exit_text, pdeathsig_argv, stop

# gdb answers -exec-continue with ^running a moment before it waits on the target; a SIGINT
# in that moment is taken as a quit request and lost (seen: an inspection right after a
# symbol load resumed the guest). An interrupt waits this long after the last resume.
RESUME_SETTLE_S = 0.1
# A SIGINT that gdb has not answered with a stop within this long is taken as lost: the VM
# is stopped through QMP instead (QEMU's gdbstub reports any VM stop to a waiting gdb as
# SIGINT). Slower stops are seen under load only; the stop is the same either way.
SIGINT_ANSWER_S = 2.0
# gdb answers a command on a target whose QEMU died with an error at once; one that is still
# silent this long after is not coming back (seen: an internal error of gdb)
PEER_GONE_S = 1.0


def index_cache_args() -> list[str]:
    """gdb's index cache, keyed by vmlinux's build id, in our cache: the first gdb on a
    kernel writes its symbol index (gdb writes it to a temporary file and renames it), every
    later one reads it. The first type lookup (`struct task_struct`) then takes 0.3 s of CPU
    instead of 4.6 s, which under load (two guests of `pytest -n 2` attaching at once on a
    busy machine) outran the 30 s command deadline."""
    d = cache_dir() / "gdb-index"
    d.mkdir(parents=True, exist_ok=True)
    return ["-iex", f"set index-cache directory {d}", "-iex", "set index-cache enabled on"]


class GdbExited(GdbError):
    """The gdb process is gone (killed, or it crashed): nothing it was asked will come."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"gdb exited: {exit_text(returncode)}",
                         "read gdb-mi.log in the run directory; gdb was killed or crashed "
                         "(the OOM killer? dmesg on the host says)")
        self.returncode = returncode


def _target_closed(rec: dict[str, Any]) -> bool:
    """gdb's records when the remote end went away: the inferior's thread group exited,
    or "Remote communication error. Target disconnected." """
    if rec.get("type") == "notify" and rec.get("message") == "thread-group-exited":
        return True
    return rec.get("type") == "log" and "Target disconnected" in str(rec.get("payload"))


class Gdb:
    """A gdb/MI session on `vmlinux`, attached to QEMU's gdbstub unix socket."""

    def __init__(self, vmlinux: Path | None, transcript: Path, timeout: float = 30.0,
                 setup: bool = True) -> None:
        """vmlinux None: a gdb without symbols (registers, breakpoints at addresses and
        memory only; it starts in milliseconds instead of reading the kernel's DWARF).
        setup False: only start the process (setup() waits for it; another thread may do
        that — but the process must be started here, by the thread that outlives it:
        PR_SET_PDEATHSIG fires when the creating *thread* ends)."""
        self.timeout = timeout
        self.token = 100
        self.pending: list[dict[str, Any]] = []  # async records (e.g. *stopped) not yet taken
        self.running = False  # the target was resumed and no *stopped was taken since
        self.target_gone = False  # gdb saw the remote end close (QEMU exited): no target
        self.resumed_at = 0.0     # when the last -exec-continue was answered
        self.exit_logged = False  # "gdb exited" written to the transcript
        # stops the VM another way (QMP "stop"), for an interrupt gdb did not act on
        self.fallback_stop: Callable[[], None] | None = None
        # is the target's QEMU still running (set per guest): a command gdb has not
        # answered PEER_GONE_S after QEMU died is not waited for to its deadline
        self.peer_alive: Callable[[], bool] | None = None
        self.log = transcript.open("a")
        self.mi = GdbController(command=pdeathsig_argv(
            ["gdb", "--nx", "--quiet", "--interpreter=mi3", *index_cache_args(),
             *([str(vmlinux)] if vmlinux is not None else [])]),
            # we wait for our token's result ourselves: no extra pause after each read
            time_to_check_for_additional_output_sec=0.002)
        if setup:
            self.setup()

    def setup(self) -> None:
        """Wait for gdb to have read its file; the settings every command relies on."""
        for setting in ("pagination off", "confirm off", "width 0", "height 0"):
            self.cmd(f"-gdb-set {setting}")

    def __enter__(self) -> "Gdb":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exited(self) -> int | None:
        """gdb's return code if its process has ended (None: it runs, or close() ran)."""
        proc = self.mi.gdb_process
        return proc.poll() if proc is not None else None

    def check_alive(self) -> None:
        """GdbExited if the gdb process has ended (written once to the transcript)."""
        rc = self.exited()
        if rc is not None:
            if not self.exit_logged:
                self.log.write(f"=== {time.monotonic():.3f} gdb exited: {exit_text(rc)}\n")
                self.exit_logged = True
            raise GdbExited(rc)

    def _read(self, timeout: float) -> list[dict[str, Any]]:
        self.check_alive()
        try:
            recs = self.mi.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        except (OSError, ValueError) as e:
            raise GdbError(f"gdb is not running ({e})",
                           "read gdb-mi.log in the run directory") from None
        for r in recs:
            self.log.write(f"{time.monotonic():.3f} {json.dumps(r)}\n")
            if _target_closed(r):
                self.target_gone, self.running = True, False
            if r.get("message") == "stopped":
                self._flush_log()
        return recs

    def _flush_log(self) -> None:
        """Every stop is in gdb-mi.log as it happens (a run killed at a checkpoint keeps
        it). A full disk is not this call's to report: the next write or close() raises."""
        try:
            self.log.flush()
        except OSError:
            pass

    def cmd(self, command: str, timeout: float | None = None) -> tuple[dict[str, Any], list[str]]:
        """Send one MI command; return (its result record, console/target stream text)."""
        self.token += 1
        tok = self.token
        self.log.write(f">>> {time.monotonic():.3f} {tok}{command}\n")
        self.check_alive()
        try:
            self.mi.write(f"{tok}{command}", read_response=False)
        except (OSError, ValueError) as e:  # gdb is gone (e.g. after QEMU exited)
            self.check_alive()
            raise GdbError(f"gdb is not running ({e})",
                           "read gdb-mi.log in the run directory") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        stream: list[str] = []
        result: dict[str, Any] | None = None
        peer_gone_at: float | None = None
        while time.monotonic() < deadline:
            if self.peer_alive is not None and not self.peer_alive():
                peer_gone_at = peer_gone_at or time.monotonic()
                if time.monotonic() - peer_gone_at > PEER_GONE_S:
                    raise GdbError(f"QEMU exited and gdb did not answer '{command}' within "
                                   f"{PEER_GONE_S:.0f} s of it", "read gdb-mi.log in the "
                                   "run directory")
            # take the whole batch: a *stopped may arrive right after our ^running
            for r in self._read(0.1):
                if r.get("type") == "result" and r.get("token") == tok:
                    result = r
                elif r.get("type") in ("console", "target", "output") and r.get("payload"):
                    stream.append(str(r["payload"]))
                elif r.get("type") == "notify":
                    self.pending.append(r)
            if result is not None:
                if result.get("message") == "error":
                    msg = (result.get("payload") or {}).get("msg", "")
                    raise GdbError(f"gdb: {command}: {msg}",
                                   "read gdb-mi.log in the run directory")
                return result, stream
        raise GdbError(f"gdb did not answer '{command}' within {timeout or self.timeout:.0f} s",
                       "read gdb-mi.log in the run directory; the guest may be wedged")

    def wait_stopped(self, timeout: float) -> dict[str, Any] | None:
        """The payload of the next *stopped record, or None when `timeout` passes first
        (or the target is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, r in enumerate(self.pending):
                if r.get("message") == "stopped":
                    del self.pending[i]
                    self.running = False
                    return r.get("payload") or {}
            left = deadline - time.monotonic()
            if left <= 0 or self.target_gone:  # no stop comes from a target that is gone
                return None
            for r in self._read(min(0.1, left)):
                if r.get("type") == "notify":
                    self.pending.append(r)

    # -- conveniences over cmd() -------------------------------------------------------

    def attach(self, socket: Path) -> None:
        """Attach to QEMU's gdbstub (this stops the guest)."""
        self.target_gone = False
        self.cmd(f"-target-select remote {socket}", timeout=60)
        self.running = False

    def resume(self) -> None:
        """Continue all vCPUs. Older async records are dropped first: a *stopped that is
        pending now belongs to a stop we already handled (or to the attach)."""
        self.pending.clear()
        self.cmd("-exec-continue")
        self.running = True
        self.resumed_at = time.monotonic()

    def value(self, expr: str) -> str:
        r, _ = self.cmd(f'-data-evaluate-expression "{expr}"')
        return str(r["payload"]["value"])

    def int_value(self, expr: str) -> int:
        """An integer expression, e.g. "(unsigned long)$cr3" ($cr3 alone is a flags string)."""
        text = self.value(expr).split()[0]
        return int(text, 0)

    def read_virt(self, addr: int, size: int) -> bytes:
        r, _ = self.cmd(f"-data-read-memory-bytes {addr:#x} {size}")
        mem = r["payload"]["memory"][0]
        data = bytes.fromhex(mem["contents"])
        if len(data) != size:
            raise GdbError(f"read {len(data)} of {size} bytes at {addr:#x}",
                           "the address is not mapped in the stopped CPU's page tables")
        return data

    def registers(self, names: tuple[str, ...]) -> dict[str, int]:
        """Several registers of the stopped thread in one MI command (numbers looked up
        once), e.g. ("eax", "cr3", "cr4")."""
        if not hasattr(self, "_regnums"):
            r, _ = self.cmd("-data-list-register-names")
            self._regnums = {n: i for i, n in enumerate(r["payload"]["register-names"]) if n}
        try:
            nums = [self._regnums[n] for n in names]
        except KeyError as e:
            raise GdbError(f"gdb knows no register {e}", "read gdb-mi.log") from None
        r, _ = self.cmd("-data-list-register-values --skip-unavailable x "
                        + " ".join(map(str, nums)))
        by_num = {int(v["number"]): int(v["value"], 16)
                  for v in r["payload"]["register-values"]}
        return {n: by_num[i] for n, i in zip(names, nums) if i in by_num}

    def thread_pcs(self) -> dict[int, int]:
        """{cpu: program counter} of every vCPU (gdb's thread N is CPU N-1); stopped guest."""
        r, _ = self.cmd("-thread-info")
        out = {}
        for t in r["payload"].get("threads", []):
            try:
                out[int(t["id"]) - 1] = int(t["frame"]["addr"], 16)
            except (KeyError, ValueError, TypeError):
                continue
        return out

    def transcript_size(self) -> int:
        """Bytes in gdb-mi.log so far (per-module slices of the transcript start here)."""
        self.log.flush()
        return self.log.tell()

    def write_virt(self, addr: int, data: bytes) -> None:
        self.cmd(f"-data-write-memory-bytes {addr:#x} {data.hex()}")

    def monitor(self, line: str) -> str:
        """A QEMU monitor command through the gdbstub (the guest must be stopped)."""
        _, stream = self.cmd(f'-interpreter-exec console "monitor {line}"')
        return "".join(stream)

    def read_phys(self, addr: int, size: int) -> bytes:
        """Physical memory through the monitor's `xp` (gdb's own physical reads wrap at
        4 GiB on i386); size must be a multiple of 8."""
        words = max(1, size // 8)
        return parse_xp(self.monitor(f"xp /{words}gx {addr:#x}"), size)

    def interrupt(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop the running guest (all vCPUs); returns the *stopped payload.

        SIGINT, as gdb's own Ctrl-C: in all-stop mode gdb reads no MI command while the
        target runs, so `-exec-interrupt` would never be answered."""
        self.pending.clear()
        proc = self.mi.gdb_process
        if proc is None:
            raise GdbError("gdb is not running", "read gdb-mi.log in the run directory")
        settle = self.resumed_at + RESUME_SETTLE_S - time.monotonic()
        if settle > 0:
            time.sleep(settle)
        deadline = time.monotonic() + timeout
        self._sigint(proc)
        stopped = self.wait_stopped(min(timeout, SIGINT_ANSWER_S))
        if stopped is None and self.fallback_stop is not None and not self.target_gone:
            self.log.write(f"=== {time.monotonic():.3f} no stop {SIGINT_ANSWER_S:g} s after "
                           "SIGINT: the VM stopped through QMP\n")
            try:
                self.fallback_stop()
            except Exception as e:  # noqa: BLE001 - QMP's errors vary; the wait decides
                self.log.write(f"=== QMP stop failed: {e}\n")
        if stopped is None:
            stopped = self.wait_stopped(max(0.0, deadline - time.monotonic()))
        if stopped is None:
            raise GdbError(f"the guest did not stop within {timeout:.0f} s of SIGINT to gdb",
                           "read gdb-mi.log in the run directory; the guest may be wedged")
        return stopped

    def _sigint(self, proc: Any) -> None:
        proc.send_signal(signal.SIGINT)

    def close(self, timeout: float = 5.0) -> None:
        """End gdb: SIGTERM, then SIGKILL after `timeout` (pygdbmi's exit() waits forever)."""
        if self.mi.gdb_process is not None:
            stop(self.mi.gdb_process, timeout)
        self.mi.gdb_process = None
        self.log.close()
