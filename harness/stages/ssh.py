"""Guest channel stage, over SSH: dropbear (Debian's dropbear-bin:i386) in the guest, paramiko here.

QEMU user networking forwards 127.0.0.1:<free port> to the guest's port 22 (never 0.0.0.0).
Keys are made here per guest and never written to the repository: an ECDSA client key and
an Ed25519 host key (dropbearkey in the guest would take 1.1 s under TCG); the host key
reaches the guest over the serial console and is pinned, so paramiko talks to this guest
and no other.
`highmem boot` keeps the access file (client key included) in the guest's 0700 socket
directory under /tmp, which goes with the guest. Every wait here has a deadline.
"""

import base64
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..core.errors import GuestError
from .console import SerialShell

GUEST_IP = "10.0.2.15"
GATEWAY = "10.0.2.2"
# paramiko logs a failed handshake (a crashed guest resets the connection) with a traceback
# through logging's last-resort handler on stderr; the failure reaches us as an exception
logging.getLogger("paramiko").addHandler(logging.NullHandler())
POLL_SECONDS = 0.01  # how often GuestSSH.run looks for output when none arrived


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
                # a short connect timeout: a SYN lost while the guest's link came up
                # is sent again at the next try, not after the kernel's own backoff
                self.client.connect("127.0.0.1", port=port, username="root", pkey=client_key,
                                    look_for_keys=False, allow_agent=False, timeout=1,
                                    banner_timeout=10, auth_timeout=10)
                return
            except (OSError, paramiko.SSHException) as e:
                if time.monotonic() > deadline:
                    raise GuestError(f"cannot SSH into the guest on 127.0.0.1:{port}: {e}",
                                     "read console.log in the run directory (dropbear's "
                                     "start) and check that the kernel has CONFIG_E1000") from e
                time.sleep(0.1)

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of a command in the guest; exit code -1 when the
        command ended without one (killed by a signal).

        Every wait ends within `timeout` seconds: a watchdog closes the channel then, which
        wakes paramiko's own unbounded waits (its exec request waits for the server's reply
        without a deadline), so a guest that stops answering ends in GuestError."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise GuestError(f"the SSH connection to the guest is closed (running {cmd})",
                             "read console.log in the run directory: did the guest crash?")
        deadline = time.monotonic() + timeout
        expired = threading.Event()
        chan: paramiko.Channel | None = None
        watchdog: threading.Timer | None = None
        try:
            chan = transport.open_session(timeout=timeout)
            left = max(0.0, deadline - time.monotonic())
            watchdog = threading.Timer(left, _expire, (chan, expired))
            watchdog.daemon = True
            watchdog.start()
            chan.settimeout(left)
            chan.exec_command(cmd)
            rc, out, err = _collect(chan, deadline)
            if expired.is_set():
                raise TimeoutError("the watchdog closed the channel")
            return rc, out.decode(errors="replace"), err.decode(errors="replace")
        except (OSError, EOFError, paramiko.SSHException) as e:
            if expired.is_set() or isinstance(e, TimeoutError):
                raise GuestError(f"guest command over SSH did not finish within "
                                 f"{timeout:g} s: {cmd}",
                                 "read console.log in the run directory (a hung or crashed "
                                 "guest?), or pass a longer timeout") from e
            raise GuestError(f"guest command over SSH failed: {cmd}: {e}",
                             "read console.log in the run directory") from e
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if chan is not None:
                chan.close()

    def close(self) -> None:
        self.client.close()


def _expire(chan: paramiko.Channel, expired: threading.Event) -> None:
    """The watchdog's action: mark the command as timed out and close its channel (which
    wakes the waiting thread before the close message is sent; that send may then fail on a
    connection the caller has closed meanwhile, and that is fine)."""
    expired.set()
    try:
        chan.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def _collect(chan: paramiko.Channel, deadline: float) -> tuple[int, bytes, bytes]:
    """Read stdout and stderr side by side (a full stderr cannot stall stdout) until the
    exit status and end of output arrived; TimeoutError at `deadline`."""
    out, err = bytearray(), bytearray()
    while True:
        got = False
        while chan.recv_ready():
            out += chan.recv(65536)
            got = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            got = True
        if (chan.exit_status_ready() and (chan.eof_received or chan.closed)
                and not chan.recv_ready() and not chan.recv_stderr_ready()):
            return chan.recv_exit_status(), bytes(out), bytes(err)
        if time.monotonic() >= deadline:
            raise TimeoutError("no exit status before the deadline")
        if not got:
            time.sleep(POLL_SECONDS)


@dataclass
class SshAccess:
    """What reaches one guest's sshd: QEMU's forwarded port and the two keys. Connecting
    is left to the first command (like a restored guest's): right after eth0 comes up,
    QEMU's e1000 holds received frames for 1 s after each write of the receive control
    register, so a handshake at boot would wait for that; later it takes ~0.2 s."""

    port: int
    host_key: paramiko.PKey
    client_key: paramiko.PKey

    def connect(self, timeout: float = 30.0) -> "GuestSSH":
        return GuestSSH(self.port, self.host_key, self.client_key, timeout=timeout)

    @classmethod
    def from_texts(cls, port: int, host_type: str, host: str, client: str) -> "SshAccess":
        """From `access_keys`' text form (kept in a snapshot's meta)."""
        host_key, client_key = keys_from_text(host_type, host, client)
        return cls(port, host_key, client_key)


