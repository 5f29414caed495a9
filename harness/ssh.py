"""Guest channel over SSH: dropbear (Debian's dropbear-bin:i386) in the guest, paramiko here.

QEMU user networking forwards 127.0.0.1:<free port> to the guest's port 22 (never 0.0.0.0).
Keys are made per run and never written to the repository: the client key here with
paramiko, the host key in the guest with dropbearkey; the host key is read over the serial
console and pinned, so paramiko talks to this guest and no other.
"""

import base64
import io
import json
import socket
import time
from pathlib import Path

import paramiko

from .console import SerialShell
from .errors import GuestError

GUEST_IP = "10.0.2.15"
GATEWAY = "10.0.2.2"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (QEMU binds it right after; the race is accepted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GuestSSH:
    """Commands in the guest over SSH; exit codes and stderr come back exactly."""

    def __init__(self, port: int, host_key: paramiko.PKey, client_key: paramiko.PKey,
                 timeout: float = 30.0) -> None:
        self.port, self.host_key, self.client_key = port, host_key, client_key
        self.client = paramiko.SSHClient()
        self.client.get_host_keys().add(f"[127.0.0.1]:{port}", host_key.get_name(), host_key)
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.connect("127.0.0.1", port=port, username="root", pkey=client_key,
                                    look_for_keys=False, allow_agent=False, timeout=5,
                                    banner_timeout=10, auth_timeout=10)
                return
            except (OSError, paramiko.SSHException) as e:
                if time.monotonic() > deadline:
                    raise GuestError(f"cannot SSH into the guest on 127.0.0.1:{port}: {e}",
                                     "read console.log in the run directory (dropbear's "
                                     "start) and check that the kernel has CONFIG_E1000") from e
                time.sleep(0.3)

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of a command in the guest."""
        try:
            _, out, err = self.client.exec_command(cmd, timeout=timeout)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
            return out.channel.recv_exit_status(), stdout, stderr
        except (OSError, paramiko.SSHException) as e:
            raise GuestError(f"guest command over SSH failed: {cmd}: {e}",
                             "read console.log in the run directory") from e

    def close(self) -> None:
        self.client.close()


def start_sshd(shell: SerialShell, port: int) -> GuestSSH:
    """Configure the guest's network, install a fresh client key, start dropbear."""
    client_key = paramiko.ECDSAKey.generate(bits=256)
    pub = f"{client_key.get_name()} {client_key.get_base64()} highmem-harness"
    shell.check(f"ifconfig eth0 {GUEST_IP} netmask 255.255.255.0 up && "
                f"route add default gw {GATEWAY}")
    shell.check(f"mkdir -p /root/.ssh && chmod 700 /root/.ssh && "
                f"echo '{pub}' > /root/.ssh/authorized_keys && "
                "chmod 600 /root/.ssh/authorized_keys")
    shell.check("/usr/bin/dropbearkey -t ed25519 -f /tmp/hostkey >/dev/null 2>&1", timeout=60)
    line = shell.check("/usr/bin/dropbearkey -y -f /tmp/hostkey | grep '^ssh-ed25519'")
    parts = line.split()
    if len(parts) < 2:
        raise GuestError(f"cannot read the guest's host key: {line!r}",
                         "read console.log in the run directory")
    host_key = paramiko.Ed25519Key(data=base64.b64decode(parts[1]))
    shell.check("/usr/sbin/dropbear -r /tmp/hostkey -p 22 -s")  # -s: keys only, no passwords
    return GuestSSH(port, host_key, client_key)


def save_access(ssh: GuestSSH, path: Path) -> None:
    """Write what `highmem ssh` needs to reach a running guest (mode 0600, per run)."""
    path.touch(mode=0o600)
    key = io.StringIO()
    ssh.client_key.write_private_key(key)
    path.write_text(json.dumps({"port": ssh.port, "host_key": ssh.host_key.get_base64(),
                                "client_key": key.getvalue()}))


def load_access(path: Path) -> GuestSSH:
    d = json.loads(path.read_text())
    host = paramiko.Ed25519Key(data=base64.b64decode(d["host_key"]))
    client = paramiko.ECDSAKey.from_private_key(io.StringIO(d["client_key"]))
    return GuestSSH(int(d["port"]), host, client, timeout=10)
