"""Preflight checks on their own: sizes, CPU counts, module names (core/preflight.py), tools
and directories (stages/host.py)."""

import os
from pathlib import Path

import pytest

from harness.core import preflight
from harness.core.errors import HarnessError
from harness.core.preflight import (
    UsageError,
    check_memory,
    check_modules,
    check_smp,
    check_smp_value,
    check_timeout,
    format_memory,
    parse_memory,
)
from harness.core.suite import ModuleSpec
from harness.stages import host, paths
from harness.stages.host import HostError, check_tools, check_writable_dir


def one_line_each(e: HarnessError) -> None:
    assert e.what and e.fix and "\n" not in e.what and "\n" not in e.fix


@pytest.mark.parametrize("text,mib", [("8G", 8192), ("8192M", 8192), ("8192", 8192),
                                      ("6g", 6144), ("5.5G", 5632), ("4194304K", 4096),
                                      (" 8G ", 8192), ("1T", 1024 * 1024), (".5g", 512)])
def test_parse_memory_like_qemu(text, mib):
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["lots", "0", "0G", "-8G", "", "8GB", "8 G", "1.5K", "8G8"])
def test_parse_memory_refuses_garbage(text):
    with pytest.raises(UsageError, match="is not a positive memory size") as e:
        parse_memory(text)
    one_line_each(e.value)


def test_format_memory():
    assert format_memory(8192) == "8G" and format_memory(5000) == "5000M"
    assert parse_memory(format_memory(5632)) == 5632


@pytest.mark.parametrize("text,mib", [("4G", 4096), ("4096", 4096), ("64G", 65536),
                                      ("8G", 8192)])
def test_memory_in_range(text, mib):
    assert check_memory(text) == mib


@pytest.mark.parametrize("text,what", [("3G", "less than 4 GiB"), ("4095M", "less than 4 GiB"),
                                       ("65G", "more than 64 GiB"), ("1T", "more than 64 GiB")])
def test_memory_out_of_range(text, what):
    with pytest.raises(UsageError, match=what) as e:
        check_memory(text)
    assert "between 4G and 64G" in e.value.fix
    one_line_each(e.value)


@pytest.mark.parametrize("smp", [0, -1])
def test_smp_must_be_positive(smp):
    with pytest.raises(UsageError, match=f"--smp {smp} is not"):
        check_smp_value(smp)


def test_smp_against_kernel_config():
    config = "CONFIG_SMP=y\nCONFIG_NR_CPUS_RANGE_END=8\nCONFIG_NR_CPUS=4\n"
    check_smp(4, config)
    with pytest.raises(UsageError, match="--smp 5 is more than the kernel's CONFIG_NR_CPUS=4") \
            as e:
        check_smp(5, config)
    assert "--smp 4 or less" in e.value.fix
    one_line_each(e.value)
    with pytest.raises(UsageError, match="CONFIG_NR_CPUS=1"):
        check_smp(2, "# CONFIG_SMP is not set\n")
    check_smp(64, "CONFIG_HIGHMEM64G=y\n")  # no CPU count in the text: nothing to check
    with pytest.raises(UsageError):
        check_smp(0, config)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_timeout_must_be_positive(t):
    with pytest.raises(UsageError, match="--timeout"):
        check_timeout(t)


def test_timeout_none_or_positive_is_fine():
    check_timeout(None)
    check_timeout(0.5)


def test_tools_missing_are_named_together(monkeypatch):
    monkeypatch.setattr(host.shutil, "which",
                        lambda n: None if n in ("gdb", "setpriv") else f"/usr/bin/{n}")
    check_tools(["make", "gcc"])
    with pytest.raises(HostError) as e:
        check_tools(host.RUN_TOOLS)
    assert e.value.what == "not found on PATH: gdb, setpriv"
    assert "make deps" in e.value.fix and "util-linux" in e.value.fix
    one_line_each(e.value)


def test_writable_dir_is_created(tmp_path):
    d = tmp_path / "a" / "b"
    check_writable_dir(d, "HIGHMEM_ARTIFACTS")
    assert d.is_dir() and list(d.iterdir()) == []  # the probe file is gone


def test_writable_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(HostError, match=f"HIGHMEM_CACHE directory {f} is a file") as e:
        check_writable_dir(f, "HIGHMEM_CACHE")
    one_line_each(e.value)


def test_writable_dir_under_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    d = tmp_path / "file" / "sub"
    with pytest.raises(HostError, match=f"cannot be created: {tmp_path / 'file'} is a file") \
            as e:
        check_writable_dir(d, "HIGHMEM_ARTIFACTS")
    assert "HIGHMEM_ARTIFACTS" in e.value.fix
    one_line_each(e.value)