def start_sshd(shell: SerialShell, port: int) -> SshAccess:
    """Configure the guest's network, install the client key and a host key made here,
    start dropbear and wait until it listens; returns the access (not connected)."""
    host_key, client_key = new_keys()
    pub = f"{client_key.get_name()} {client_key.get_base64()} highmem-harness"
    # one serial round trip (each costs ~0.1 s under TCG): network, client key, host key,
    # dropbear started (-s: keys only, no passwords). The host key is made here, not with
    # dropbearkey in the guest (1.1 s under TCG). dropbear forks to the background before
    # it listens: the loop waits (up to 3 s) for its socket in /proc/net/tcp (port 22 =
    # 0016, state 0A = LISTEN), else the first SYN is refused and the connect waits ~1 s.
    shell.check(
        f"ifconfig eth0 {GUEST_IP} netmask 255.255.255.0 up && "
        f"route add default gw {GATEWAY} && "
        "mkdir -p /root/.ssh && chmod 700 /root/.ssh && "
        f"echo '{pub}' > /root/.ssh/authorized_keys && "
        "chmod 600 /root/.ssh/authorized_keys && "
        f"echo {dropbear_key_b64(host_key)} | base64 -d > /tmp/hostkey && "
        "chmod 600 /tmp/hostkey && "
        "/usr/sbin/dropbear -r /tmp/hostkey -p 22 -s && "
        "for i in $(seq 300); do grep -q ':0016 00000000:0000 0A' /proc/net/tcp && break; "
        "usleep 10000; done", timeout=60)
    return SshAccess(port, host_key.public(), client_key)


class HostKey:
    """An Ed25519 key made here for the guest's dropbear: its private half in dropbear's
    own file format, its public half as the paramiko key the client pins."""

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()

    def public(self) -> paramiko.PKey:
        pub = self.key.public_key().public_bytes_raw()
        return paramiko.Ed25519Key(data=_ssh_string(b"ssh-ed25519") + _ssh_string(pub))


def new_keys() -> tuple[HostKey, paramiko.PKey]:
    """(the guest's host key, the harness's client key), made per guest. The client key
    is ECDSA P-256 (paramiko writes it to the access file; an Ed25519 one it cannot, and
    the handshake measured the same)."""
    return HostKey(), paramiko.ECDSAKey.generate(bits=256)


def dropbear_key_b64(host: HostKey) -> str:
    """The host key as dropbear reads it (`-r FILE`), base64: the SSH wire strings
    "ssh-ed25519" and the 32-byte seed followed by the 32-byte public key."""
    seed = host.key.private_bytes_raw()
    pub = host.key.public_key().public_bytes_raw()
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(seed + pub)
    return base64.b64encode(blob).decode()


def _ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def access_keys(ssh: "GuestSSH | SshAccess") -> tuple[str, str, str]:
    """(host key type, host key base64, client private key PEM): what reaches this guest,
    or a restored copy of it (kept in its snapshot's 0600 meta file)."""
    key = io.StringIO()
    ssh.client_key.write_private_key(key)
    return ssh.host_key.get_name(), ssh.host_key.get_base64(), key.getvalue()


def keys_from_text(host_type: str, host: str, client: str) -> tuple[paramiko.PKey,
                                                                    paramiko.PKey]:
    """The (host key, client key) of `access_keys`' text."""
    return (paramiko.PKey.from_type_string(host_type, base64.b64decode(host)),
            paramiko.ECDSAKey.from_private_key(io.StringIO(client)))


def save_access(ssh: GuestSSH, path: Path) -> None:
    """Write what `highmem ssh` needs to reach a running guest, private key included.

    The file is created by this call (O_EXCL: an existing file or symlink is an error) with
    mode 0600 from the first byte, so it is never readable by anyone else, not briefly
    either. Keep it in a 0700 directory that goes with the guest (Qemu.sockdir)."""
    host_type, host, client = access_keys(ssh)
    data = json.dumps({"port": ssh.port, "host_key_type": host_type,
                       "host_key": host, "client_key": client})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)


def load_access(path: Path, timeout: float = 10.0) -> GuestSSH:
    """Connect to the guest a `save_access` file describes; GuestError when the file is
    gone or unreadable, or the guest does not answer within `timeout` seconds."""
    try:
        d = json.loads(path.read_text())
        access = SshAccess.from_texts(int(d["port"]), d.get("host_key_type", "ssh-ed25519"),
                                      d["host_key"], d["client_key"])
    except (OSError, ValueError, KeyError, TypeError, paramiko.SSHException) as e:
        raise GuestError(f"cannot read the guest's SSH access file {path}: {e}",
                         "start the guest again with `highmem boot`") from e
    return access.connect(timeout)
