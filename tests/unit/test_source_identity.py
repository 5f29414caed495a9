"""Source stage on tmp dirs and tmp git repos: a tree's identity is its own git state, and a
--source that is not a tarball fails in two lines and leaves nothing in the cache."""

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.core.errors import SourceError
from harness.stages import source

MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 7\nEXTRAVERSION =\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c",
                    "init.defaultBranch=main", "-C", str(repo), *args],
                   check=True, capture_output=True)


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return path


def test_plain_tree_inside_another_repo_is_not_identified_by_that_repo(tmp_path):
    outer = make_repo(tmp_path / "project", {"README": "x\n", "linux/Makefile": MAKEFILE})
    tree = outer / "linux"
    before = source._tree_identity(tree)
    assert before.startswith("dir:")
    (tree / "Makefile").write_text(MAKEFILE + "# edited\n")
    (outer / "README").write_text("outer edit\n")
    assert source._tree_identity(tree) == before  # constant: the build lets make decide


def test_own_repo_identity_follows_tracked_and_untracked_edits(tmp_path):
    tree = make_repo(tmp_path / "linux", {"Makefile": MAKEFILE, "mm/highmem.c": "int a;\n"})
    clean = source._tree_identity(tree)
    assert clean.startswith(f"git:{tree.resolve()}:")
    assert source._tree_identity(tree) == clean

    (tree / "mm" / "new.c").write_text("int b;\n")
    untracked = source._tree_identity(tree)
    assert untracked != clean
    (tree / "mm" / "new.c").write_text("int c;\n")  # same status line, new content
    assert source._tree_identity(tree) not in (clean, untracked)

    (tree / "mm" / "new.c").unlink()
    assert source._tree_identity(tree) == clean
    (tree / "mm" / "highmem.c").write_text("int a2;\n")
    assert source._tree_identity(tree) != clean


def test_identity_is_the_same_through_a_symlink(tmp_path):
    tree = make_repo(tmp_path / "linux", {"Makefile": MAKEFILE})
    (tmp_path / "link").symlink_to(tree)
    assert source._tree_identity(tmp_path / "link") == source._tree_identity(tree)


def test_untracked_paths_skip_the_old_name_of_a_rename():
    status = b"R  new.c\0old.c\0?? a b.c\0 M x.c\0?? dir/y.c\0"
    assert source._untracked(status) == ["a b.c", "dir/y.c"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_file_that_is_not_a_tarball_fails_in_two_lines_and_leaves_nothing(cache, tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    with pytest.raises(SourceError) as e:
        source.resolve_source(passwd)
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("fix: ")
    assert "nor a tar archive" in lines[0]
    assert not cache.exists() or not any(cache.rglob("*"))


def kernel_tarball(path: Path, mode: str = "w:gz") -> Path:
    data = MAKEFILE.encode()
    with tarfile.open(path, mode) as t:
        info = tarfile.TarInfo("linux-6.12.7/Makefile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name,mode", [("k.tar.gz", "w:gz"), ("k.tar.xz", "w:xz"),
                                       ("k.tar", "w")])
def test_a_tarball_is_unpacked_once_into_place(cache, tmp_path, name, mode):
    ks = source.resolve_source(kernel_tarball(tmp_path / name, mode))
    assert ks.version == (6, 12, 7) and ks.tree.name == "linux-6.12.7"
    assert (ks.tree.parent / ".unpacked").exists()
    assert [p.name for p in (cache / "src").iterdir()] == [ks.tree.parent.name]
    assert source.resolve_source(tmp_path / name).tree == ks.tree


def test_a_truncated_tarball_fails_in_two_lines_and_leaves_nothing(cache, tmp_path):
    whole = kernel_tarball(tmp_path / "whole.tar.xz", "w:xz").read_bytes()
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="cannot unpack") as e:
        source.resolve_source(cut)
    assert len(str(e.value).splitlines()) == 2
    assert list((cache / "src").iterdir()) == []


def test_a_tarball_without_a_kernel_leaves_nothing(cache, tmp_path):
    tb = tmp_path / "other.tar.gz"
    with tarfile.open(tb, "w:gz") as t:
        t.addfile(tarfile.TarInfo("a/README"), io.BytesIO(b""))
    with pytest.raises(SourceError, match="does not hold one kernel tree"):
        source.resolve_source(tb)
    assert list((cache / "src").iterdir()) == []


def test_an_unmarked_entry_of_an_older_harness_is_replaced(cache, tmp_path):
    tb = kernel_tarball(tmp_path / "k.tar.gz")
    st = tb.stat()
    stale = cache / "src" / f"k-{st.st_size}-{int(st.st_mtime)}"
    stale.mkdir(parents=True)  # what an interrupted unpack used to leave
    assert source.resolve_source(tb).tree == stale / "linux-6.12.7"


def test_tool_stderr_becomes_one_line():
    err = "xz: (stdin): Unexpected end of input\ntar: Unexpected EOF\ntar: Unexpected EOF\n"
    assert source.one_line(err) == "xz: (stdin): Unexpected end of input; tar: Unexpected EOF"
    assert len(source.one_line("x" * 500)) == 200
