"""`highmem merge`: the shards' report.json combined into one report, pure.

Each shard's report.json holds its `plan` (run.py): the run id, the kernel cell, the shard
`I/N`, every work item of the run (`[cell, module]`, in order) and the positions this shard
ran. The shards of one run are those with the same items and N; the shards given may
belong to several runs (e.g. one per kernel cell). Refused (MergeError, exit 2), naming the files:
- a report without a plan (written before shards existed),
- the same shard given twice, or one work item reported by two runs (an overlap),
- a shard of a run missing, with the modules that have no result,
- a shard whose modules are not the ones its plan gave it.
The merged report.json is {"passed", "interrupted", "shards": [...], "runs": [the shards'
report.json, in order]}; KCIDB and JUnit are made from `runs` as for one run.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ...core.errors import HarnessError
from ...core.kcidb import pte_mismatches
from ...core.ktap import STATUSES
from ...core.report import SUMMARY_HEAD, summary_row

Json = dict[str, Any]
FIX = "give every shard's report.json (or run directory) once: highmem merge OUT SHARD..."


class MergeError(HarnessError):
    """Shard reports that do not combine into one complete report."""


@dataclass
class ShardReport:
    """One shard's report.json and where it came from (a file name, for messages)."""

    where: str
    data: Json

    @property
    def plan(self) -> Json:
        return self.data["plan"]

    @property
    def label(self) -> str:
        return f"{self.where} (shard {self.plan['shard']})"

    @property
    def index(self) -> int:
        return int(self.plan["shard"].split("/")[0])

    @property
    def count(self) -> int:
        return int(self.plan["shard"].split("/")[1])


def _key(r: ShardReport) -> tuple[Any, ...]:
    """What the shards of one run share: the work items and the number of shards (not the
    run id: shards run by hand without HIGHMEM_RUN_ID each have their own)."""
    return (tuple(map(tuple, r.plan["items"])), r.count)


def _check_one(r: ShardReport) -> None:
    want = [r.plan["items"][i][1] for i in r.plan["picked"]]
    got = [f"{m['name']} {m['params']}".strip() for m in r.data["modules"]]
    if want != got:
        raise MergeError(f"{r.label} reports modules {', '.join(got) or 'none'}, but its "
                         f"plan gave it {', '.join(want) or 'none'}", FIX)


def _check_group(group: list[ShardReport]) -> None:
    by_index: dict[int, ShardReport] = {}
    for r in group:
        if r.index in by_index:
            raise MergeError(f"shard {r.plan['shard']} is given twice: {by_index[r.index].where}"
                             f" and {r.where} (their modules overlap)", FIX)
        by_index[r.index] = r
    first = group[0]
    for i in range(1, first.count + 1):
        if i not in by_index:
            done = {p for r in group for p in r.plan["picked"]}
            lost = [f"{m} ({c})" for p, (c, m) in enumerate(first.plan["items"])
                    if p not in done]
            raise MergeError(f"shard {i}/{first.count} is missing (shards given: "
                             f"{', '.join(r.where for r in group)}): no result for "
                             f"{', '.join(lost)}",
                             "add that shard's report.json (did its CI job fail before "
                             "uploading its artifacts?)")


def _check_overlap(groups: list[list[ShardReport]]) -> None:
    """No work item (cell, module, n-th occurrence) in two runs."""
    seen: dict[tuple[str, str, int], str] = {}
    for group in groups:
        r = group[0]
        count: Counter[tuple[str, str]] = Counter()
        for cell, module in r.plan["items"]:
            count[(cell, module)] += 1
            item = (cell, module, count[(cell, module)])
            if item in seen:
                raise MergeError(f"module {module} of cell {cell} is in two runs: "
                                 f"{seen[item]} and {r.label}", FIX)
            seen[item] = r.label


