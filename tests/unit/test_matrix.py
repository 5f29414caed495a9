"""Kernel matrix files: cells in order with their ids, every mistake one line naming the file
and line, and the summary table cell x module."""

from pathlib import Path

import pytest

from harness.core import ktap
from harness.workflows.matrix.model import (
    DEFAULT_MATRIX_FILE,
    MatrixError,
    cell_id,
    cell_ids,
    load_matrix,
    missing_sources,
)
from harness.workflows.matrix.report import CellOutcome, format_matrix, matrix_json
from harness.core.phases import Phases
from harness.core.repo import REPO
from harness.core.failure import Failure
from harness.core.results import ModuleResult, RunResult
from harness.core.suite import ModuleSpec
from harness.frontends.cli import main


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return p


def test_shipped_matrices_load_in_order() -> None:
    assert cell_ids(DEFAULT_MATRIX_FILE) == [
        "6.12-highmem64g-smp2-8G", "6.12-highmem4g-smp2-4G", "6.12-debug-kmap-local-smp2-8G",
        "6.12-debug-kmap-local-force-map-smp2-8G", "6.12-highmem64g-smp1-8G",
        "6.12-highmem64g-smp4-8G", "6.1-highmem64g-smp2-8G", "7.2-pae4g-smp2-4G",
        "7.2-highmem4g-smp2-4G", "7.2-pae4g-smp2-8G"]
    m = load_matrix(DEFAULT_MATRIX_FILE)
    assert m.packages == ("linux-source-6.12", "linux-source-6.1", "linux-source-7.2")
    assert cell_ids(REPO / "matrices" / "mainline.yaml") == [
        "7.2-pae4g-smp2-4G", "7.2-highmem4g-smp2-4G", "7.2-pae4g-smp2-8G"]
    assert m.cell("7.2-pae4g-smp2-4G").options().memory == "4G"
    assert m.cell("6.1-highmem64g-smp2-8G").source_path == Path(
        "/usr/src/linux-source-6.1.tar.xz")
    quick = load_matrix(REPO / "matrices" / "quick.yaml")
    assert all(c.modules == ("kmap_local_basic",) for c in quick.cells)


def test_cell_options_and_defaults(tmp_path: Path) -> None:
    m = load_matrix(write(tmp_path, """\
cells:
  - {}
  - source: "6.10"
    configs: [highmem4g, debug-kmap-local]
    memory: 4096M
    smp: 1
"""))
    a, b = m.cells
    assert (a.id, a.line) == ("6.12-highmem64g-smp2-8G", 2)
    assert b.id == "6.10-highmem4g-debug-kmap-local-smp1-4G"  # "6.10" is not the float 6.1
    o = b.options()
    assert (o.source, o.configs, o.memory, o.smp) == (
        Path("/usr/src/linux-source-6.10.tar.xz"), ["highmem4g", "debug-kmap-local"], "4G", 1)


def test_cell_id_names() -> None:
    assert cell_id("6.12", (), 2, "8G") == "6.12-highmem64g-smp2-8G"
    assert cell_id("6.12", ("highmem64g",), 4, "8G") == "6.12-highmem64g-smp4-8G"
    assert cell_id("/src/linux-6.3.tar.xz", ("a/x.config",), 1, "5G") == "linux-6.3-x-smp1-5G"


@pytest.mark.parametrize("text,line,what", [
    ("cells:\n  - memroy: 4G\n", 2, "unknown key 'memroy' in a cell"),
    ("cels: []\n", 1, "unknown key 'cels' in the matrix file"),
    ("cells:\n  - configs: [highmem3g]\n", 2, "Kconfig fragment 'highmem3g' not found"),
    ("cells:\n  - {}\n  - configs:\n      - debug-kmap-local\n      - nope\n", 5,
     "Kconfig fragment 'nope' not found"),
    ("cells:\n  - memory: 2G\n", 2, "'memory' 2G is less than 4 GiB"),
    ("cells:\n  - memory: lots\n", 2, "'memory' 'lots' is not a positive memory size"),
    ("cells:\n  - smp: 1.5\n", 2, "'smp' must be a whole number"),
    ("cells:\n  - smp: many\n", 2, "'smp' must be a number"),
    ("cells:\n  - source: /no/such/tree\n", 2, "neither a version like 6.1 nor an existing"),
    ("cells:\n  - modules: [kmapsuite]\n", 2, "module 'kmapsuite' is not in the matrix's suite"),
    ("cells:\n  - {}\n  - smp: 2\n", 3, "cell '6.12-highmem64g-smp2-8G' twice (first on line 2)"),
    ("cells:\n  - id: 'a b'\n", 2, "'id' 'a b' has characters"),
    ("cells:\n  - {}\n  - {}\nsuite: nope.yaml\n", 4, "suite file 'nope.yaml' not found"),
    ("cells: []\n", 1, "'cells' must be a non-empty list"),
    ("cells:\n  - smp: 2\n    smp: 4\n", 3, "duplicate key 'smp' (first on line 2)"),
    ("cells:\n  - [1, 2\n", 3, "not valid YAML"),
])
def test_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as e:
        load_matrix(path)
    assert e.value.what.startswith(f"{path}:{line}: "), e.value.what
    assert what in e.value.what
    assert e.value.fix


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(MatrixError, match="the file is empty"):
        load_matrix(write(tmp_path, ""))


