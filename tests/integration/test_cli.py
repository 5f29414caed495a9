"""The `highmem` subcommands for real: ssh into the guest, bad input, help."""

import subprocess
import sys

import pytest

from .conftest import HIGHMEM, REPO

pytestmark = pytest.mark.integration


def highmem(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIGHMEM, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_ssh_prints_guest_meminfo_and_passes_exit_codes():
    p = highmem("ssh", "--", "cat", "/proc/meminfo")
    assert p.returncode == 0, p.stderr
    high = next(line for line in p.stdout.splitlines() if line.startswith("HighTotal:"))
    assert int(high.split()[1]) > 7 * 1024 * 1024
    p = highmem("ssh", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr.strip().splitlines()[-1]) == (3, "out\n", "err")


def test_bad_yaml_is_one_line_with_its_line_number(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modules:\n  - name: kmap_local_basic\n    timeout: soon\n")
    p = highmem("run", str(bad))
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert err[-2].startswith(f"error: {bad}:3: 'timeout' must be a number")
    assert err[-1].startswith("fix: ") and "Traceback" not in p.stderr


@pytest.mark.parametrize("cmd", ["run", "build", "boot", "ssh", "clean"])
def test_every_subcommand_has_help(cmd):
    p = subprocess.run([sys.executable, "-m", "harness.cli", cmd, "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "usage: highmem" in p.stdout


def test_boot_console_and_ssh_to_it():
    """`highmem boot` on a real terminal; `highmem ssh` reaches that guest; Ctrl-] stops it."""
    import pexpect
    c = pexpect.spawn(HIGHMEM[0], [*HIGHMEM[1:], "boot"], cwd=str(REPO), encoding="utf-8",
                      timeout=600)
    try:
        c.expect("guest up: gdbstub (/tmp/hm-[^/]+)/gdb.sock")
        sockdir = c.match.group(1)
        p = highmem("ssh", "--", "uname", "-r", timeout=60)
        assert p.returncode == 0 and "booting one" not in p.stderr
        assert p.stdout.startswith("6.")
        c.sendline("echo hello-$((6*7))")
        c.expect("hello-42")
        c.sendcontrol("]")
        c.expect(pexpect.EOF, timeout=60)
    finally:
        c.close(force=True)
    assert c.exitstatus == 0
    left = subprocess.run(["pgrep", "-f", sockdir], capture_output=True, text=True).stdout
    assert not left.strip(), "QEMU outlived `highmem boot`"
