"""Environment errors are environment errors: ENOSPC, EROFS, EACCES, a directory gone, on
the artifacts, the cache or /dev/shm. The pure naming (core/host_errors.py); a run whose
host fills up mid-run (the real Lab over fake operations): a report naming the directory
and the errno, the rest "not run", exit 2 with one error: and one fix: line; the restore
copy onto a full tmpfs (a real 1 MiB tmpfs): an environment error, the snapshot kept."""

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.host_errors import HostIOError, errno_in_text, from_oserror, host_error
from harness.core.options import RunOptions
from harness.core.results import exit_status
from harness.core.snapshot_meta import SnapshotMeta
from harness.core.suite import ModuleSpec
from harness.run import run, run_and_report
from harness.stages import snapshot
from tests.unit.fakelab import FakeOperations, FakeSession

ROOTS = {"HIGHMEM_ARTIFACTS": "/home/u/art", "HIGHMEM_CACHE": "/home/u/.cache/hm",
         "/dev/shm": "/dev/shm"}


@pytest.mark.parametrize("name, path, setting, fix", [
    ("ENOSPC", "/home/u/art/run-1/console.log", "HIGHMEM_ARTIFACTS", "df -h /home/u/art"),
    ("EROFS", "/home/u/.cache/hm/build/x.o", "HIGHMEM_CACHE", "remount /home/u/.cache/hm"),
    ("EACCES", "/home/u/art/run-1", "HIGHMEM_ARTIFACTS", "ls -ld /home/u/art"),
    ("ENOENT", "/home/u/art/run-1/report.json", "HIGHMEM_ARTIFACTS", "was removed"),
    ("ENOSPC", "/dev/shm/hm-x/ram", "/dev/shm", "df -h /dev/shm"),
    ("ENOSPC", "/elsewhere/f", "", "df -h /elsewhere"),
])
def test_host_error_names_the_directory_and_the_errno(name, path, setting, fix):
    e = host_error(name, path, "writing", ROOTS)
    assert e.what.startswith("environment error: writing failed on " + path)
    assert name in e.what and os.strerror(getattr(errno, name)) in e.what
    assert e.setting == setting and fix in e.fix
    assert ("or set " + setting) in e.fix if setting.isupper() else "or set" not in e.fix
    assert "\n" not in e.what + e.fix


def test_from_oserror_only_for_host_errnos():
    assert from_oserror(OSError(errno.ENOSPC, "x", "/home/u/art/f"), "w", ROOTS) is not None
    assert from_oserror(OSError(errno.EINVAL, "x", "/f"), "w", ROOTS) is None
    assert from_oserror(ValueError("x"), "w", ROOTS) is None
    lost = FileNotFoundError(errno.ENOENT, "x", "/home/u/art/f")
    assert from_oserror(lost, "w", ROOTS) is None             # a file merely absent
    assert from_oserror(lost, "w", ROOTS, dir_gone=True) is not None


def test_errno_in_a_tools_message():
    assert errno_in_text("cp: error writing '/dev/shm/x': No space left on device") == "ENOSPC"
    assert errno_in_text("cp: cannot create regular file 'x': Read-only file system") == "EROFS"
    assert errno_in_text("cp: something else") is None


def _filling_up(monkeypatch, at: str, err: OSError) -> None:
    real = FakeSession.run_module

    def run_module(self, spec, console):  # type: ignore[no-untyped-def]
        if spec.name == at:
            raise err
        return real(self, spec, console)
    monkeypatch.setattr(FakeSession, "run_module", run_module)


SUITE = (ModuleSpec("kmap_local_basic"), ModuleSpec("cat_spin"), ModuleSpec("cat_healthy"))


