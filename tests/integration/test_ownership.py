"""`highmem clean` during a real run: the live run's directory is in use (its lock held by
the running `highmem run`), so clean leaves it and says so; the run ends with its report.
Look-alike directories planted next to it are never removed, before or after."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import HIGHMEM, REPO

RUN_WAIT_S = 1800.0


def _clean(env: dict[str, str]) -> str:
    p = subprocess.run([*HIGHMEM, "clean"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p.stdout


def test_clean_during_a_run_leaves_it_alone(tmp_path, request):
    art = tmp_path / "artifacts"
    planted = [art / n for n in ("backup-20240101-120000-1", "photos-20231224-093000-0",
                                 "run-20240101-120000-1")]
    for d in planted:
        d.mkdir(parents=True)
        (d / "precious.txt").write_text("the user's")
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(art))
    accel = request.config.getoption("--highmem-accel") or "auto"
    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen([*HIGHMEM, "run", "--accel", accel, "--module",
                                "kmap_local_basic"], cwd=REPO, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RUN_WAIT_S
        run_dir: Path | None = None
        while run.poll() is None and time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            dirs = [d for d in art.glob("run-2*") if d not in planted]
            if dirs and ("== boot" in text or "== module" in text):
                run_dir = dirs[0]
                break
            time.sleep(0.5)
        assert run_dir is not None, log.read_text()[-3000:]
        out = _clean(env)
        assert f"leaving {run_dir} alone: in use by a live run" in out, out
        assert run_dir.is_dir()
        rc = run.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    sys.stdout.write(log.read_text()[-3000:])
    assert rc == 0, log.read_text()[-3000:]
    assert (run_dir / "report.json").is_file() and (run_dir / "report.txt").is_file()
    assert "Traceback" not in log.read_text()
    out = _clean(env)  # the run has ended: its directory goes, the user's stay
    assert "removed 1 run directories" in out and not run_dir.exists(), out
    assert all((d / "precious.txt").read_text() == "the user's" for d in planted)
    assert "run-20240101-120000-1" in out and "without a .highmem-run marker" in out


def _fill(art: Path) -> None:
    with open(art / "filler", "wb") as f:  # another program fills the disk
        try:
            while True:
                f.write(b"x" * (1 << 20))
                f.flush()
        except OSError:
            pass


def _remove_run_dir(art: Path) -> None:
    for d in art.glob("run-*"):  # another program removes it (rm -rf)
        subprocess.run(["rm", "-rf", str(d)], check=True)


# (a read-only remount is refused while the run has files open for writing: EBUSY)
@pytest.mark.parametrize("fault, errno_name, fix", [
    ("full", "ENOSPC", "fix: free space"), ("removed", "ENOENT", "fix: ")])
def test_the_artifacts_filesystem_fails_mid_run(tmp_path, request, fault, errno_name, fix):
    """HIGHMEM_ARTIFACTS on a 32 MiB tmpfs that another program fills, or the run directory
    removed by another program, once the modules run: the run ends as an environment
    error naming the errno and the directory (exit 2, one error: and one fix: line, no
    traceback), not as failed or interrupted modules."""
    art = tmp_path / "artifacts"
    art.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32M", "tmpfs",
                                            str(art)], capture_output=True).returncode:
        pytest.skip("needs root to mount a tmpfs")
    try:
        env = dict(os.environ, HIGHMEM_ARTIFACTS=str(art))
        accel = request.config.getoption("--highmem-accel") or "auto"
        log = tmp_path / "run.log"
        with log.open("w") as out:
            run = subprocess.Popen([*HIGHMEM, "run", "--accel", accel, "--module",
                                    "kmap_local_basic", "--module", "kmap_local_suite",
                                    "--module", "kmap_suite"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + RUN_WAIT_S
            while run.poll() is None and time.monotonic() < deadline:
                if "== module" in log.read_text(errors="replace"):
                    break
                time.sleep(0.2)
            {"full": _fill, "removed": _remove_run_dir}[fault](art)
            rc = run.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        text = log.read_text(errors="replace")
        sys.stdout.write(text[-3000:])
        lines = text.strip().splitlines()
        assert rc == 2 and "Traceback" not in text, text[-3000:]
        assert lines[-2].startswith("error: environment error") and errno_name in lines[-2]
        assert "HIGHMEM_ARTIFACTS" in lines[-2] and lines[-1].startswith(fix), lines[-2:]
        assert len([x for x in lines if x.startswith("error:")]) == 1
    finally:
        subprocess.run(["umount", "-l", str(art)], check=False)
