"""The small I/O helpers of failure handling, on tmp files: socket directories swept only
when ours and orphaned, the console watched for crash lines, module build logs read."""

import os
import subprocess
import sys

from harness.stages.console_log import ConsoleLog
from harness.stages.modbuild import first_error, module_names
from harness.stages.sockdir import OWNER, make_sockdir, owner_alive, sweep_stale


def test_sockdir_is_private_and_owned(tmp_path):
    d = make_sockdir(tmp_path)
    assert d.name.startswith("hm-") and (d.stat().st_mode & 0o777) == 0o700
    assert (d / OWNER).read_text().split()[0] == str(os.getpid())
    assert owner_alive(d)
    assert sweep_stale(tmp_path) == [] and d.exists()


def test_sweep_removes_only_orphans_we_made(tmp_path):
    p = subprocess.run([sys.executable, "-c",
                        "from pathlib import Path; from harness.stages.sockdir import make_sockdir;"
                        f"print(make_sockdir(Path({str(tmp_path)!r})))"],
                       capture_output=True, text=True, check=True)
    orphan = tmp_path / p.stdout.strip().rsplit("/", 1)[-1]
    foreign = tmp_path / "hm-not-ours"
    foreign.mkdir()
    (foreign / "keep").write_text("x")
    mine = make_sockdir(tmp_path)
    assert sweep_stale(tmp_path) == [orphan]
    assert not orphan.exists() and foreign.exists() and mine.exists()


def test_console_log_reports_a_crash_line_once(tmp_path):
    f = tmp_path / "console.log"
    f.write_text("old oops: Oops: 0002 from an earlier boot\n")
    c = ConsoleLog(f)
    assert c.new_crash() is None
    with f.open("a") as w:
        w.write("insmod x\n[ 1.0] BUG: kernel NULL pointer dereference, addr")
    assert c.new_crash() is None  # the line is not complete yet
    with f.open("a") as w:
        w.write("ess: 00000000\n")
    assert c.new_crash() == "BUG: kernel NULL pointer dereference, address: 00000000"
    assert c.new_crash() is None
    assert c.text().startswith("insmod x\n")


def test_module_names_from_kbuild(tmp_path):
    (tmp_path / "Kbuild").write_text("obj-m += a.o\nobj-m += b.o c.o\n# obj-m += d.o\n")
    assert module_names(tmp_path) == ["a", "b", "c"]


def test_first_error_of_a_build_log():
    log = ("  CC [M]  /w/x.o\n/w/cat_no_compile.c:12:9: error: 'nope' undeclared (first use)\n"
           "make[2]: *** [x] Error 1\n")
    assert first_error(log) == "/w/cat_no_compile.c:12:9: error: 'nope' undeclared (first use)"
    assert first_error("ERROR: modpost: \"f\" [/w/m.ko] undefined!\n").startswith("ERROR: modpost")
    assert first_error("") == "(empty build log)"
