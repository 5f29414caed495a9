"""`highmem clean` during a real run: the live run's directory is in use (its lock held by
the running `highmem run`), so clean leaves it and says so; the run ends with its report.
Look-alike directories planted next to it are never removed, before or after."""

import os
import subprocess
import sys
import time
from pathlib import Path

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