def test_a_full_disk_mid_run_is_a_report_of_an_environment_error(tmp_path, monkeypatch,
                                                                   capsys):
    run_dir = tmp_path / "art" / "run-1"
    run_dir.mkdir(parents=True)
    _filling_up(monkeypatch, "cat_spin",
                OSError(errno.ENOSPC, "No space left on device", str(run_dir / "x.log")))
    ops = FakeOperations(tmp_path)
    with pytest.raises(HostIOError) as e:
        run_and_report(RunOptions(), SUITE, run_dir, ops)
    assert "ENOSPC" in e.value.what and str(run_dir / "x.log") in e.value.what
    assert "HIGHMEM_ARTIFACTS" in e.value.what and str(e.value).count("\n") == 1
    data = json.loads((run_dir / "report.json").read_text())
    assert data["environment"]["errno"] == "ENOSPC"
    assert data["environment"]["directory"] == "HIGHMEM_ARTIFACTS"
    statuses = [(m["name"], m["status"]) for m in data["modules"]]
    assert statuses[0] == ("kmap_local_basic", "PASS")
    assert [s for _, s in statuses[1:]] == ["NOT RUN", "NOT RUN"]
    assert "interrupted" not in json.dumps(data["modules"][1:])
    assert data["interrupted"] in ("", None)
    assert (run_dir / "report.txt").read_text().startswith("ENVIRONMENT ERROR")
    assert "ENVIRONMENT ERROR" in capsys.readouterr().out
    assert not ops.sessions[0].up


def test_the_run_directory_removed_mid_run(tmp_path, monkeypatch):
    """ENOENT counts when the directory is gone: the report cannot be written, so one
    error and one fix (no traceback)."""
    run_dir = tmp_path / "art" / "run-1"
    run_dir.mkdir(parents=True)

    def vanish(self, spec, console):  # type: ignore[no-untyped-def]
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                str(run_dir / "console.log"))
    monkeypatch.setattr(FakeSession, "run_module", vanish)
    with pytest.raises(HostIOError) as e:
        run(RunOptions(), SUITE, run_dir, FakeOperations(tmp_path))
    assert "ENOENT" in e.value.what
    assert e.value.fix.startswith(f"{run_dir} was removed during the run")


