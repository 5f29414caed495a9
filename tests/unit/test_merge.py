"""Shards end to end without a VM, and `highmem merge` (workflows/merge/model.py,
workflows/merge/command.py).

`highmem run --shard I/N --junit F --kcidb F` is driven through cli.main() over the fake
operations of test_orchestration.py (recorded module runs): a shard runs only its modules,
reports only them, and the merge of every shard is the whole run again. The merge refuses
overlapping and missing shards, naming them.
"""

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kcidb_io.schema import LATEST

from harness.workflows.merge.model import (
    MergeError,
    ShardReport,
    format_merged,
    merged_json,
    ordered,
)
from harness.frontends import cli
from harness.run import run_and_report
from harness.stages import host
from tests.unit.fakelab import FakeOperations

DATA = Path(__file__).parent / "data" / "orchestration"
CELL = "6.12.117-highmem64g-8G-smp2"
Highmem = Callable[..., tuple[int, Path, FakeOperations]]


@pytest.fixture
def highmem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Highmem:
    """`highmem ARGV...` with the operations faked; (exit status, newest run dir, ops)."""
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HIGHMEM_DEPS_STARTED", raising=False)
    monkeypatch.delenv("HIGHMEM_RUN_ID", raising=False)
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")

    def go(*argv: str) -> tuple[int, Path, FakeOperations]:
        ops = FakeOperations(tmp_path)
        before = set((tmp_path / "artifacts").glob("run-*"))

        def load(module: str, name: str) -> object:
            if (module, name) == ("workflows.merge.command", "cmd_merge"):
                from harness.workflows.merge.command import cmd_merge
                return cmd_merge
            return lambda opts, suite, run_dir, *out: run_and_report(opts, suite, run_dir,
                                                                     ops, *out)
        monkeypatch.setattr(cli, "load", load)
        rc = cli.main(list(argv))
        new = sorted(set((tmp_path / "artifacts").glob("run-*")) - before)
        return rc, (new[0] if new else tmp_path), ops
    return go


