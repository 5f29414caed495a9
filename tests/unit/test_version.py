"""`highmem --version`: the package version and git describe of the harness checkout."""

import re
import subprocess
from pathlib import Path

import pytest

from harness.frontends import cli
from harness.stages import version

REPO = Path(__file__).resolve().parents[2]


def test_version_names_the_package_and_the_commit(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    m = re.fullmatch(r"highmem-harness (\S+) \(git (\S+)\)\n", out)
    assert m, out
    assert m.group(1) == version.package_version() != "unknown"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head[:7] in m.group(2)


def test_version_outside_a_git_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(version, "REPO", tmp_path)
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.endswith("(not a git checkout)\n")


@pytest.mark.parametrize("broken", ["no git", "git fails"])
def test_version_without_a_working_git(tmp_path, monkeypatch, broken):
    monkeypatch.setattr(version, "REPO", tmp_path)
    (tmp_path / ".git").mkdir()             # a .git that git does not take
    if broken == "no git":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert version.git_describe() is None
    assert version.version_line().endswith("(not a git checkout)")


def test_version_of_an_uninstalled_copy(monkeypatch):
    monkeypatch.setattr(version, "PACKAGE", "highmem-harness-not-installed")
    assert version.package_version() == "unknown"
