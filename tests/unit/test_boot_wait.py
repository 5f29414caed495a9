"""The boot wait (stages/qemu.py Qemu._wait_ready) on a fake console: a pty's "\\r\\r\\n"
line ends, an oops that ends the wait early, silence, and the ready marker."""

import time

import pexpect
import pytest

from harness.core.errors import BootError
from harness.stages import qemu
from harness.stages.qemu import Qemu, QemuConfig


def _qemu(tmp_path, text: str, monkeypatch) -> Qemu:
    monkeypatch.setattr(qemu, "make_sockdir", lambda base=None: tmp_path / "sock")
    monkeypatch.setattr(qemu, "sweep_stale", lambda base=None: [])
    (tmp_path / "sock").mkdir(exist_ok=True)
    cfg = QemuConfig(kernel=tmp_path / "vmlinux", initrd=tmp_path / "initrd", shared_ram=False)
    q = Qemu(cfg, tmp_path)
    q.child = pexpect.spawn("/bin/sh", ["-c", f"printf '{text}'; sleep 60"],
                            encoding="utf-8", codec_errors="replace")
    q.child.logfile_read = q._log
    return q


def test_ready_after_lines(tmp_path, monkeypatch):
    q = _qemu(tmp_path, "[ 0.1] Linux version 6.12\\r\\nHIGHMEM-HARNESS-READY 6.12\\r\\n",
              monkeypatch)
    q._wait_ready(time.monotonic())
    q.close()


def test_an_oops_ends_the_wait_after_the_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "BOOT_CRASH_GRACE_S", 0.5)
    q = _qemu(tmp_path, "[ 0.1] BUG: unable to handle page fault for address: fffbb000\\r\\n"
              "[ 0.2] Oops: 0000 [#1] PREEMPT SMP\\r\\n", monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(BootError, match="crashed while booting: BUG: unable to handle page"):
        q._wait_ready(t0)
    assert time.monotonic() - t0 < 5


def test_silence_ends_the_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "BOOT_IDLE_S", 1.0)
    q = _qemu(tmp_path, "[ 0.1] Run /init as init process\\r\\n", monkeypatch)
    with pytest.raises(BootError, match="nothing on the console for 1 s .*Run /init"):
        q._wait_ready(time.monotonic())
