"""Bounded input: a suite or matrix file is a regular file of at most 1 MiB (`highmem run
/dev/zero` once read until MemoryError), and a `dir:`, `source:` or `suite:` that is a
symlink loop is named so (it was a RuntimeError traceback). Each ends as one error: and one
fix: line, exit 2."""

import os
import threading
from pathlib import Path

import pytest

from harness.workflows.matrix.model import MatrixError, load_matrix
from harness.core.suitefile import MAX_FILE_BYTES, SuiteError, load_suite
from harness.frontends import cli
from harness.stages import host


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")


def house_form(capsys, argv: list[str]) -> tuple[str, str]:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert [x for x in lines if x.startswith("error: ")] == [lines[-2]], err
    assert lines[-1].startswith("fix: "), err
    return lines[-2], lines[-1]


@pytest.mark.parametrize("dev, kind", [("/dev/zero", "character device"),
                                       ("/dev/null", "character device")])
def test_a_device_is_not_a_suite_file(capsys, dev, kind):
    what, fix = house_form(capsys, ["run", dev])
    assert f"{dev} is not a regular file (a {kind})" in what and "YAML file" in fix


def test_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "suite.yaml"
    os.mkfifo(fifo)
    done = threading.Event()
    t = threading.Thread(target=lambda: (house_form(capsys, ["run", str(fifo)]), done.set()),
                         daemon=True)
    t.start()
    t.join(5)
    assert done.is_set(), "reading a FIFO blocked"


def test_a_file_over_the_limit(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FILE_BYTES + "\nmodules: [{name: kmap_local_basic}]\n")
    what, _ = house_form(capsys, ["run", str(big)])
    assert "larger than 1 MiB" in what
    with pytest.raises(SuiteError, match="larger than 1 MiB"):
        load_suite(big)


def test_a_file_just_under_the_limit_loads(tmp_path):
    ok = tmp_path / "ok.yaml"
    head = "modules: [{name: kmap_local_basic}]\n"
    ok.write_text(head + "#" * (MAX_FILE_BYTES - len(head) - 1) + "\n")
    assert load_suite(ok)[0][0].name == "kmap_local_basic"


def test_a_proc_file_of_size_zero_is_read_bounded(capsys):
    """/proc files say size 0 and can be endless: the read stops at the limit anyway."""
    what, _ = house_form(capsys, ["run", "/proc/self/mountinfo"])
    assert "mountinfo" in what  # not YAML, or not a suite: named, bounded, no traceback


def test_a_dir_that_is_a_symlink_loop(tmp_path, capsys):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    suite = tmp_path / "s.yaml"
    suite.write_text("modules:\n  - name: mine\n    dir: a\n")
    what, fix = house_form(capsys, ["run", str(suite)])
    assert f"{suite}:2:" in what and "symlink loop" in what and "dir:" in fix


def test_matrix_paths_that_loop(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    m = tmp_path / "m.yaml"
    m.write_text("suite: a\ncells:\n  - {id: x, source: '6.1'}\n")
    with pytest.raises(MatrixError, match="'suite' .* is a symlink loop"):
        load_matrix(m)
    m.write_text("cells:\n  - {id: x, source: a}\n")
    with pytest.raises(MatrixError, match="'source' .* is a symlink loop"):
        load_matrix(m)
    with pytest.raises(MatrixError, match="not a regular file"):
        load_matrix(Path("/dev/zero"))
