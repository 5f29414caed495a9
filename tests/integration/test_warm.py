"""The warm guest, for real: `highmem up`, `status`, `run` on it, `watch` on an edited user
module (PASS -> FAIL naming the PTE field -> PASS -> NO BUILD with the compiler's error),
`down`; then a server killed with -9 is found stale and leaves nothing behind."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration
USERMOD = Path(__file__).parent / "usermod"
SAVE_TO_VERDICT = re.compile(r"\[(\d+\.\d) s from save to verdict\]")


def _highmem(env: dict[str, str], *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    p = subprocess.run([*HIGHMEM, *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=timeout)
    sys.stdout.write(f"$ highmem {' '.join(args)} -> {p.returncode}\n{p.stderr[-1500:]}"
                     f"{p.stdout[-2500:]}")
    return p


def _descendants(pid: int) -> dict[int, str]:
    """pid -> argv[0] of every process below `pid`."""
    kids: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            names[int(d.name)] = (d / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = {}, [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out[k] = names.get(k, "")
            todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def _wait_line(proc: subprocess.Popen, lines: list[str], pattern: str, timeout: float) -> str:
    """Read watch's stdout until a line matches `pattern`; the line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        sys.stdout.write("watch: " + line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s: {lines[-5:]}")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def warm_env(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path / "artifacts"))
    yield env, accel
    subprocess.run([*HIGHMEM, "down"], cwd=REPO, env=env, capture_output=True, timeout=120)


def test_warm_guest_edit_loop(warm_env, tmp_path):
    env, accel = warm_env
    up = _highmem(env, "up", "--accel", accel)
    assert up.returncode == 0 and "warm guest up" in up.stdout
    st = json.loads(_highmem(env, "status", "--json").stdout)
    assert len(st) == 1 and st[0]["alive"] and st[0]["state"] == "ready"
    server = st[0]["pid"]
    sockdir = Path(st[0]["socket"]).parent
    assert sockdir.is_dir() and (sockdir.stat().st_mode & 0o777) == 0o700
    kids = _descendants(server)
    assert any("qemu-system" in n for n in kids.values()), kids

    # highmem ssh finds it too (one lookup for `highmem boot`'s guest and the warm ones):
    # the exit code comes back, and no guest of its own is booted
    sh = _highmem(env, "ssh", "--", "sh", "-c", "cat /proc/meminfo; exit 3")
    assert sh.returncode == 3 and "HighTotal" in sh.stdout, sh.stderr[-2000:]
    assert "on the warm guest of" in sh.stderr and not list(
        (tmp_path / "artifacts").glob("ssh-*"))

    # highmem run goes to the warm guest: no image, no boot
    r = _highmem(env, "run", "--accel", accel, "--module", "kmap_local_basic")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"on the warm guest (pid {server})" in r.stderr
    run_dir = sorted((tmp_path / "artifacts").glob("run-*"))[-1]
    assert (run_dir / "warm-guest").resolve() == Path(st[0]["run_dir"]).resolve()
    rep = json.loads((run_dir / "report.json").read_text())
    assert [m["status"] for m in rep["modules"]] == ["PASS"]
    assert sum(len(cp["checks"]) for cp in rep["modules"][0]["checkpoints"]) == 4
    assert "image" not in rep["phases_s"] and "boot" not in rep["phases_s"]

    # the pytest plugin's module entries go there too (a user suite with a failing entry)
    mod = tmp_path / "mymod"
    shutil.copytree(USERMOD, mod)
    log = Path(st[0]["run_dir"]) / "warm.log"
    before = log.read_text().count("run: ")
    junit = tmp_path / "junit.xml"
    p = subprocess.run([sys.executable, "-m", "pytest", str(mod / "suite.yaml"),
                        f"--junitxml={junit}", f"--highmem-artifacts={tmp_path / 'artifacts'}",
                        f"--highmem-accel={accel}", "-p", "no:cacheprovider"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    sys.stdout.write(p.stdout[-2000:])
    assert p.returncode == 1 and "6 passed" in p.stdout and "2 failed" in p.stdout
    assert "PFN: expected" in junit.read_text()
    assert log.read_text().count("run: ") == before + 3  # all three entries ran there
    assert not list((tmp_path / "artifacts").glob("pytest-*"))  # no Lab, no boot of its own

    # the edit loop on a copy of a user module
    src = mod / "my_kmap_test.c"
    watch = subprocess.Popen([*HIGHMEM, "watch", str(mod), "--accel", accel], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    lines: list[str] = []
    times = []
    try:
        _wait_line(watch, lines, r"my_kmap_test: PASS \(1 cases, 2 PTEs\)", 300)
        time.sleep(0.5)
        _edit(src, "page_to_pfn(page),", "page_to_pfn(page) + 1,")  # a wrong expectation
        line = _wait_line(watch, lines, r"my_kmap_test: (PASS|FAIL|NO BUILD)", 120)
        assert re.search(r"FAIL: my_kmap_local: mapped: PFN: expected 0x[0-9a-f]+, got", line)
        times.append(float(SAVE_TO_VERDICT.search(line).group(1)))
        _edit(src, "page_to_pfn(page) + 1,", "page_to_pfn(page),")
        line = _wait_line(watch, lines, r"my_kmap_test: (PASS|FAIL|NO BUILD)", 120)
        assert "PASS" in line
        times.append(float(SAVE_TO_VERDICT.search(line).group(1)))
        _edit(src, "hm_case_end(&c);", "hm_case_end(&c) oops;")
        line = _wait_line(watch, lines, r"my_kmap_test: (PASS|FAIL|NO BUILD)", 120)
        assert re.search(r"NO BUILD: .*my_kmap_test\.c:\d+:\d+: error:", line)
    finally:
        watch.send_signal(signal.SIGINT)
        rest, _ = watch.communicate(timeout=60)
    assert watch.returncode == 0 and "the warm guest stays up" in rest
    print(f"edit_to_verdict_s: {times}")

    down = _highmem(env, "down")
    assert down.returncode == 0 and f"pid {server}" in down.stdout
    assert not _alive(server)
    assert not [p for p in kids if _alive(p)], "QEMU or gdb outlived the warm server"
    assert not sockdir.exists()
    assert not list(Path(st[0]["image"]).parent.glob(f".warm-keep-{server}-*"))
    assert "no warm guest is up" in _highmem(env, "status").stdout


def test_killed_server_is_stale(warm_env):
    """A warm server killed with -9: its QEMU and gdb die with it; its record is reported
    stale, removed with its socket directory, and never used."""
    env, accel = warm_env
    assert _highmem(env, "up", "--accel", accel).returncode == 0
    st = json.loads(_highmem(env, "status", "--json").stdout)[0]
    kids = _descendants(st["pid"])
    os.kill(st["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in [st["pid"], *kids]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in kids)
    out = _highmem(env, "status").stdout
    assert "stale" in out and "is gone" in out and "removed" in out
    assert not Path(st["socket"]).parent.exists()
    assert not Path(st["run_dir"], "warm.json").exists()
    assert not list(Path(st["image"]).parent.glob(f".warm-keep-{st['pid']}-*"))
    assert "no warm guest is up" in _highmem(env, "status").stdout
