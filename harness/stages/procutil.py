"""Child processes that die with us: QEMU and gdb must never outlive the harness.

PR_SET_PDEATHSIG makes the kernel SIGKILL the child when the harness dies, even by SIGKILL
(where no `finally` runs); the context managers in qemu.py/gdbmi.py handle the normal paths.
"""

import ctypes
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """preexec_fn for children: SIGKILL (or `signum`) when the parent exits."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def pdeathsig_argv(argv: list[str]) -> list[str]:
    """Prefix for children we cannot give a preexec_fn (pygdbmi spawns gdb itself)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


def exit_text(returncode: int) -> str:
    """How a child ended, from its return code (Popen's: negative for a signal):
    `killed by SIGKILL`, `exit status 1`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def stop(proc: "subprocess.Popen[bytes] | subprocess.Popen[str]", timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
