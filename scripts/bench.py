#!/usr/bin/env python3
"""Benchmark: prints the figures (not a test). Usage: make bench [BENCH_ARGS=--runs 3 --cold]

- no-change `highmem run`: total wall time and each phase, over --runs runs
- boot to shell, module, gdb checks, seconds per PTE assertion
- with --cold: one run with a fresh build directory (the kernel's make from scratch;
  ccache may still be warm: its hit rate is printed)
- the unit tests' wall time
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def one_run(env: dict[str, str], *args: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(env, HIGHMEM_ARTIFACTS=tmp)
        t0 = time.monotonic()
        p = subprocess.run([PY, "-m", "harness.cli", "run", *args], cwd=REPO, env=env,
                           capture_output=True, text=True)
        wall = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(f"run failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-1000:]}")
        rep = json.loads(next(Path(tmp).glob("run-*/report.json")).read_text())
    return wall, rep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="also time a build from scratch")
    a = ap.parse_args()
    env = dict(os.environ)
    if a.cold:
        with tempfile.TemporaryDirectory() as cache:
            src_cache = Path(env.get("HIGHMEM_CACHE", Path.home() / ".cache/highmem-harness"))
            os.symlink(src_cache / "src", Path(cache) / "src")
            os.symlink(src_cache / "debs", Path(cache) / "debs")
            subprocess.run(["ccache", "-z"], capture_output=True)
            wall, rep = one_run(dict(env, HIGHMEM_CACHE=cache))
            stats = subprocess.run(["ccache", "-s"], capture_output=True, text=True).stdout
            hits = [ln.strip() for ln in stats.splitlines() if "Hits" in ln][:1]
            print(f"cold run: {wall:.1f} s total; phases: " + ", ".join(
                f"{k} {v:.1f} s" for k, v in rep["phases_s"].items()) + f"; ccache {hits}")
    walls, phases = [], []
    for _ in range(a.runs):
        wall, rep = one_run(env)
        walls.append(wall)
        phases.append(rep)
    print(f"no-change run: median {statistics.median(walls):.1f} s total over {a.runs} runs "
          f"(min {min(walls):.1f}, max {max(walls):.1f})")
    for key in phases[0]["phases_s"]:
        vals = [p["phases_s"].get(key, 0.0) for p in phases]
        print(f"  {key:<11} median {statistics.median(vals):6.2f} s")
    n = sum(len(cp["checks"]) for m in phases[0]["modules"] for cp in m["checkpoints"])
    gdb = statistics.median(p["phases_s"].get("gdb checks", 0.0) for p in phases)
    print(f"PTE assertions per run: {n}; {1000 * gdb / max(n, 1):.1f} ms per assertion")
    t0 = time.monotonic()
    subprocess.run([PY, "-m", "pytest", "-q", "tests/unit"], cwd=REPO, capture_output=True)
    print(f"unit tests: {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
