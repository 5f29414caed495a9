"""Integration tests run the real thing: `highmem run` builds (or reuses) the i386 PAE
kernel, boots it in qemu-system-i386 with 8 GiB, and checks PTEs through gdb."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HIGHMEM = [sys.executable, "-m", "harness.cli"]


@dataclass
class Run:
    rc: int
    out: str
    err: str
    artifacts: Path

    @property
    def run_dir(self) -> Path:
        dirs = sorted(self.artifacts.glob("run-*"))
        assert dirs, f"no run directory in {self.artifacts}"
        return dirs[-1]

    @property
    def report(self) -> dict:
        return json.loads((self.run_dir / "report.json").read_text())

    def checks(self) -> list[dict]:
        return [c for m in self.report["modules"] for cp in m["checkpoints"]
                for c in cp["checks"]]


@pytest.fixture
def highmem_run(tmp_path, request):
    """Run `highmem run ARGS` in a subprocess with its own artifacts directory."""
    accel = request.config.getoption("--highmem-accel") or "auto"

    def go(*args: str, timeout: float = 3600) -> Run:
        env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path / "artifacts"))
        p = subprocess.run([*HIGHMEM, "run", "--accel", accel, *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=timeout)
        sys.stdout.write(p.stderr[-2000:] + p.stdout[-3000:])
        return Run(p.returncode, p.stdout, p.stderr, tmp_path / "artifacts")
    return go
