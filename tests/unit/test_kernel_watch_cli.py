"""`highmem watch-kernel`'s usage errors (exit 2, one error: and one fix: line, before any
boot) and the workload it sends to the guest."""

import argparse

import pytest

from harness.frontends import cli
from harness.frontends.kernel_watch_cli import WORKLOAD, workload


@pytest.mark.parametrize("args,what", [
    (["--budget", "0"], "--budget 0"),
    (["--pages", "0"], "--pages 0"),
    (["--execs", "-1"], "--execs -1"),
    (["--insmod", "no_such_module"], "--insmod no_such_module"),
    (["--module-dir", "/nonexistent-kwatch"], "--module-dir /nonexistent-kwatch"),
])
def test_usage_errors_exit_2_before_any_boot(args, what, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    assert cli.main(["watch-kernel", *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["error", "fix"] and what in err[0]
    assert not list((tmp_path / "artifacts").glob("watch-kernel-*"))


def test_workload_is_the_builtin_with_its_sizes_and_an_insmod_that_must_work():
    ns = argparse.Namespace(workload=None, pages=7, execs=3, insmod=None, param=[])
    assert workload(ns) == WORKLOAD.format(pages=7, execs=3) and "count=7" in workload(ns)
    ns.insmod, ns.param = "kwatch_planted", ["plant=kmap_nx", "x=a b"]
    first = workload(ns).splitlines()[0]
    assert first == ("insmod /lib/modules/highmem/kwatch_planted.ko plant=kmap_nx 'x=a b' || "
                     "{ echo 'insmod kwatch_planted failed'; exit 97; }")
    ns.workload = "ls /"
    assert workload(ns).splitlines()[1] == "ls /"
