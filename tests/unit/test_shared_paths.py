"""What concurrent runs on one machine share (pytest -n 2's workers, two `highmem run`s):
the build lock serialises one build directory and says whom it waits for, with a deadline;
the image appears whole or not at all; every run (and xdist worker) gets its own run
directory."""

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import BuildError
from harness.stages import buildlock, image, paths

HOLD = """
import sys, time
from pathlib import Path
from harness.stages.buildlock import build_lock
with build_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(build_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the build lock for `seconds`."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(build_dir), str(seconds)],
                         stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    assert p.stdout is not None and p.stdout.readline() == "locked\n"
    return p


def test_lock_waits_for_the_holder_and_names_it(tmp_path, capsys):
    holder = _holder(tmp_path, 0.8)
    try:
        t0 = time.monotonic()
        with buildlock.build_lock(tmp_path):
            waited = time.monotonic() - t0
            assert (tmp_path / buildlock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        holder.kill()
        holder.wait()
    assert waited > 0.3, "the lock did not wait for its holder"
    assert f"waiting for pid {holder.pid}, which is building in {tmp_path}" in \
        capsys.readouterr().err


def test_lock_wait_has_a_deadline(tmp_path):
    holder = _holder(tmp_path, 30)
    try:
        with pytest.raises(BuildError) as e:
            with buildlock.build_lock(tmp_path, wait_limit=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert f"stayed locked by pid {holder.pid}" in e.value.what


def test_lock_of_a_killed_holder_is_free(tmp_path):
    holder = _holder(tmp_path, 30)
    holder.kill()
    holder.wait()
    with buildlock.build_lock(tmp_path, wait_limit=2):
        pass


def _write(out: Path, data: bytes, n: int) -> None:
    for _ in range(n):
        image._write_atomically(out, data)


def test_image_appears_whole(tmp_path):
    out = tmp_path / "initramfs-abc.cpio.gz"
    data = os.urandom(1 << 20)
    writers = [multiprocessing.Process(target=_write, args=(out, data, 20)) for _ in range(2)]
    for w in writers:
        w.start()
    seen = set()
    while any(w.is_alive() for w in writers):
        if out.exists():
            seen.add(len(out.read_bytes()))
    for w in writers:
        w.join()
    assert seen <= {len(data)} and out.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [out.name], "a partial file was left"


def test_image_write_failure_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "initramfs-abc.cpio.gz"

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(image.os, "replace", fail)
    with pytest.raises(OSError):
        image._write_atomically(out, b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_each_worker_has_its_own_run_directory(tmp_path):
    made = [paths.new_run_dir(tag, tmp_path) for tag in ("pytest-gw0", "pytest-gw1",
                                                          "pytest-gw0", "pytest")]
    assert len(set(made)) == 4
    assert paths.run_dirs(tmp_path) == sorted(made), "highmem clean would miss a worker's"
