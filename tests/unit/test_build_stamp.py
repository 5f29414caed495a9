"""Build stamp and progress on a tmp build directory; make is replaced by a fake that writes
the artifacts, so these run in milliseconds."""

from pathlib import Path

import pytest

from harness.stages import build
from harness.stages.build import KernelBuild, StepEstimate
from harness.stages.source import KernelSource

TAR = KernelSource(tree=Path("/nonexistent"), version=(6, 12, 7), identity="tar:k:1:2")


class FakeMake:
    """Stands in for build._run_make: writes vmlinux, bzImage, vmlinux-gdb.py, release."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir, self.runs = build_dir, 0

    def __call__(self, argv: list[str], log: Path, expected: StepEstimate) -> tuple[int, int]:
        self.runs += 1
        kb = KernelBuild(self.build_dir, TAR)
        kb.bzimage.parent.mkdir(parents=True, exist_ok=True)
        (self.build_dir / "include" / "config").mkdir(parents=True, exist_ok=True)
        (self.build_dir / "include" / "config" / "kernel.release").write_text("6.12.7\n")
        if not kb.vmlinux.exists():  # like make: an existing file is trusted by its mtime
            kb.vmlinux.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
        kb.bzimage.write_bytes(b"MZ" * 100)
        kb.gdb_script.write_text("# gdb\n")
        return 0, 42


@pytest.fixture
def make(tmp_path, monkeypatch):
    fake = FakeMake(tmp_path / "build")
    monkeypatch.setattr(build, "_run_make", fake)
    return fake


def test_a_second_build_of_the_same_identity_skips_make(make, capsys):
    build.build_kernel(TAR, make.build_dir)
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 1
    assert "make not run" in capsys.readouterr().err


def test_a_same_size_corrupt_vmlinux_is_rebuilt(make, capsys):
    kb = build.build_kernel(TAR, make.build_dir)
    data = bytearray(kb.vmlinux.read_bytes())
    data[100] ^= 0xFF
    kb.vmlinux.write_bytes(bytes(data))
    capsys.readouterr()
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 2
    assert "cached vmlinux does not match its stamp: rebuilding" in capsys.readouterr().err
    assert kb.vmlinux.read_bytes() != bytes(data)  # deleted, so make made it again
    assert build.check_stamp(kb).fresh


def test_a_truncated_vmlinux_or_bzimage_is_rebuilt(make):
    kb = build.build_kernel(TAR, make.build_dir)
    kb.vmlinux.write_bytes(kb.vmlinux.read_bytes()[:10])
    verdict = build.check_stamp(kb)
    assert not verdict.fresh and verdict.damaged == (kb.vmlinux,)
    build.build_kernel(TAR, make.build_dir)
    kb.bzimage.write_bytes(b"MZ")
    assert "bzImage does not match" in build.check_stamp(kb).note
    kb.gdb_script.unlink()
    assert kb.gdb_script in build.check_stamp(kb).damaged


def test_an_old_one_line_stamp_means_make_runs_once(make, capsys):
    make.build_dir.mkdir()
    (make.build_dir / ".hm-built").write_text(TAR.identity + "\n")
    build.build_kernel(TAR, make.build_dir)
    assert "older harness" in capsys.readouterr().err
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 1


def test_another_identity_or_an_unversioned_tree_runs_make(make):
    build.build_kernel(TAR, make.build_dir)
    other = KernelSource(TAR.tree, TAR.version, "tar:k:1:3")
    build.build_kernel(other, make.build_dir)
    unversioned = KernelSource(TAR.tree, TAR.version, "dir:/src/linux:unversioned")
    build.build_kernel(unversioned, make.build_dir)
    build.build_kernel(unversioned, make.build_dir)
    assert make.runs == 4


def test_a_failed_make_leaves_no_stamp(make, monkeypatch):
    build.build_kernel(TAR, make.build_dir)
    monkeypatch.setattr(build, "_run_make", lambda argv, log, expected: (2, 7))
    (make.build_dir / "build.log").write_text("error\n")
    other = KernelSource(TAR.tree, TAR.version, "tar:k:1:3")
    with pytest.raises(build.BuildError, match="make exit 2"):
        build.build_kernel(other, make.build_dir)
    assert not (make.build_dir / ".hm-built").exists()


def test_progress_shows_a_percentage_only_below_the_estimate():
    last = StepEstimate(550, "the last build's")
    assert build.progress_line(275, last, "CC mm/highmem.o") == \
        "about 50% (275 of ~550 steps), CC mm/highmem.o"
    assert build.progress_line(549, last, "LD vmlinux").startswith("about 99% (549 of ~550")
    past = build.progress_line(600, last, "LD vmlinux")
    assert past == "600 steps, more than the last build's 550, LD vmlinux"
    assert "%" not in past
    cold = StepEstimate(1500, "a typical cold build's")
    assert "more than a typical cold build's 1500" in build.progress_line(1600, cold, "x")
    assert build.progress_line(3, StepEstimate(0, ""), "CC a.o") == "3 steps, CC a.o"


def test_the_estimate_is_the_last_build_or_a_cold_guess(tmp_path):
    assert build._previous_steps(tmp_path) == StepEstimate(1500, "a typical cold build's")
    (tmp_path / "vmlinux").write_bytes(b"")
    assert build._previous_steps(tmp_path).steps == 0
    (tmp_path / ".hm-steps").write_text("550")
    assert build._previous_steps(tmp_path) == StepEstimate(550, "the last build's")