def test_fragment_relative_to_the_matrix_file(tmp_path: Path) -> None:
    (tmp_path / "mine.config").write_text("CONFIG_X=y\n")
    m = load_matrix(write(tmp_path, "cells:\n  - configs: [mine.config]\n"))
    assert m.cells[0].configs == (str(tmp_path / "mine.config"),)
    assert m.cells[0].id == "6.12-mine-smp2-8G"


def test_missing_source_named_with_its_package(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, 'cells:\n  - source: "6.9"\n')
    m = load_matrix(path)
    assert [c.id for c in missing_sources(m)] == ["6.9-highmem64g-smp2-8G"]
    assert main(["matrix", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("error: cell 6.9-highmem64g-smp2-8G needs "
                      "/usr/src/linux-source-6.9.tar.xz (Debian package linux-source-6.9, "
                      "not installed)")
    assert err[1] == f"fix: run 'make deps MATRIX={path}' (installs linux-source-6.9)"
    assert main(["matrix", "--packages", str(path)]) == 0
    assert capsys.readouterr().out == "linux-source-6.9\n"


def test_a_mainline_cell_gets_the_pae4g_profile_and_its_source_from_unstable(
        tmp_path: Path, capsys) -> None:
    path = write(tmp_path, 'cells:\n  - source: "7.99"\n  - {source: "7.99", configs: '
                 '[highmem4g]}\n  - {source: "7.99", memory: 8G}\n')
    m = load_matrix(path)
    assert [c.id for c in m.cells] == ["7.99-pae4g-smp2-4G", "7.99-highmem4g-smp2-4G",
                                       "7.99-pae4g-smp2-8G"]
    assert m.cells[0].source_path == Path("linux-source-7.99.tar.xz")  # found by name
    assert main(["matrix", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: cell 7.99-pae4g-smp2-4G needs linux-source-7.99.tar.xz")
    assert err[0].endswith("(Debian unstable's linux-source-7.99, not fetched)")
    assert err[1] == (f"fix: run 'make deps MATRIX={path}' (fetches it into the cache; or "
                      "'make deps KERNEL=7.99')")


def test_bad_matrix_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, "cells:\n  - memroy: 4G\n")
    assert main(["matrix", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:2: unknown key 'memroy'") and "\nfix: " in err


def _module(name: str, statuses: list[str], failure: Failure | None = None) -> ModuleResult:
    cases = [ktap.Case(number=i + 1, name=f"c{i}", status=s,
                       directive="why" if s in ("SKIP", "XFAIL") else "")
             for i, s in enumerate(statuses)]
    suite = ktap.Suite(name=name, plan=len(cases), cases=cases, crashed=False)
    return ModuleResult(spec=ModuleSpec(name), insmod_rc=0, suites=[suite], failure=failure)


def test_summary_table_cell_by_module(tmp_path: Path) -> None:
    m = load_matrix(write(tmp_path, "cells:\n  - {}\n  - {configs: [highmem4g], memory: 4G}\n"
                          "  - {source: '6.1'}\n"))
    ph = Phases()
    ph.times = {"build": 1.0, "boot": 9.0}
    a = RunResult(tmp_path, [_module("kmap_local_basic", ["PASS", "PASS"]),
                             _module("kmap_suite", ["PASS", "XFAIL"])], {}, ph)
    b = RunResult(tmp_path, [_module("kmap_local_basic", ["SKIP", "PASS"]),
                             _module("kmap_suite", ["PASS", "FAIL"])], {}, ph)
    outs = [CellOutcome(m.cells[0], a, "", 12.0), CellOutcome(m.cells[1], b, "", 13.5),
            CellOutcome(m.cells[2], None, "'make bzImage' failed", 2.0)]
    text = format_matrix("m.yaml", "s.yaml", outs)
    lines = text.splitlines()
    assert lines[0] == "Matrix m.yaml: 3 cells, suite s.yaml"
    assert lines[1].startswith("  [1] 6.12-highmem64g-smp2-8G  PASS  build 1.0 s, boot 9.0 s;"
                               " total 12.0 s")
    assert "[3] 6.1-highmem64g-smp2-8G" in lines[3] and "ERROR 'make bzImage' failed" in lines[3]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[5:-1]}
    assert rows["kmap_local_basic"] == ["PASS", "PASS", "s1", "NOT", "RUN"]
    assert rows["kmap_suite"] == ["PASS", "x1", "FAIL", "NOT", "RUN"]
    assert lines[-1] == "Matrix verdict: FAIL (1 of 3 cells passed)"
    doc = matrix_json("m.yaml", outs)
    assert doc["cells"][1]["modules"] == {"kmap_local_basic": "PASS s1", "kmap_suite": "FAIL"}