def test_two_shards_then_merge(highmem: Highmem, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    suite = str(DATA / "crash.yaml")
    rc1, dir1, ops1 = highmem("run", suite, "--shard", "1/2", "--junit", str(tmp_path / "1.xml"),
                              "--kcidb", str(tmp_path / "1.json"))
    rc2, dir2, ops2 = highmem("run", suite, "--shard", "2/2")
    assert (rc1, ops1.ran) == (1, ["cat_null_deref"])   # the crash is in shard 1
    assert (rc2, ops2.ran) == (0, ["cat_healthy"])      # shard 2 passes: nothing else in it
    r1 = json.loads((dir1 / "report.json").read_text())
    assert [m["name"] for m in r1["modules"]] == ["cat_null_deref"]
    assert r1["plan"]["shard"] == "1/2" and r1["plan"]["picked"] == [0]
    assert r1["plan"]["items"] == [[CELL, "cat_null_deref"], [CELL, "cat_healthy"]]
    assert "cat_healthy" not in (dir1 / "report.txt").read_text()   # not a failure: absent
    kcidb = json.loads((tmp_path / "1.json").read_text())
    LATEST.validate_exactly(kcidb)
    assert {t["path"] for t in kcidb["tests"]} >= {"highmem.cat_null_deref"}
    assert not any("cat_healthy" in t["path"] for t in kcidb["tests"])
    junit = ET.parse(tmp_path / "1.xml").getroot()
    assert junit.get("failures") == "2"

    capsys.readouterr()
    rc, _, _ = highmem("merge", str(tmp_path / "merged"), str(dir2), str(dir1 / "report.json"))
    assert rc == 1
    out = tmp_path / "merged"
    text = (out / "report.txt").read_text()
    assert text == capsys.readouterr().out.split("(written:")[0]
    assert "Verdict: FAIL (1 of 2 modules failed)" in text
    summary = text[text.index("Summary"):]
    assert summary.index("cat_null_deref") < summary.index("cat_healthy")  # suite order
    assert "FAIL (crash)" in summary
    merged = json.loads((out / "report.json").read_text())
    assert [s["shard"] for s in merged["shards"]] == ["1/2", "2/2"]
    k = json.loads((out / "kcidb.json").read_text())
    LATEST.validate_exactly(k)
    assert {t["path"]: t["status"] for t in k["tests"] if t["path"].count(".") == 1} == {
        "highmem.boot": "PASS", "highmem.cat_null_deref": "FAIL", "highmem.cat_healthy": "PASS"}
    assert len({t["id"] for t in k["tests"]}) == len(k["tests"])
    # 2 boots, 2 KTAP cases, 2 kernel_log
    assert ET.parse(out / "junit.xml").getroot().get("tests") == "6"


def test_shards_of_one_ci_pipeline_share_checkout_and_build(
        highmem: Highmem, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIGHMEM_RUN_ID", "pipeline-4242")
    suite = str(DATA / "crash.yaml")
    _, d1, _ = highmem("run", suite, "--shard", "1/2")
    _, d2, _ = highmem("run", suite, "--shard", "2/2")
    assert highmem("merge", str(tmp_path / "m"), str(d1), str(d2), "--kcidb-origin",
                   "my_lab")[0] == 1
    k = json.loads((tmp_path / "m" / "kcidb.json").read_text())
    LATEST.validate_exactly(k)
    (checkout,) = k["checkouts"]
    assert checkout["id"].startswith("my_lab:pipeline-4242:")
    assert [b["id"] for b in k["builds"]] == [checkout["id"] + "/" + CELL]
    assert {t["origin"] for t in k["tests"]} == {"my_lab"}
    assert len({t["id"] for t in k["tests"]}) == len(k["tests"])   # two boot-1, two ids


def test_merge_exit_statuses(highmem: Highmem, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    _, d, _ = highmem("run", "--module", "kmap_local_basic")
    assert highmem("merge", str(tmp_path / "ok"), str(d))[0] == 0
    assert "Verdict: PASS" in (tmp_path / "ok" / "report.txt").read_text()
    capsys.readouterr()
    assert highmem("merge", str(tmp_path / "bad"), str(d), str(d))[0] == 2
    err = capsys.readouterr().err
    assert "error: shard 1/1 is given twice" in err and "\nfix: " in err
    assert not (tmp_path / "bad").exists()
    assert highmem("merge", str(tmp_path / "x"), str(tmp_path / "nothing"))[0] == 2
    assert "error: cannot read" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{")
    assert highmem("merge", str(tmp_path / "x"), str(tmp_path / "junk.json"))[0] == 2
    assert "is not JSON" in capsys.readouterr().err
    assert highmem("merge", str(tmp_path / "x"))[0] == 2     # no shard: usage


# -- workflows/merge/model.py on hand-made shards -------------------------------------

def shard(behaviour: str, index: int, count: int, items: list[str], picked: list[int],
          where: str = "") -> ShardReport:
    """A golden report.json as shard `index`/`count` of a run of `items`, reporting the
    modules at `picked` (copies of its first module, renamed)."""
    data = json.loads((DATA / "golden" / f"{behaviour}.report.json").read_text())
    proto = data["modules"][0]
    data["modules"] = [copy.deepcopy(proto) | {"name": items[p], "params": ""} for p in picked]
    data["plan"] = {"run_id": "r", "cell": CELL, "shard": f"{index}/{count}",
                    "items": [[CELL, m] for m in items], "picked": picked}
    return ShardReport(where or f"s{index}.json", data)


ITEMS = ["a", "b", "c", "d", "e"]


def test_complete_shards_are_ordered_by_index() -> None:
    got = ordered([shard("pass", 3, 3, ITEMS, [3, 4]), shard("pass", 1, 3, ITEMS, [0]),
                   shard("pass", 2, 3, ITEMS, [1, 2])])
    assert [r.index for r in got] == [1, 2, 3]
    merged = merged_json(got)
    assert merged["passed"]
    text = format_merged(merged)
    assert [x.split()[0] for x in text[text.index("Summary"):].splitlines()[2:7]] == ITEMS
    assert text.endswith("Verdict: PASS")


def test_a_missing_shard_names_its_modules() -> None:
    with pytest.raises(MergeError, match=r"shard 2/3 is missing .*: no result for b \(" + CELL
                       + r"\), c \("):
        ordered([shard("pass", 1, 3, ITEMS, [0]), shard("pass", 3, 3, ITEMS, [3, 4])])


def test_overlaps_are_refused() -> None:
    with pytest.raises(MergeError, match="shard 1/2 is given twice: x.json and y.json"):
        ordered([shard("pass", 1, 2, ITEMS, [0, 1], "x.json"),
                 shard("pass", 1, 2, ITEMS, [0, 1], "y.json"), shard("pass", 2, 2, ITEMS, [2])])
    whole = shard("pass", 1, 1, ["a", "b"], [0, 1], "whole.json")
    with pytest.raises(MergeError, match=f"module a of cell {CELL} is in two runs: whole.json"):
        ordered([whole, shard("pass", 1, 1, ["a"], [0], "again.json")])


def test_a_shard_must_report_its_own_modules() -> None:
    bad = shard("pass", 1, 2, ITEMS, [0, 1])
    bad.data["modules"].pop()
    with pytest.raises(MergeError, match=r"reports modules a, but its plan gave it a, b"):
        ordered([bad, shard("pass", 2, 2, ITEMS, [2, 3, 4])])


def test_a_report_without_a_plan_is_refused() -> None:
    old: dict[str, Any] = json.loads((DATA / "golden" / "pass.report.json").read_text())
    del old["plan"]
    with pytest.raises(MergeError, match="old.json has no shard plan"):
        ordered([ShardReport("old.json", old)])


def test_two_runs_of_different_cells_merge() -> None:
    other = shard("crash", 1, 1, ["a"], [0])
    other.data["plan"]["cell"] = "6.12.117-highmem64g+debug-kmap-local-8G-smp2"
    other.data["plan"]["items"] = [[other.data["plan"]["cell"], "a"]]
    got = ordered([shard("pass", 1, 1, ["a"], [0]), other])
    merged = merged_json(got)
    assert not merged["passed"]
    assert "Verdict: FAIL (1 of 2 modules failed)" in format_merged(merged)


def test_the_merged_report_names_failed_pte_checks() -> None:
    data = json.loads((DATA.parent / "mutation" / "check_pfn.json").read_text())
    data["plan"] = {"run_id": "r", "cell": CELL, "shard": "1/1",
                    "items": [[CELL, "kmap_local_basic mutate=pfn"]], "picked": [0]}
    text = format_merged(merged_json(ordered([ShardReport("pfn.json", data)])))
    assert "  ^ kmap_local_above_4g: mapped at 0xfffbb000: PFN: expected 0x23e401, got " \
        "0x23e400" in text
    assert "kmap_local_basic mutate=pfn            2    0    2" in text
