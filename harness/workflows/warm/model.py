"""The warm guest's pure parts: its status record (what `highmem up` leaves in its run
directory), when a record is stale or does not fit a run, the request and response lines
of its socket, and the compact verdict `highmem watch` prints. No I/O here: the /proc facts
a staleness decision needs are passed in (workflows/warm/record.py reads them).
"""

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ...core.errors import HarnessError
from ...core.options import RunOptions
from ...core.suite import ModuleSpec

STATUS_FILE = "warm.json"       # in the server's run directory
SOCKET_NAME = "warm.sock"       # in the server's 0700 socket directory under /tmp
SERVER_MODULE = "harness.workflows.warm.server"
KEEP_PREFIX = ".warm-keep-"     # + PID-<image name>: a server's hard link to its image
# what a guest depends on, of the run knobs: a run with other values cannot use it
GUEST_KNOBS = ("source", "configs", "accel", "memory", "smp", "append", "snapshot")
MAX_LINE = 64 << 20             # a request or response line (a report.json of the suite)


@dataclass
class WarmRecord:
    """A warm guest's status file. state: starting -> ready, or failed (error, fix).
    `started`: the server's start time (/proc/PID/stat field 22) tells a reused pid apart;
    `knobs`: guest_knobs() of its options; `vmlinux_ident`/`source_identity`: the kernel
    it runs, to tell it is out of date."""

    pid: int
    started: str
    run_dir: str
    socket: str
    state: str = "starting"
    knobs: dict[str, str] = field(default_factory=dict)
    vmlinux: str = ""
    vmlinux_ident: str = ""
    source_identity: str = ""
    image: str = ""
    up_seconds: float = 0.0
    error: str = ""
    fix: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def parse_record(text: str) -> WarmRecord | None:
    """The record of a status file's text; None if it is not one (truncated, foreign)."""
    try:
        d = json.loads(text)
        if not isinstance(d, dict):
            return None
        names = {f.name for f in fields(WarmRecord)}
        rec = WarmRecord(**{k: v for k, v in d.items() if k in names})
    except (ValueError, TypeError):
        return None
    if not isinstance(rec.pid, int) or rec.pid <= 0 or not rec.socket or not rec.run_dir:
        return None
    return rec


def guest_knobs(opts: RunOptions) -> dict[str, str]:
    """The knobs a guest depends on, as text (compared between a run and a warm guest)."""
    return {k: (",".join(str(x) for x in v) if isinstance(v, list) else str(v))
            for k, v in ((k, getattr(opts, k)) for k in GUEST_KNOBS)}


def is_server_cmdline(words: list[str]) -> bool:
    """Whether a /proc/PID/cmdline (split at NUL) is a warm server: `python -m
    harness.workflows.warm.server ...`."""
    return SERVER_MODULE in words


def stale_reason(rec: WarmRecord, cmdline: list[str] | None, start_time: str | None) -> str | None:
    """Why the record's server is gone (None: it is alive). cmdline/start_time: of
    /proc/PID now (None when there is no such process)."""
    if cmdline is None:
        return f"its server (pid {rec.pid}) is gone"
    if not is_server_cmdline(cmdline):
        return f"pid {rec.pid} is no longer its server (another program has that pid)"
    if start_time != rec.started:
        return f"pid {rec.pid} was reused by another warm server"
    if rec.state == "failed":
        return f"it failed to start: {rec.error}"
    return None


def unfit_reason(rec: WarmRecord, knobs: dict[str, str], vmlinux_ident: str | None,
                 source_identity: str | None) -> str | None:
    """Why a live, ready warm guest cannot run a run of `knobs` (None: it can).
    vmlinux_ident: of its vmlinux file now (None: gone); source_identity: of the run's
    kernel source now (None: not known, not compared)."""
    if rec.state != "ready":
        return f"it is {rec.state}"
    diff = [k for k in GUEST_KNOBS if rec.knobs.get(k) != knobs.get(k)]
    if diff:
        k = diff[0]
        opt = {"configs": "config"}.get(k, k)
        return f"it was started with --{opt} {rec.knobs.get(k)!r}, this run has {knobs.get(k)!r}"
    if vmlinux_ident != rec.vmlinux_ident:
        return "its kernel was rebuilt since it started (vmlinux changed)"
    if source_identity is not None and source_identity != rec.source_identity:
        return "the kernel source changed since it started"
    return None


# --- the socket's lines: one JSON object per line, a request then its response ---

def encode(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg) + "\n").encode()


