#!/usr/bin/env python3
"""`make bench [BENCH_ARGS='--runs 3 --json FILE']`: the harness's speed against the floor
measured in the same run (QEMU alone booting the same vmlinux and initramfs with the same
machine flags to the ready marker). Prints a table (each figure and its ratio to the
floor) and writes JSON. Every figure is measured here, none estimated; `restore_s` is null
from the restores of the suite runs (a clean kernel per module, each restored from the
snapshot); `boot_to_ready_s` from runs with --no-snapshot (a cold boot to ready).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.core.options import RunOptions  # noqa: E402
from harness.operations import stage_lab  # noqa: E402
from harness.stages.qemu import READY, QemuConfig, free_port, qemu_argv  # noqa: E402
from harness.stages.sockdir import make_sockdir  # noqa: E402

PY = sys.executable
RANGE_SUITE = REPO / "scripts" / "bench-range.yaml"


def highmem_run(env: dict[str, str], *args: str) -> tuple[float, dict, int]:
    """`highmem run ARGS` in its own artifacts dir: (wall s, report.json, peak QEMU RSS MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(env, HIGHMEM_ARTIFACTS=tmp)
        peak = [0]
        t0 = time.monotonic()
        p = subprocess.Popen([PY, "-m", "harness.cli", "run", *args], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watcher = threading.Thread(target=_watch_rss, args=(p, peak), daemon=True)
        watcher.start()
        out, err = p.communicate()
        wall = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(f"run failed ({p.returncode}):\n{out[-2000:]}\n{err[-1000:]}")
        rep = json.loads(next(Path(tmp).glob("run-*/report.json")).read_text())
    return wall, rep, peak[0]


def _watch_rss(proc: subprocess.Popen, peak: list[int]) -> None:
    """Peak resident memory (VmRSS, shared RAM pages included) of the run's QEMU."""
    while proc.poll() is None:
        for pid in _children(proc.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                if "qemu-system" not in Path(f"/proc/{pid}/cmdline").read_text():
                    continue
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) // 1024)
        time.sleep(0.3)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(x) for x in out.split()]
    return kids + [g for k in kids for g in _children(k)]


def floor_boot(runs: int) -> list[float]:
    """QEMU alone, the harness's own argv for the built kernel and image, to the marker."""
    with tempfile.TemporaryDirectory() as tmp:
        lab = stage_lab(RunOptions(accel="tcg"), Path(tmp))
        lab.prepare()
        assert lab.built is not None and lab.initrd is not None
        cfg = QemuConfig(kernel=lab.built.kernel.vmlinux, initrd=lab.initrd, accel="tcg")
        times = []
        for _ in range(runs):
            sock = make_sockdir()
            ram = make_sockdir(Path("/dev/shm"))
            argv = qemu_argv(cfg, "tcg", sock, ssh_port=free_port(), ram_file=ram / "ram")
            t0 = time.monotonic()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
            assert p.stdout is not None
            for line in p.stdout:
                if READY in line or time.monotonic() - t0 > 120:
                    break
            times.append(time.monotonic() - t0)
            p.kill()
            p.wait()
            subprocess.run(["rm", "-rf", str(sock), str(ram)])
    return times


def stop_figures(rep: dict) -> tuple[float, float, int, int]:
    """(median ms, p95 ms, PTE assertions, checkpoints) over every stop of a run."""
    stops = [cp for m in rep["modules"] for cp in m["checkpoints"] if cp.get("seconds")]
    ms = sorted(cp["seconds"] * 1000 for cp in stops)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else 0.0
    ptes = sum(len(cp["checks"]) for m in rep["modules"] for cp in m["checkpoints"])
    return (statistics.median(ms) if ms else 0.0), p95, ptes, len(stops)


def range_rate(env: dict[str, str]) -> float:
    """PTE assertions per second of stopped time on one 20,000-entry range checkpoint."""
    _, rep, _ = highmem_run(env, str(RANGE_SUITE), "--accel", "tcg")
    cp = max((cp for m in rep["modules"] for cp in m["checkpoints"]),
             key=lambda c: len(c["checks"]))
    assert len(cp["checks"]) >= 10_000 and all(c["passed"] for c in cp["checks"])
    return len(cp["checks"]) / cp["seconds"]


def edit_to_verdict(env: dict[str, str], runs: int) -> float:
    """With a warm guest up (`highmem up`) and `highmem watch` on a copy of a user module:
    from writing a real change to its .c (a new constant: the compiler runs, ccache
    misses) to its verdict line printed; median of `runs` edits, each saved as soon as the
    previous verdict is printed."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(env, HIGHMEM_ARTIFACTS=str(Path(tmp) / "artifacts"))
        mod = Path(tmp) / "mod"
        shutil.copytree(REPO / "tests" / "integration" / "usermod", mod)
        src = mod / "my_kmap_test.c"
        text = src.read_text()
        cli = [PY, "-m", "harness.cli"]
        subprocess.run([*cli, "up", "--accel", "tcg"], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=1800)
        watch = subprocess.Popen([*cli, "watch", str(mod), "--accel", "tcg"], cwd=REPO,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True)
        times = []
        try:
            _verdict_line(watch)  # the first run, before any edit
            for n in range(runs):
                t0 = time.monotonic()
                src.write_text(text + f"static int hm_bench_edit __used = {n + time.time_ns()};\n")
                line = _verdict_line(watch)
                times.append(time.monotonic() - t0)
                if ": PASS" not in line:
                    sys.exit(f"edit_to_verdict: the edited module did not pass: {line}")
        finally:
            watch.terminate()
            watch.wait(timeout=60)
            subprocess.run([*cli, "down"], cwd=REPO, env=env, capture_output=True, timeout=120)
    return statistics.median(times)


def _verdict_line(watch: "subprocess.Popen[str]", timeout: float = 120.0) -> str:
    """The next verdict line `highmem watch` prints (SystemExit after `timeout` s)."""
    assert watch.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = watch.stdout.readline()
        if re.search(r": (PASS|FAIL|NO BUILD)", line):
            return line
        if not line and watch.poll() is not None:
            break
    sys.exit(f"edit_to_verdict: no verdict from highmem watch within {timeout:.0f} s")


def snapshot_figures() -> dict[str, float]:
    """The most recent snapshot's save time and disk use (stages/snapshot.py)."""
    from harness.stages.snapshot import store_dir
    metas = sorted(store_dir().glob("*/meta.json"), key=lambda p: p.stat().st_mtime)
    if not metas:
        return {}
    d = metas[-1].parent
    disk = sum(f.stat().st_blocks * 512 for f in d.iterdir())
    return {"snapshot_save_s": json.loads(metas[-1].read_text()).get("save_seconds"),
            "snapshot_disk_mib": round(disk / 2**20, 1)}


def host() -> dict[str, str | int]:
    qemu = subprocess.run(["qemu-system-i386", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    return {"cores": os.cpu_count() or 0, "qemu": qemu, "kernel": platform.release(),
            "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args()
    env = dict(os.environ)
    highmem_run(env, "--accel", "tcg")  # warm: build, image, caches, the snapshot
    floors = floor_boot(a.runs)
    colds = [highmem_run(env, "--accel", "tcg", "--no-snapshot", "--module",
                         "kmap_local_basic") for _ in range(a.runs)]
    suites = [highmem_run(env, "--accel", "tcg") for _ in range(a.runs)]
    wall, rep, rss = sorted(suites, key=lambda r: r[0])[len(suites) // 2]
    med, p95, ptes, stops = stop_figures(rep)
    restores = [b["seconds"] for r in suites for b in r[1]["boots"] if b.get("restored")]
    fig = {
        "floor_boot_s": round(statistics.median(floors), 2),
        "boot_to_ready_s": round(statistics.median(r[1]["phases_s"]["boot"] for r in colds), 2),
        "restore_s": round(statistics.median(restores), 3) if restores else None,
        "restores": len(restores),
        **snapshot_figures(),
        "stop_overhead_ms_median": round(med, 2),
        "stop_overhead_ms_p95": round(p95, 2),
        "pte_assertions_per_s": round(range_rate(env)),
        "suite_s": round(wall, 2),
        "gdb_checks_s": round(rep["phases_s"].get("gdb checks", 0.0), 2),
        "edit_to_verdict_s": round(edit_to_verdict(env, a.runs), 2),
        "qemu_rss_mib": max(r[2] for r in suites),
        "pte_assertions": ptes,
        "checkpoints": stops,
        "host": host(),
        "runs": a.runs,
    }
    floor = fig["floor_boot_s"] or 1.0
    print(f"{'figure':<26} {'value':>12} {'x floor':>8}")
    for k, v in fig.items():
        if k in ("host", "runs", "restores"):
            continue
        seconds = k.endswith("_s") and not k.endswith("per_s")
        ratio = f"{v / floor:.2f}" if seconds and isinstance(v, (int, float)) else ""
        print(f"{k:<26} {'-' if v is None else v:>12} {ratio:>8}")
    print(f"host: {fig['host']}")
    if a.json:
        a.json.write_text(json.dumps(fig, indent=2) + "\n")
        print(f"written: {a.json}")


if __name__ == "__main__":
    main()
