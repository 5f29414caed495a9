"""The default suite (suites/default.yaml) on 6.12, with and without DEBUG_KMAP_LOCAL:
at least 40 KTAP cases and 500 PTE assertions, every case passing or an expected failure."""

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("configs", [(), ("--config", "debug-kmap-local")],
                         ids=["6.12", "6.12+DEBUG_KMAP_LOCAL"])
def test_default_suite(highmem_run, configs):
    r = highmem_run(*configs)
    assert r.rc == 0, r.out[-4000:]
    rep = r.report
    assert rep["passed"]
    cases = [c for m in rep["modules"] for c in m["ktap"]]
    assert len(cases) >= 40
    assert {c["status"] for c in cases} <= {"PASS", "XFAIL"}
    xfail = [c for c in cases if c["status"] == "XFAIL"]
    assert all(c["directive"] for c in xfail), "every expected failure gives its reason"
    assert sum(len(cp["checks"]) for m in rep["modules"] for cp in m["checkpoints"]) >= 500
    assert rep["layout"]["debug_kmap_local"] == bool(configs)
    assert "Suite:" in r.out and "PTE assertions" in r.out
