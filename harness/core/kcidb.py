"""KCIDB JSON (KernelCI's common results schema, v5.3) from report.json data, pure.

Input: one or more report.json dicts (one `highmem run`, or the shards `highmem merge`
combines), each with its `kernel` identity and `plan` (run.py writes both). Output: one
KCIDB dict with
- a checkout per kernel source: `highmem:<run id>:<source>` (a git source gives its commit),
- a build per kernel cell: `<checkout id>/<cell>`, arch i386, the fragments as config_name,
- tests: per boot `highmem.boot`; per module `highmem.<module>`; per KTAP case
  `highmem.<module>.<case>` (path parts: letters, digits, `_`, `-`).

Status rules (KCIDB orders FAIL > ERROR > MISS > PASS > DONE > SKIP):
- case PASS -> PASS, FAIL -> FAIL, CRASHED (cut short by a crash or hang of its module) ->
  FAIL with the module's cause in log_excerpt, SKIP -> SKIP, XFAIL (an expected failure
  that failed as expected) -> PASS with misc.ktap_status XFAIL and its reason;
- module: PASS, or FAIL (crash, hang, failed case or check, missing or unexpected kernel
  message), ERROR (did not compile; a bug of the harness), MISS (NOT RUN: the guest did not
  boot or the run was interrupted);
- modules of other shards are not in a shard's file at all (they are not failures);
  `highmem merge` puts every shard's tests in one file.
A failed PTE check's messages (`PFN: expected 0x23f401, got 0x23f400`) go into the
log_excerpt of the case its checkpoint belongs to (the label before `:`), and of the module.
The harness writes plain JSON; the tests validate it with kcidb_io (the dev extra).
"""

import hashlib
import re
from pathlib import Path
from typing import Any

from .errors import HarnessError

ORIGIN = "highmem"      # the default origin, and the root of every test path
ORIGIN_NAME = re.compile(r"[a-z0-9_]+")
SCHEMA_VERSION = {"major": 5, "minor": 3}
BASE_FRAGMENT = "highmem64g"
MAX_EXCERPT = 16384     # KCIDB keeps log excerpts up to 16 KiB
CONFIG_CC = re.compile(r'^CONFIG_CC_VERSION_TEXT="(.*)"$', re.M)
GIT_IDENTITY = re.compile(r"^git:.*:([0-9a-f]{40}):[0-9a-f]+$")
CASE_STATUS = {"PASS": "PASS", "FAIL": "FAIL", "CRASHED": "FAIL", "SKIP": "SKIP",
               "XFAIL": "PASS"}
MODULE_STATUS = {"build": "ERROR", "harness": "ERROR", "not-run": "MISS"}

Json = dict[str, Any]


def kernel_identity(source: str, source_identity: str, release: str, configs: list[str],
                    memory: str, smp: int, config_text: str) -> Json:
    """report.json's `kernel`: what was tested. `configs`: the extra fragments (names or
    paths) merged after highmem64g.config; `config_text`: the final .config (for the
    compiler's version)."""
    cc = CONFIG_CC.search(config_text)
    git = GIT_IDENTITY.match(source_identity)
    return {"release": release, "source": source, "source_identity": source_identity,
            "git_commit": git.group(1) if git else None, "arch": "i386",
            "fragments": [BASE_FRAGMENT, *(Path(c).stem for c in configs)],
            "memory": memory, "smp": smp, "compiler": cc.group(1) if cc else None}


def check_origin(origin: str) -> str:
    """`origin` if KCIDB takes it (lower-case letters, digits, `_`), else HarnessError."""
    if not ORIGIN_NAME.fullmatch(origin):
        raise HarnessError(f"--kcidb-origin {origin!r} is not a KCIDB origin (lower-case "
                           "letters, digits and _ only)",
                           "give the origin name KernelCI agreed with your lab, e.g. "
                           "--kcidb-origin my_lab")
    return origin


