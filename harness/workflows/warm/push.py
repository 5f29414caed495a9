"""A warm guest's modules: a fresh .ko copied into the running guest over SSH (`cat >` on
an exec channel: the guest's dropbear has no SFTP), so a module rebuilt with `make M=` runs
without a new initramfs or a reboot. Bounded: a guest that stops reading is an error
within the timeout.
"""

import shlex
import time
from pathlib import Path

import paramiko

from ...core.errors import GuestError
from ...stages.ssh import GuestSSH

PUSH_DIR_IN_GUEST = "/tmp/hm-warm"


def guest_path(name: str) -> str:
    """Where a pushed module lives in the guest."""
    return f"{PUSH_DIR_IN_GUEST}/{name}.ko"


def push_ko(ssh: GuestSSH, ko: Path, timeout: float = 20.0) -> str:
    """Copy `ko` into the guest (written whole, then renamed); returns its guest path."""
    dest = guest_path(ko.stem)
    data = ko.read_bytes()
    cmd = (f"mkdir -p {PUSH_DIR_IN_GUEST} && cat > {shlex.quote(dest)}.part && "
           f"mv {shlex.quote(dest)}.part {shlex.quote(dest)}")
    transport = ssh.client.get_transport()
    if transport is None or not transport.is_active():
        raise GuestError("the SSH connection to the guest is closed (pushing a module)",
                         "read console.log in the run directory: did the guest crash?")
    deadline = time.monotonic() + timeout
    chan = None
    try:
        chan = transport.open_session(timeout=timeout)
        chan.settimeout(timeout)
        chan.exec_command(cmd)
        chan.sendall(data)
        chan.shutdown_write()
        while not chan.exit_status_ready():
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.005)
        rc = chan.recv_exit_status()
        err = chan.recv_stderr(4096).decode(errors="replace") if chan.recv_stderr_ready() else ""
    except (OSError, EOFError, paramiko.SSHException) as e:
        raise GuestError(f"cannot copy {ko.name} into the guest within {timeout:g} s: {e}",
                         "read console.log in the run directory") from e
    finally:
        if chan is not None:
            chan.close()
    if rc != 0:
        raise GuestError(f"copying {ko.name} into the guest failed ({rc}): {err.strip()}",
                         "read console.log in the run directory")
    return dest