def decode(line: bytes) -> dict[str, Any]:
    """One line as a message; ValueError if it is not a JSON object with an `op` (request)
    or `ok` (response)."""
    d = json.loads(line.decode())
    if not isinstance(d, dict) or ("op" not in d and "ok" not in d):
        raise ValueError(f"not a warm-guest message: {line[:80]!r}")
    return d


def spec_to_json(spec: ModuleSpec) -> dict[str, Any]:
    return asdict(spec)


def spec_from_json(d: dict[str, Any]) -> ModuleSpec:
    return ModuleSpec(name=str(d["name"]), params=str(d.get("params", "")),
                      expect_log=tuple(d.get("expect_log", ())),
                      crashes=bool(d.get("crashes", False)),
                      timeout=float(d.get("timeout", ModuleSpec.timeout)),
                      allow_log=tuple(d.get("allow_log", ())),
                      cases=tuple(str(c) for c in d.get("cases", ())))


def run_request(specs: tuple[ModuleSpec, ...], module_dirs: dict[str, str], run_dir: str,
                reset: bool) -> dict[str, Any]:
    """Run `specs` on the warm guest; the user modules are built from `module_dirs`
    (name -> directory), ours from modules/; the report goes to `run_dir`."""
    return {"op": "run", "specs": [spec_to_json(s) for s in specs],
            "module_dirs": module_dirs, "run_dir": run_dir, "reset": reset}


def request_timeout(req: dict[str, Any], build_s: float = 600.0) -> float:
    """How long a client waits for the response to `req`: the modules' timeouts, a
    restore and a build per module, and the build of the directories."""
    specs = req.get("specs", [])
    return build_s + sum(float(s.get("timeout", 300.0)) + 60.0 for s in specs) + 30.0


# --- the compact verdict of `highmem watch` ---

def _title(m: dict[str, Any]) -> str:
    return m["name"] + (f" {m['params']}" if m.get("params") else "")


def first_evidence(m: dict[str, Any]) -> str:
    """The first reason a module of report.json failed, the failing case and PTE field
    first: `kmap_local_above_4g: mapped: PFN: expected 0x23f001, got 0x23f000`."""
    f = m.get("failure") or {}
    if f.get("kind") == "build":  # the compiler's first error, without the log's path
        cause = str(f.get("cause", ""))
        return re.sub(r" \(log: [^)]*\)$", "", cause.split(" did not compile: ", 1)[-1])
    for cp in m.get("checkpoints", []):
        if cp.get("error"):
            return f"checkpoint {cp.get('index')}: {cp['error']}"
        for c in cp.get("checks", []):
            if c.get("mismatches"):
                return f"{c.get('label') or cp.get('label')}: {c['mismatches'][0]}"
    reasons = m.get("reasons") or ["failed"]
    return str(reasons[0])


def verdict_lines(report: dict[str, Any], seconds: float | None = None) -> list[str]:
    """One line per module of a report.json: `kmap_local_basic: PASS (2 cases, 4 PTEs)`
    or `... FAIL: <first evidence>`; the last line adds the time from save to verdict."""
    lines = []
    for m in report.get("modules", []):
        cases = len(m.get("ktap", []))
        ptes = sum(len(cp.get("checks", [])) for cp in m.get("checkpoints", []))
        if m.get("passed"):
            lines.append(f"{_title(m)}: PASS ({cases} cases, {ptes} PTEs)")
        else:
            lines.append(f"{_title(m)}: {m.get('status', 'FAIL')}: {first_evidence(m)}")
    if not lines:
        lines.append("no module ran")
    for b in report.get("boots", []):
        if not b.get("passed", True):
            lines.append(f"boot {b.get('number')}: FAIL: {(b.get('reasons') or ['?'])[0]}")
    if seconds is not None:
        lines[-1] += f"  [{seconds:.1f} s from save to verdict]"
    return lines


# --- `highmem watch` ---

def pick_module(requested: str | None, names: list[str], where: str) -> str:
    """The module `highmem watch DIR [--module NAME]` reruns: NAME (which the directory's
    Kbuild must list), else the directory's only test module."""
    tests = [n for n in names if n != "hm_checkpoint"]
    if requested:
        if requested not in tests:
            raise HarnessError(f"module {requested!r} is not in obj-m of {where}'s Kbuild "
                               f"(it has: {', '.join(tests) or 'none'})",
                               "name one of those with --module, or add it to the Kbuild")
        return requested
    if len(tests) != 1:
        raise HarnessError(f"{where} builds {len(tests)} modules "
                           f"({', '.join(tests) or 'none in obj-m'}): which one to watch?",
                           "name it: --module NAME" if tests else
                           "add a Kbuild with 'obj-m += your_module.o'")
    return tests[0]
