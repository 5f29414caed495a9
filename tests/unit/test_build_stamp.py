"""Build stamp and progress on a tmp build directory; make is replaced by a fake that writes
the artifacts, so these run in milliseconds (the gdb index step runs the real gdb-add-index on
a small program)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.stages import build
from harness.stages.build import KernelBuild, StepEstimate
from harness.stages.source import KernelSource

TAR = KernelSource(tree=Path("/nonexistent"), version=(6, 12, 7), identity="tar:k:1:2")


class FakeMake:
    """Stands in for build._run_make: writes vmlinux, vmlinux-gdb.py, release."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir, self.runs = build_dir, 0

    def __call__(self, argv: list[str], log: Path, expected: StepEstimate) -> tuple[int, int]:
        self.runs += 1
        kb = KernelBuild(self.build_dir, TAR)
        self.argv = argv
        (self.build_dir / "include" / "config").mkdir(parents=True, exist_ok=True)
        (self.build_dir / "include" / "config" / "kernel.release").write_text("6.12.7\n")
        if not kb.vmlinux.exists():  # like make: an existing file is trusted by its mtime
            kb.vmlinux.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
        kb.gdb_script.write_text("# gdb\n")
        return 0, 42


@pytest.fixture
def make(tmp_path, monkeypatch):
    fake = FakeMake(tmp_path / "build")
    monkeypatch.setattr(build, "_run_make", fake)
    monkeypatch.setattr(build, "add_gdb_index", fake_index)
    monkeypatch.delenv("KCFLAGS", raising=False)
    monkeypatch.delenv("KAFLAGS", raising=False)
    return fake


def fake_index(vmlinux: Path, log: Path) -> None:
    """Like gdb-add-index: rewrites vmlinux, once."""
    data = vmlinux.read_bytes()
    if not data.endswith(b"INDEX"):
        vmlinux.write_bytes(data + b"INDEX")


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


def test_a_truncated_vmlinux_or_a_missing_gdb_script_is_rebuilt(make):
    kb = build.build_kernel(TAR, make.build_dir)
    kb.vmlinux.write_bytes(kb.vmlinux.read_bytes()[:10])
    verdict = build.check_stamp(kb)
    assert not verdict.fresh and verdict.damaged == (kb.vmlinux,)
    build.build_kernel(TAR, make.build_dir)
    assert build.check_stamp(kb).fresh
    kb.gdb_script.unlink()
    assert kb.gdb_script in build.check_stamp(kb).damaged


def test_an_old_one_line_stamp_means_make_runs_once(make, capsys):
    make.build_dir.mkdir()
    (make.build_dir / ".hm-built").write_text(TAR.identity + "\n")
    build.build_kernel(TAR, make.build_dir)
    assert "older harness" in capsys.readouterr().err
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 1


def test_the_stamp_pins_the_indexed_vmlinux(make):
    kb = build.build_kernel(TAR, make.build_dir)
    assert kb.vmlinux.read_bytes().endswith(b"INDEX")
    assert build.check_stamp(kb).fresh  # the sha256 in the stamp is of the indexed file


def test_a_changed_recipe_runs_make_with_the_new_flags(make, monkeypatch, capsys):
    build.build_kernel(TAR, make.build_dir)
    assert f"KCFLAGS=-fdebug-prefix-map={make.build_dir}=." in make.argv
    assert f"KAFLAGS=-fdebug-prefix-map={make.build_dir}=." in make.argv
    assert "bzImage" not in make.argv
    monkeypatch.setenv("KCFLAGS", "-O1")
    capsys.readouterr()
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 2
    assert "build recipe" in capsys.readouterr().err
    assert f"KCFLAGS=-O1 -fdebug-prefix-map={make.build_dir}=." in make.argv
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 2


def test_a_stamp_without_a_recipe_means_make_runs_once(make):
    kb = build.build_kernel(TAR, make.build_dir)
    stamp = make.build_dir / ".hm-built"
    d = json.loads(stamp.read_text())
    del d["recipe"]  # as the harness wrote it before the recipe was recorded
    stamp.write_text(json.dumps(d))
    assert not build.check_stamp(kb).fresh
    build.build_kernel(TAR, make.build_dir)
    build.build_kernel(TAR, make.build_dir)
    assert make.runs == 2


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which(build.GDB_INDEX)),
                    reason="needs gcc and gdb-add-index")
def test_add_gdb_index_adds_the_section_once(tmp_path):
    src = tmp_path / "t.c"
    src.write_text("struct s { int a; long b; };\nstruct s v;\nint main(void) { return 0; }\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-g", "-o", str(exe), str(src)], check=True, timeout=60)
    assert not build.has_gdb_index(exe)
    build.add_gdb_index(exe, tmp_path / "log")
    assert build.has_gdb_index(exe)
    once = exe.read_bytes()
    build.add_gdb_index(exe, tmp_path / "log")
    assert exe.read_bytes() == once


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
    assert build._previous_steps(tmp_path) == StepEstimate(1620, "a typical cold build's")
    (tmp_path / "vmlinux").write_bytes(b"")
    assert build._previous_steps(tmp_path).steps == 0
    (tmp_path / ".hm-steps").write_text("550")
    assert build._previous_steps(tmp_path) == StepEstimate(550, "the last build's")