def path_part(text: str) -> str:
    """`text` as one part of a KCIDB test path: runs of other characters become `_`."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "_"


def _excerpt(lines: list[str]) -> str:
    text = "\n".join(x.replace("\0", "") for x in lines if x)
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT - 4] + "\n..."


def pte_mismatches(module: Json, case: str | None = None) -> list[str]:
    """`LABEL at VA: MESSAGE` for every failed PTE check of `module` (of the checkpoints of
    `case` only, when given: a label is `case: what`)."""
    out = []
    for stop in module["checkpoints"]:
        if case is not None and stop["label"].split(":")[0].strip() != case:
            continue
        out += [f"{c['label']} at {c['va']:#x}: {m}" for c in stop["checks"]
                for m in c["mismatches"]]
    return out


def module_status(module: Json) -> str:
    if module["passed"]:
        return "PASS"
    kind = (module.get("failure") or {}).get("kind", "")
    return MODULE_STATUS.get(kind, "FAIL")


def _ids(run: Json, origin: str) -> tuple[str, str]:
    """(checkout id, build id) of a run's kernel. The run id (HIGHMEM_RUN_ID, e.g. the CI
    pipeline's, else the run directory's name) keeps one pipeline's shards on one checkout
    and build, and two pipelines apart."""
    k = run.get("kernel") or {}
    plan = run.get("plan") or {}
    src = k.get("git_commit") or hashlib.sha256(
        str(k.get("source_identity", "")).encode()).hexdigest()[:12]
    checkout = f"{origin}:{plan.get('run_id', 'run')}:{src}"
    return checkout, f"{checkout}/{plan.get('cell', 'unknown')}"


def _checkout(run: Json, origin: str) -> Json:
    k = run.get("kernel") or {}
    out: Json = {"id": _ids(run, origin)[0], "origin": origin, "valid": True,
                 "comment": f"Linux {k.get('release', '?')} from {k.get('source', '?')}",
                 "misc": {"source_identity": k.get("source_identity", "")}}
    if k.get("git_commit"):
        out["git_commit_hash"] = k["git_commit"]
    return out


def _build(run: Json, origin: str) -> Json:
    k = run.get("kernel") or {}
    checkout, build = _ids(run, origin)
    out: Json = {"id": build, "checkout_id": checkout, "origin": origin,
                 "architecture": k.get("arch", "i386"), "status": "PASS",
                 "config_name": "+".join(k.get("fragments", [])),
                 "misc": {"cell": (run.get("plan") or {}).get("cell", "unknown"),
                          "release": k.get("release", "")}}
    if k.get("compiler"):
        out["compiler"] = k["compiler"]
    return out


def _test(run: Json, origin: str, key: str, path: str, status: str, log: list[str],
          misc: Json, duration: object = None) -> Json:
    build = _ids(run, origin)[1]
    k = run.get("kernel") or {}
    out: Json = {"id": f"{build}/{key}", "build_id": build, "origin": origin, "path": path,
                 "status": status, "misc": {n: v for n, v in misc.items() if v is not None},
                 "environment": {"comment": f"qemu-system-i386 -m {k.get('memory', '?')} "
                                 f"-smp {k.get('smp', '?')}"}}
    if log:
        out["log_excerpt"] = _excerpt(log)
    if isinstance(duration, (int, float)):
        out["duration"] = float(duration)
    return out


def _boot_tests(run: Json, origin: str) -> list[Json]:
    shard = (run.get("plan") or {}).get("shard", "1/1").replace("/", "of")
    return [_test(run, origin, f"boot-{shard}-{b['number']}", f"{ORIGIN}.boot",
                  "PASS" if b["passed"] else "FAIL",
                  b["reasons"] + [f"| {x}" for x in b.get("console_tail", [])],
                  {"boot": b["number"], "artifacts": b.get("artifacts")}, b["seconds"])
            for b in run["boots"]]


def _module_tests(run: Json, origin: str, n: int, m: Json) -> list[Json]:
    mod = path_part(f"{m['name']} {m['params']}".strip())
    key = f"{n:02d}-{mod}"
    shard = (run.get("plan") or {}).get("shard", "1/1")
    misc = {"module": m["name"], "params": m["params"], "verdict": m["status"],
            "ptes": sum(len(s["checks"]) for s in m["checkpoints"]),
            "checkpoints": len(m["checkpoints"]), "artifacts": m.get("artifacts"),
            "reproduce": m.get("reproduce"), "shard": shard}
    out = [_test(run, origin, key, f"{ORIGIN}.{mod}", module_status(m),
                 m["reasons"] + pte_mismatches(m), misc, m["seconds"])]
    failure = (m.get("failure") or {}).get("line")
    for c in m["ktap"]:
        status = CASE_STATUS.get(c["status"], "ERROR")
        log = ([failure] if failure and c["status"] == "CRASHED" else []) \
            + ([c["directive"]] if c.get("directive") else []) + pte_mismatches(m, c["name"])
        out.append(_test(run, origin, f"{key}/{path_part(c['name'])}",
                         f"{ORIGIN}.{mod}.{path_part(c['name'])}", status, log,
                         {"ktap_status": c["status"], "module": m["name"], "shard": shard}))
    return out


def kcidb_report(runs: list[Json], origin: str = ORIGIN) -> Json:
    """One KCIDB v5.3 dict for the report.json dicts `runs` (each a run or a shard)."""
    checkouts: dict[str, Json] = {}
    builds: dict[str, Json] = {}
    tests: list[Json] = []
    for run in runs:
        c, b = _checkout(run, origin), _build(run, origin)
        checkouts.setdefault(c["id"], c)
        builds.setdefault(b["id"], b)
        tests += _boot_tests(run, origin)
        picked = (run.get("plan") or {}).get("picked") or []
        if len(picked) != len(run["modules"]):   # a report.json from before shards
            picked = list(range(len(run["modules"])))
        for n, m in zip(picked, run["modules"]):
            tests += _module_tests(run, origin, n + 1, m)
    return {"version": dict(SCHEMA_VERSION), "checkouts": list(checkouts.values()),
            "builds": list(builds.values()), "tests": tests}
