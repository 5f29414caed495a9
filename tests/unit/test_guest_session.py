"""The real GuestSession's states without a guest: made (nothing started by the
constructor), and asking a guest that is not attached for gdb is an error with its fix —
never a half guest. (This imports the I/O stages, but starts nothing.)"""

from pathlib import Path

import pytest

from harness.core.errors import GdbError
from harness.operations import GuestSession
from harness.stages.qemu import QemuConfig


def test_made_is_nothing_started_and_gdb_says_what_to_do(tmp_path):
    cfg = QemuConfig(kernel=Path("vmlinux"), initrd=Path("initrd"))
    s = GuestSession(cfg, kernel=None, run_dir=tmp_path)  # type: ignore[arg-type]
    assert not s.booted and not s.attached and not s.alive()
    assert list(tmp_path.iterdir()) == []  # no console.log, no sockets link
    with pytest.raises(GdbError) as e:
        s.gdb
    assert "without the harness's gdb attached" in e.value.what
    assert "Lab.boot(attach=True)" in e.value.fix
    with pytest.raises(GdbError):
        s.checker
    with pytest.raises(GdbError, match="not booted"):
        s.attach()
    s.close()