def test_writable_dir_without_write_access(tmp_path, monkeypatch):
    monkeypatch.setattr(host.os, "access", lambda p, mode: Path(p) != tmp_path)
    with pytest.raises(HostError, match="is not writable: Permission denied") as e:
        check_writable_dir(tmp_path, "HIGHMEM_ARTIFACTS")
    one_line_each(e.value)


def test_writable_dir_on_a_read_only_filesystem(tmp_path, monkeypatch):
    def refuse(path: Path) -> None:
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(host, "_probe", refuse)
    with pytest.raises(HostError, match="is not writable: Read-only file system"):
        check_writable_dir(tmp_path, "HIGHMEM_CACHE")


def test_new_run_dir_raises_harness_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    for root, what in [(tmp_path / "file", "is a file"),
                       (tmp_path / "file" / "sub", "cannot create a run directory")]:
        monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(root))
        with pytest.raises(HarnessError, match=what) as e:
            paths.new_run_dir()
        one_line_each(e.value)
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "ok"))
    assert paths.new_run_dir("boot").name.startswith("boot-")


def test_run_dirs_are_only_what_new_run_dir_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path))
    made = paths.new_run_dir("gdb")
    (tmp_path / "run-notes").mkdir()
    (tmp_path / "run-20240101-120000-0.txt").write_text("")
    os.symlink(made, tmp_path / "ssh-20240101-120000-0")
    assert paths.run_dirs(tmp_path) == [made]
    assert paths.run_dirs(tmp_path / "nope") == []


def specs(*names: str) -> tuple[ModuleSpec, ...]:
    return tuple(ModuleSpec(n) for n in names)


def test_modules_that_exist(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_test.c").write_text("")
    (mine / "helper.c").write_text("")
    check_modules(["kmap_suite", "my_test", "helper", "kmap_local_basic"],
                  specs("kmap_suite", "my_test"), {"my_test": mine}, Path("s.yaml"))


def test_unknown_module_lists_what_exists(tmp_path):
    with pytest.raises(UsageError) as e:
        check_modules(["kmap_suit", "nope"], specs("kmap_suite"), {}, Path("suites/x.yaml"))
    assert e.value.what.startswith("unknown --module 'kmap_suit', 'nope': not an entry of x.yaml")
    assert e.value.fix.startswith("did you mean kmap_suite? use one of: kmap_suite, ")
    assert "vmap_suite" in e.value.fix and "hm_checkpoint" not in e.value.fix
    one_line_each(e.value)


def test_available_modules_order(tmp_path):
    (tmp_path / "b.c").write_text("")
    (tmp_path / "a.c").write_text("")
    (tmp_path / "hm_checkpoint.c").write_text("")
    assert preflight.available_modules(specs("b", "z"), {}, tmp_path) == ["b", "z", "a"]


def test_pytest_options_are_checked_as_highmem_checks_its_own():
    from harness.core.preflight import UsageError, options_from_texts
    assert options_from_texts({"memory": "4194304K"}, "--highmem-").memory == "4G"
    assert options_from_texts({"memory": "5.5G", "smp": "3"}, "--highmem-").memory == "5632M"
    for texts, said in [({"memory": "1G"}, "--highmem-memory 1G is less than 4 GiB"),
                        ({"smp": "abc"}, "--highmem-smp 'abc' is not a valid value"),
                        ({"smp": "0"}, "--highmem-smp 0 is not a number of CPUs"),
                        ({"timeout": "-1"}, "--highmem-timeout -1 is not a positive"),
                        ({"accel": "xx"}, "--highmem-accel 'xx' is not one of"),
                        ({"reset": "maybe"}, "--highmem-reset 'maybe' is not yes or no")]:
        with pytest.raises(UsageError) as e:
            options_from_texts(texts, "--highmem-")
        assert e.value.what.startswith(said), e.value.what
        assert e.value.fix.startswith("give")


def test_a_bad_pytest_option_is_exit_2_with_error_and_fix(tmp_path):
    import subprocess
    import sys
    (tmp_path / "test_a.py").write_text("def test_x():\n    pass\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--highmem-memory=1G", "test_a.py"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("error: --highmem-memory 1G") and "\nfix: " in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


@pytest.mark.parametrize("ch", ["\x03", "\x1a", "\x1c", "\x04", "\x7f", "\x1b"])
def test_control_characters_in_params_are_refused(ch):
    from harness.core.suite import params_problem
    assert "control characters" in (params_problem(f"a=1{ch}") or "")
