"""stages/atomic_file.py: a writer SIGKILLed in the middle of writing a large report.json
leaves the old file or the new one, complete, never a partial one; the same kill of a
plain `write_text` is caught leaving a partial file (the checker can fail)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.stages.atomic_file import TMP_SUFFIX, write_atomic

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0

# The child: report.json of a run with one large range (about 20 MB), written over and
# over, old and new in turn, until it is killed.
CHILD = r"""
import sys
from pathlib import Path
from harness.core import report
from harness.core.checkpoint import Expect, PteCheck
from harness.core.phases import Phases
from harness.core.results import ModuleResult, RunResult, Stop
from harness.core.suite import ModuleSpec
from harness.stages.atomic_file import write_atomic

path, how = Path(sys.argv[1]), sys.argv[2]
ex = Expect("range", 1, 0xf8000000, 0x23f000, 100000, 100000, "big: range")
checks = [PteCheck("big: range", "range", 0xf8000000 + 4096 * i, 0x800000023f000163 + i,
                   0x800000023f000163 + i, "P RW A D NX", 0x23f000 + i)
          for i in range(100000)]
texts = []
for n in (1, 2):
    r = RunResult(Path("/run"), [ModuleResult(ModuleSpec("big", f"n={n}"),
                                              stops=[Stop(0, ex, checks)])], {}, Phases())
    texts.append(report.report_json(r))
print("ready", flush=True)
while True:
    for t in texts:
        if how == "atomic":
            write_atomic(path, t)
        else:
            path.write_text(t)
"""


def _kill_mid_write(tmp_path: Path, how: str) -> str:
    """Start the child writing `how` (atomic or plain), SIGKILL it while a write is under
    way (a temporary file exists, or the target is shorter than a whole report), and
    return the target's text."""
    target = tmp_path / "report.json"
    write_atomic(target, '{"old": true}\n')
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), how], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if how == "atomic":
                busy = any(n.endswith(TMP_SUFFIX) for n in os.listdir(tmp_path))
            else:
                size = target.stat().st_size
                busy = 1000 < size < 10_000_000
            if busy:
                child.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"never saw the {how} writer mid-write in {DEADLINE_S} s")
    finally:
        child.kill()
        child.wait(10)
    return target.read_text()


def _complete(text: str) -> bool:
    try:
        d = json.loads(text)
    except ValueError:
        return False
    return d == {"old": True} or len(d["modules"][0]["checkpoints"][0]["checks"]) == 100000


def test_a_killed_atomic_writer_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    for _ in range(3):
        assert _complete(_kill_mid_write(tmp_path, "atomic"))


def test_a_killed_plain_writer_leaves_a_partial_file(tmp_path: Path) -> None:
    assert not _complete(_kill_mid_write(tmp_path, "plain"))


def test_write_atomic_keeps_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    p = tmp_path / "report.txt"
    write_atomic(p, "one\n")
    assert p.stat().st_mode & 0o777 == 0o644
    p.chmod(0o600)
    write_atomic(p, b"two\n")
    assert p.read_text() == "two\n" and p.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["report.txt"]


def test_a_failed_write_removes_its_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "x.json", 42)  # type: ignore[arg-type]
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "d", "a directory is not replaced by a file")
    assert sorted(os.listdir(tmp_path)) == ["d"]


USER_FILES = ("report.json", "report.txt", "junit", "kcidb", "matrix.json", "matrix.txt",
              "mutate.json", "bisect.txt", "STATUS_FILE", "results.json", "tag}.")


def test_every_file_a_user_reads_is_written_atomically() -> None:
    """No plain write_text/open(w) of a report, JUnit, KCIDB, matrix or record file is left
    in the harness (they all go through write_atomic)."""
    plain = []
    for f in sorted((REPO / "harness").rglob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if ("write_text(" in line or "write_bytes(" in line) and \
                    any(u in line for u in USER_FILES):
                plain.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert not plain, plain
