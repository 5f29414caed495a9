"""Builds keyed by content, for real (issue 18, item 4): a user's module edited with an mtime
older than its .o (what a save during the previous make leaves) is rebuilt and gives the new
verdict; a header it includes, changed the same way, rebuilds it; nothing changed: nothing
is built. Then `highmem watch` with saves during a run: the run they overtake is superseded,
and the last verdict printed is the last save's."""

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
VERDICT = r"my_kmap_test: (PASS|FAIL|NO BUILD)"


def _user_module(tmp_path: Path) -> Path:
    """usermod with its expected PFN offset in a header of its own: my_offset.h."""
    mod = tmp_path / "mymod"
    shutil.copytree(USERMOD, mod)
    src = mod / "my_kmap_test.c"
    text = src.read_text().replace('#include "hm_ktap.h"\n',
                                   '#include "hm_ktap.h"\n#include "my_offset.h"\n')
    src.write_text(text.replace("page_to_pfn(page),", "page_to_pfn(page) + MY_OFFSET,"))
    (mod / "my_offset.h").write_text("#define MY_OFFSET 0\n")
    (mod / "suite.yaml").write_text("modules:\n  - name: my_kmap_test\n    dir: .\n")
    return mod


def _save_old(path: Path, old: str, new: str) -> None:
    """Edit `path` and give it an mtime an hour before the build's objects: make alone
    would keep the .o built from the old text."""
    st = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))


def _verdict(run) -> tuple[str, str]:
    [m] = run.report["modules"]
    return m["status"], run.out


def test_an_edit_with_an_old_mtime_is_built_and_judged(highmem_run, tmp_path):
    mod = _user_module(tmp_path)
    suite = str(mod / "suite.yaml")
    first = highmem_run(suite)
    assert first.rc == 0 and _verdict(first)[0] == "PASS", first.err[-2000:]

    # the header it includes, changed with an older mtime: the module is rebuilt
    _save_old(mod / "my_offset.h", "MY_OFFSET 0", "MY_OFFSET 1")
    second = highmem_run(suite)
    status, out = _verdict(second)
    assert second.rc == 1 and status == "FAIL", second.err[-2000:]
    assert re.search(r"my_kmap_local: mapped.*PFN: expected 0x[0-9a-f]+, got", out), out
    assert re.search(r"^\s*modules: my_kmap_test\.ko$", second.err, re.M), second.err[-2000:]

    # the source, changed back to a passing expectation with an older mtime
    _save_old(mod / "my_kmap_test.c", "+ MY_OFFSET,", "+ MY_OFFSET - 1,")
    third = highmem_run(suite)
    assert third.rc == 0 and _verdict(third)[0] == "PASS", third.err[-2000:]
    assert re.search(r"^\s*modules: my_kmap_test\.ko$", third.err, re.M), third.err[-2000:]

    # touched, not changed: the stamp (keyed by content) holds, nothing is built
    os.utime(mod / "my_kmap_test.c")
    fourth = highmem_run(suite)
    assert fourth.rc == 0 and _verdict(fourth)[0] == "PASS"
    assert re.search(r"modules up to date: my_kmap_test\.ko$", fourth.err, re.M), \
        fourth.err[-2000:]


@pytest.fixture
def watch_env(tmp_path, request):
    accel = request.config.getoption("--highmem-accel") or "auto"
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path / "artifacts"))
    yield env, accel
    subprocess.run([*HIGHMEM, "down"], cwd=REPO, env=env, capture_output=True, timeout=120)


def _wait_line(proc, lines: list[str], pattern: str, timeout: float) -> str:
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


def test_watch_shows_only_the_newest_saves_verdict(watch_env, tmp_path):
    env, accel = watch_env
    mod = _user_module(tmp_path)
    hdr = mod / "my_offset.h"
    watch = subprocess.Popen([*HIGHMEM, "watch", str(mod), "--accel", accel], cwd=REPO,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    lines: list[str] = []
    try:
        first = _wait_line(watch, lines, VERDICT, 900)
        assert re.search(r"save 1 \(\d\d:\d\d:\d\d, [0-9a-f]{8}\) my_kmap_test: PASS", first)
        time.sleep(0.5)
        # three saves 0.6 s apart: the make of the first takes longer than that
        hdr.write_text("#define MY_OFFSET 1\n")           # save 2: FAIL, if it were shown
        _wait_line(watch, lines, r"saved: my_offset\.h \(save 2\)", 30)
        time.sleep(0.6)
        hdr.write_text("#define MY_OFFSET 1 oops\n")      # save 3: NO BUILD (replaced)
        time.sleep(0.6)
        (mod / f".{hdr.name}.swp").write_text("vim")       # scratch: no save
        (mod / "4913").write_text("")
        (mod / "4913").unlink()
        hdr.write_text("#define MY_OFFSET (0)\n")           # save 4: PASS, new content
        _wait_line(watch, lines, r"saved: my_offset\.h \(save 4\)", 30)
        last = _wait_line(watch, lines, VERDICT, 300)
        assert re.search(r"save 4 \(\d\d:\d\d:\d\d, [0-9a-f]{8}\) my_kmap_test: PASS", last), last
        assert any(re.search(r"save 2 .*superseded by a newer save", x) for x in lines), lines
        assert not any(re.search(r"save [23] .*my_kmap_test:", x) for x in lines), lines
        assert not any("swp" in x or "4913" in x for x in lines), lines
    finally:
        watch.send_signal(signal.SIGINT)
        rest, _ = watch.communicate(timeout=60)
    assert watch.returncode == 0 and "the warm guest stays up" in rest
