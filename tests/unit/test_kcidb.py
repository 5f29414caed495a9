"""KCIDB JSON (core/kcidb.py) from recorded report.json files: the orchestration goldens
(pass, crash, hang, boot panic) and the mutation run that broke the PFN, validated against
the latest KCIDB schema by kcidb_io (PyPI `kcidb-io`, the dev extra)."""

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kcidb_io.schema import LATEST

from harness.core.kcidb import kcidb_report, kernel_identity, path_part

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "orchestration" / "golden"
BEHAVIOURS = ("pass", "crash", "hang", "boot-panic")


def golden(behaviour: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{behaviour}.report.json").read_text())


def by_path(k: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["path"]: t for t in k["tests"]}


def test_the_schema_is_the_latest() -> None:
    assert (LATEST.major, LATEST.minor) == (5, 3)
    assert kcidb_report([])["version"] == {"major": 5, "minor": 3}


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_every_golden_report_validates(behaviour: str) -> None:
    k = kcidb_report([golden(behaviour)])
    LATEST.validate_exactly(k)
    ids = [t["id"] for t in k["tests"]]
    assert len(ids) == len(set(ids))
    (build,) = k["builds"]
    (checkout,) = k["checkouts"]
    assert build["checkout_id"] == checkout["id"] and checkout["id"].startswith("highmem:")
    assert all(t["build_id"] == build["id"] and t["origin"] == "highmem" for t in k["tests"])
    assert build["architecture"] == "i386" and build["config_name"] == "highmem64g"
    assert build["compiler"] == "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    assert build["misc"]["cell"] == "6.12.117-highmem64g-8G-smp2"


def test_pass() -> None:
    t = by_path(kcidb_report([golden("pass")]))
    assert {p: x["status"] for p, x in t.items()} == {
        "highmem.boot": "PASS", "highmem.kmap_local_basic": "PASS",
        "highmem.kmap_local_basic.kmap_local_above_4g": "PASS",
        "highmem.kmap_local_basic.kmap_local_below_4g": "PASS"}
    assert t["highmem.kmap_local_basic"]["misc"]["ptes"] == 4


@pytest.mark.parametrize("behaviour, module, case, cause", [
    ("crash", "cat_null_deref", "cat_null_deref_store",
     "crash: oops in cat_null_deref: BUG: kernel NULL pointer dereference"),
    ("hang", "cat_spin", "cat_spin_loop", "hang: insmod cat_spin did not return within 15 s")])
def test_a_crash_or_hang_fails_its_cases_with_the_cause(behaviour: str, module: str,
                                                        case: str, cause: str) -> None:
    t = by_path(kcidb_report([golden(behaviour)]))
    for path in (f"highmem.{module}", f"highmem.{module}.{case}"):
        assert t[path]["status"] == "FAIL" and t[path]["log_excerpt"].startswith(cause)
    assert t[f"highmem.{module}.{case}"]["misc"]["ktap_status"] == "CRASHED"
    assert t["highmem.cat_healthy"]["status"] == "PASS"   # the module after it


def test_a_boot_panic_fails_the_boot_and_misses_the_modules() -> None:
    k = kcidb_report([golden("boot-panic")])
    t = by_path(k)
    assert t["highmem.boot"]["status"] == "FAIL"
    assert "Kernel panic - not syncing: Attempted to kill init!" in t["highmem.boot"]["log_excerpt"]
    assert "| " in t["highmem.boot"]["log_excerpt"]           # the console tail
    for m in ("kmap_local_basic", "kmap_local_suite"):
        assert t[f"highmem.{m}"]["status"] == "MISS"
        assert t[f"highmem.{m}"]["log_excerpt"].startswith("not-run: the guest did not boot")


def test_a_pte_failure_reaches_its_case_log_excerpt() -> None:
    """A recorded run with a PTE failure (kmap_local_basic mutate=pfn: the module expects
    PFN + 1): each failing case's excerpt names the field, the expected and the actual."""
    report = json.loads((DATA / "mutation" / "check_pfn.json").read_text())
    k = kcidb_report([report])     # written before `kernel` and `plan`: still valid
    LATEST.validate_exactly(k)
    t = by_path(k)
    above = t["highmem.kmap_local_basic_mutate_pfn.kmap_local_above_4g"]
    assert above["status"] == "FAIL"
    assert "kmap_local_above_4g: mapped at 0xfffbb000: PFN: expected 0x23e401, got 0x23e400" \
        in above["log_excerpt"]
    below = t["highmem.kmap_local_basic_mutate_pfn.kmap_local_below_4g"]["log_excerpt"]
    assert "PFN: expected 0xbf801, got 0xbf800" in below and "0x23e4" not in below
    assert "PFN: expected 0x23e401" in t["highmem.kmap_local_basic_mutate_pfn"]["log_excerpt"]


def test_xfail_skip_no_build_and_harness_statuses() -> None:
    r = golden("crash")
    m = r["modules"][1]
    m["ktap"] = [{"name": "a", "status": "XFAIL", "directive": "TODO known bug"},
                 {"name": "b", "status": "SKIP", "directive": "SKIP no highmem"}]
    nb = copy.deepcopy(m)
    nb.update(name="cat_no_compile", passed=False, ktap=[], checkpoints=[],
              failure={"kind": "build", "cause": "x", "line": "build: x.c:3: error: y"},
              reasons=["build: x.c:3: error: y"])
    r["modules"].append(nb)
    k = kcidb_report([r])
    LATEST.validate_exactly(k)
    t = by_path(k)
    assert t["highmem.cat_healthy.a"]["status"] == "PASS"
    assert t["highmem.cat_healthy.a"]["misc"]["ktap_status"] == "XFAIL"
    assert t["highmem.cat_healthy.a"]["log_excerpt"] == "TODO known bug"
    assert t["highmem.cat_healthy.b"]["status"] == "SKIP"
    assert t["highmem.cat_no_compile"]["status"] == "ERROR"


def test_the_validator_catches_a_bad_document() -> None:
    """The check can fail: a path with a space, a null, a status KCIDB does not know."""
    good = kcidb_report([golden("crash")])
    for mutate in (lambda k: k["tests"][2].update(path="highmem.cat null"),
                   lambda k: k["tests"][2].update(log_excerpt=None),
                   lambda k: k["tests"][2].update(status="XFAIL"),
                   lambda k: k["builds"][0].update(id="no-origin")):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.exceptions.ValidationError):
            LATEST.validate_exactly(bad)


def test_module_titles_become_path_parts() -> None:
    assert path_part("kmap_local_misuse which=order") == "kmap_local_misuse_which_order"
    assert path_part("a.b c") == "a_b_c" and path_part("///") == "_"


def test_kernel_identity() -> None:
    k = kernel_identity("/src/linux", "git:/src/linux:" + "a" * 40 + ":0123abcd", "6.12.0",
                        ["debug-kmap-local", "/x/mine.config"], "8G", 2,
                        'CONFIG_CC_VERSION_TEXT="gcc (GCC) 14.2"\n')
    assert k["git_commit"] == "a" * 40 and k["compiler"] == "gcc (GCC) 14.2"
    assert k["fragments"] == ["highmem64g", "debug-kmap-local", "mine"]
    run = golden("pass") | {"kernel": k}
    out = kcidb_report([run])
    LATEST.validate_exactly(out)
    assert out["checkouts"][0]["git_commit_hash"] == "a" * 40
    assert kernel_identity("/t.tar.xz", "tar:t.tar.xz:1:2", "6.12.0", [], "8G", 2, "")[
        "git_commit"] is None