def test_an_oserror_that_is_not_the_hosts_is_still_a_bug(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _filling_up(monkeypatch, "cat_spin", OSError(errno.EINVAL, "Invalid argument"))
    result = run(RunOptions(), SUITE, run_dir, FakeOperations(tmp_path))
    assert exit_status(result) == 1 and not result.environment
    assert result.modules[1].failure.kind == "harness"  # our bug, named so; the run goes on
    assert result.modules[2].failure is None


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only), unmounted after."""
    d = tmp_path / "tiny"
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs",
                                            str(d)], capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_restore_copy_onto_a_full_tmpfs_keeps_the_snapshot(tmp_path, tiny_tmpfs,
                                                           monkeypatch):
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    snap_dir = snapshot.store_dir() / "k"
    snap_dir.mkdir(parents=True)
    ram = snap_dir / "ram"
    ram.write_bytes(os.urandom(2 << 20))  # 2 MiB of touched pages: more than the tmpfs holds
    dst = tiny_tmpfs / "hm-x" / "ram"
    dst.parent.mkdir()
    with pytest.raises(HostIOError) as e:
        snapshot.copy_sparse(ram, dst)
    assert e.value.errno_name == "ENOSPC" and str(dst) in e.value.what
    assert isinstance(e.value, HarnessError) and "df -h" in e.value.fix

    # and the guest session that restores it: the error goes up, the snapshot stays
    from harness import operations
    discarded = []
    monkeypatch.setattr(operations.snapshot, "discard", discarded.append)
    monkeypatch.setattr(operations, "ram_dir_usable", lambda: True)
    meta = SnapshotMeta(key="k", parts={}, accel="tcg", core_addr=0, host_key_type="",
                        host_key="", client_key="")
    monkeypatch.setattr(operations.snapshot, "find",
                        lambda key: snapshot.Snapshot(snap_dir, meta))
    session = operations.GuestSession(operations.QemuConfig(kernel=ram, initrd=ram),
                                      None, tmp_path)  # type: ignore[arg-type]
    monkeypatch.setattr(session, "snapshot_key", lambda: "k")
    monkeypatch.setattr(session, "_restore", lambda snap: snapshot.copy_sparse(snap.ram, dst))
    with pytest.raises(HostIOError):
        session.boot(restore=True)
    assert discarded == [] and ram.exists()


def _fill(d: Path) -> None:
    """Write until the filesystem of `d` is full."""
    with open(d / "filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def _house_form(capsys, argv: list[str]) -> tuple[str, str]:
    from harness.frontends import cli
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len([x for x in lines if x.startswith("error:")]) == 1
    assert lines[-2].startswith("error: ") and lines[-1].startswith("fix: "), err
    return lines[-2], lines[-1]


@pytest.fixture
def tools(monkeypatch):
    from harness.stages import host
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")


def test_a_full_artifacts_dir_is_refused_before_the_run(tmp_path, tiny_tmpfs, monkeypatch,
                                                        capsys, tools):
    _fill(tiny_tmpfs)
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tiny_tmpfs))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    what, fix = _house_form(capsys, ["run", "--module", "kmap_local_basic"])
    assert "HIGHMEM_ARTIFACTS" in what and "is full" in what and "ENOSPC" in what
    assert f"df -h {tiny_tmpfs}" in fix
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]  # no run dir made


def test_a_read_only_cache_is_refused_before_the_run(tmp_path, monkeypatch, capsys, tools):
    real, ro = tmp_path / "real", tmp_path / "ro"
    real.mkdir()
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(real), str(ro)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root for a bind mount")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        monkeypatch.setenv("HIGHMEM_CACHE", str(ro))
        monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "art"))
        what, fix = _house_form(capsys, ["run", "--module", "kmap_local_basic"])
        assert "HIGHMEM_CACHE" in what and "Read-only file system" in what
        assert "read-write" in fix
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_a_small_ram_dir_is_refused(tiny_tmpfs):
    from harness.stages.host import HostError, check_ram_dir
    with pytest.raises(HostError) as e:
        check_ram_dir(tiny_tmpfs)
    assert "is full" in e.value.what and "ENOSPC" in e.value.what
    assert "remount" in e.value.fix and "\n" not in str(e.value).split("\n", 1)[1]
    check_ram_dir(Path("/dev/shm"))  # this host's: room enough


def test_an_error_naming_no_file_names_the_full_directory(tmp_path, tiny_tmpfs, monkeypatch):
    """A buffered log's write fails without a file name: the directory that is full is
    found (here the run directory's filesystem), never "?"."""
    from harness.run import as_host_error
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    run_dir = tiny_tmpfs / "run-1"
    run_dir.mkdir()
    _fill(tiny_tmpfs)
    e = as_host_error(OSError(errno.ENOSPC, "No space left on device"), run_dir, "logging")
    assert e is not None and e.path == str(run_dir) and e.setting == "HIGHMEM_ARTIFACTS"


def test_a_module_build_that_ran_out_of_space_is_not_a_no_build(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ops = FakeOperations(tmp_path, no_build={
        "cat_spin": "cc1: fatal error: error writing to /tmp/ccX.s: No space left on device "
                    "(log: build.log)"})
    with pytest.raises(HostIOError) as e:
        run(RunOptions(), SUITE, run_dir, ops)
    assert "building the module cat_spin" in e.value.what and "ENOSPC" in e.value.what
    assert ops.boots == 0
    ops = FakeOperations(tmp_path, no_build={"cat_spin": "error: 'x' undeclared"})
    result = run(RunOptions(), SUITE, run_dir, ops)  # a real compile error: a result
    assert result.modules[1].failure.kind == "build" and exit_status(result) == 1


def test_the_restore_copy_fails_in_cp_too(tmp_path, tiny_tmpfs, monkeypatch):
    """When the free space looked enough but cp still fails (another writer meanwhile):
    cp's "No space left on device" is the same environment error."""
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    ram = tmp_path / "ram"
    ram.write_bytes(os.urandom(2 << 20))
    monkeypatch.setattr(snapshot.os, "statvfs",
                        lambda p: os.statvfs_result((4096, 4096, 1 << 20, 1 << 20, 1 << 20,
                                                     0, 0, 0, 0, 255)))
    with pytest.raises(HostIOError) as e:
        snapshot.copy_sparse(ram, tiny_tmpfs / "ram")
    assert e.value.errno_name == "ENOSPC" and "MiB free" not in e.value.what