def ordered(reports: list[ShardReport]) -> list[ShardReport]:
    """The reports checked, grouped by run (in the order first given), each run's shards in
    shard order; MergeError if they do not make complete, disjoint runs."""
    for r in reports:
        if not isinstance(r.data.get("plan"), dict):
            raise MergeError(f"{r.where} has no shard plan (it was written by an older "
                             "highmem, or is not a report.json)",
                             "run `highmem run` again with this version, then merge")
        _check_one(r)
    groups: dict[tuple[Any, ...], list[ShardReport]] = {}
    for r in reports:
        groups.setdefault(_key(r), []).append(r)
    for g in groups.values():
        _check_group(g)
    _check_overlap(list(groups.values()))
    return [r for g in groups.values() for r in sorted(g, key=lambda r: r.index)]


def merged_json(reports: list[ShardReport]) -> Json:
    runs = [r.data for r in reports]
    return {"passed": bool(runs) and all(d["passed"] for d in runs),
            "interrupted": next((d["interrupted"] for d in runs if d["interrupted"]), ""),
            "shards": [{"file": r.where, "run_id": r.plan["run_id"], "cell": r.plan["cell"],
                        "shard": r.plan["shard"], "passed": r.data["passed"]}
                       for r in reports],
            "runs": runs}


def _module_lines(m: Json) -> list[str]:
    if m["passed"]:
        return []
    lines = [f"Module {m['name']} {m['params']}".rstrip()]
    lines += [f"  ! {x}" for x in m["reasons"]]
    lines += [f"  ^ {x}" for x in pte_mismatches(m)]
    lines += [f"  artifacts: {m['artifacts']}"] if m.get("artifacts") else []
    return lines


def format_merged(merged: Json) -> str:
    """The merged report.txt: the shards, the failing modules with their causes, the summary
    table of every module, and the verdict."""
    lines = ["Shards"]
    failed_boots = []
    for s, run in zip(merged["shards"], merged["runs"]):
        boots_ok = all(b["passed"] for b in run["boots"])
        if not boots_ok:
            failed_boots.append(s["shard"])
        n = len(run["modules"])
        lines.append(f"  shard {s['shard']:<7} cell {s['cell']}: {n} module{'s' * (n != 1)}, "
                     f"{'PASS' if s['passed'] else 'FAIL'}"
                     + ("" if boots_ok else " (boot failed)") + f"  ({s['file']})")
        lines += [f"  ! boot {b['number']}: {x}" for b in run["boots"] for x in b["reasons"]]
    modules = [m for run in merged["runs"] for m in run["modules"]]
    for m in modules:
        lines += _module_lines(m)
    lines += ["Summary", SUMMARY_HEAD]
    for m in modules:
        kind = (m.get("failure") or {}).get("kind")
        lines.append(summary_row(f"{m['name']} {m['params']}".strip(),
                                 [c["status"] for c in m["ktap"]],
                                 sum(len(s["checks"]) for s in m["checkpoints"]), m["seconds"],
                                 m["status"] + (f" ({kind})" if kind and m["status"] == "FAIL"
                                                else "")))
    cases = Counter(c["status"] for m in modules for c in m["ktap"])
    ptes = sum(len(s["checks"]) for m in modules for s in m["checkpoints"])
    desc = ", ".join(f"{cases[k]} {k.lower()}" for k in STATUSES if cases[k]) or "none"
    lines.append(f"Suite: {sum(cases.values())} KTAP cases ({desc}); {ptes} PTE assertions; "
                 f"{len(modules)} modules in {len(merged['shards'])} shards")
    bad = [m for m in modules if not m["passed"]]
    why = ", ".join(x for x in (f"{len(bad)} of {len(modules)} modules failed" if bad else "",
                                f"boot failed in shard {', '.join(failed_boots)}"
                                if failed_boots else "") if x)
    lines.append(f"Verdict: {'PASS' if merged['passed'] else 'FAIL'}"
                 + (f" ({why})" if why else ""))
    return "\n".join(lines)
