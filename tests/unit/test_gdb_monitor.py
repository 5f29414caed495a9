"""gdb_commands.py loaded in a real gdb (no target): with $HIGHMEM_QMP set, gdb's own
`monitor` (and `mon`) is replaced by hm-qemu: `info tlb` is refused with what to use
instead and never sent, anything else is answered through QMP (a scripted peer here; the
real QEMU in tests/integration/test_qemu_monitor.py). Without $HIGHMEM_QMP, `monitor`
stays gdb's."""

import os
import shutil
import subprocess

import pytest

from harness.frontends.inspect_args import GDB_COMMANDS, TOOLS_ENV
from harness.core.repo import REPO
from tests.unit.test_qmp_line import peer

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")


def gdb(*commands: str, env: dict[str, str]) -> str:
    argv = ["gdb", "-q", "-batch", "-nx", "-x", str(GDB_COMMANDS)]
    for c in commands:
        argv += ["-ex", c]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                       env=dict(os.environ, HIGHMEM_REPO=str(REPO), **env))
    return p.stdout + p.stderr


def test_monitor_is_wrapped_refuses_info_tlb_and_answers_through_qmp(tmp_path):
    sock = tmp_path / "qmp-tools.sock"
    peer(sock, [{"return": {}}, {"return": "EAX=00000000 EBX=00000000\r\n"}])
    out = gdb("monitor info tlb", "mon i tlb", "monitor info registers",
              env={TOOLS_ENV: str(sock)})
    assert out.count("`info tlb` is refused here") == 2, out
    assert "hm-pte VA" in out
    assert "EAX=00000000 EBX=00000000" in out, out


def test_hm_qemu_without_a_socket_says_how_and_monitor_stays_gdbs():
    env = {k: "" for k in (TOOLS_ENV,)}
    out = gdb("hm-qemu info registers", "monitor info registers", env=env)
    assert "hm-qemu: no QMP socket known" in out, out
    assert '"monitor" command not supported by this target' in out, out   # gdb's own
    assert out.count("no QMP socket") == 1
