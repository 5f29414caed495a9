"""Boot stage: qemu-system-i386 with 8 GiB, serial console on stdio (driven by pexpect, its
pty's signal characters off: SERIAL),
gdbstub and QMP on unix sockets in a per-run directory, never TCP.

Three QMP sockets, each one client at a time (QEMU 7.2 serves one connection per monitor
and leaves a second one waiting): qmp.sock is the harness's long-lived Monitor (stages/
qmp.py), qmp-tools.sock the one-shot inspector commands' (`highmem qemu`, `hm-qemu`,
`highmem dump`: stages/qmp_line.py), qmp-user.sock the user's own QMP client's, which the
harness never connects to (docs/inspect.md).

`-cpu qemu32,+pse36,+nx`: QEMU 7.2's default qemu32 has 32 physical address bits (a PTE
above 4 GiB faults) and no NX (bit 63 never set); shared/highmem-facts.md section 0.
Acceleration "auto" uses KVM only if the kernel prints within a few seconds under it (i386
guests hang right after SeaBIOS under KVM on some hosts), else falls back to TCG.
"""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect

from ..core.errors import BootError
from ..core.failure import CRASH, last_line, panic_line
from ..core.monitor_commands import QMP_SOCKET, TOOLS_QMP_SOCKET, USER_QMP_SOCKET
from ..core.options import DEFAULTS, RunOptions
from ..core.profile import PAE64G
from .paths import cache_dir
from .procutil import die_with_parent, exit_text
from .progress import Ticker, say
from .sockdir import RAM_DIR_BASE, make_sockdir, sweep_stale

READY = "HIGHMEM-HARNESS-READY"
# rdrand: the guest's CRNG is ready at boot (dropbear's getrandom() would block ~2 s)
CPU = "qemu32,+pse36,+nx,+rdrand"
# autonegotiation off: the link is up when the guest brings eth0 up, not after QEMU's
# 500 ms autonegotiation timer and the e1000 driver's next 2 s watchdog (SYNs to sshd are
# lost until then, and TCP's retransmission backoff makes it 1-6 s)
NIC = "e1000,netdev=net0,autonegotiation=off"
KVM_LIVENESS_SECONDS = 6.0
RAM_BACKEND = "hm.ram"      # the memory-backend id (info mtree names the RAM by it)
BOOT_IDLE_S = 30.0          # a boot that prints nothing for this long has stopped
BOOT_CRASH_GRACE_S = 10.0   # an oops while booting: how long the ready marker may still come
HOSTFWD_CLASH = "Could not set up host forwarding rule"  # the SSH port was taken meanwhile
PORT_TRIES = 3
# The serial console on QEMU's stdio (the pexpect pty), with signal=off: QEMU then clears
# ISIG on its tty, so a ^C, ^Z or ^\ byte sent to the guest (a module parameter, a hostile
# string) is data for the guest's shell, never SIGINT/SIGTSTP/SIGQUIT to QEMU. With plain
# `-serial stdio` a 0x03 byte ended QEMU (measured with QEMU 7.2).
SERIAL = ("-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0")


@dataclass(frozen=True)
class QemuConfig:
    kernel: Path                # vmlinux (its PVH entry: no bzImage is built)
    initrd: Path
    memory: str = PAE64G.memory  # the 6.1-6.14 profile's 8G (resolved from "auto" by the Lab)
    smp: int = DEFAULTS.smp
    accel: str = DEFAULTS.accel   # auto | kvm | tcg
    append: str = ""            # extra kernel command line
    boot_timeout: float = 120.0
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    shared_ram: bool = True     # RAM in a shared tmpfs file the harness maps (fast reads)

    @classmethod
    def from_options(cls, kernel: Path, initrd: Path, opts: RunOptions,
                     **overrides: Any) -> "QemuConfig":
        """The one way RunOptions reach QEMU's command line (memory, CPUs, acceleration,
        the kernel command line); `overrides` for a caller's own (the boot probe's)."""
        return cls(kernel=kernel, initrd=initrd, **{
            "memory": opts.memory, "smp": opts.smp, "accel": opts.accel,
            "append": opts.append, **overrides})


def kernel_cmdline(extra: str = "") -> str:
    # panic=-1 + -no-reboot: a panic ends QEMU at once instead of hanging the run;
    # log_buf_len: a chatty module must not push its KTAP header out of dmesg
    base = "console=ttyS0 nokaslr panic=-1 log_buf_len=1M"
    return f"{base} {extra}".strip()


def qemu_argv(cfg: QemuConfig, accel: str, sockdir: Path, ssh_port: int | None = None,
              ram_file: Path | None = None, incoming: bool = False) -> list[str]:
    """The QEMU command line; pure, so tests and the reproducer line can show it.
    ssh_port: forward 127.0.0.1:ssh_port (loopback only) to the guest's port 22.
    ram_file: the guest's RAM as a shared file (on tmpfs) that the harness maps to read
    page tables without the monitor (see core/ram_layout.py).
    incoming: wait for a saved state over QMP instead of booting (stages/snapshot.py)."""
    net = (["-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", NIC]
           if ssh_port else ["-nic", "none"])
    machine = ["-machine", "pc"]
    if ram_file is not None:
        machine = ["-machine", f"pc,memory-backend={RAM_BACKEND}", "-object",
                   f"memory-backend-file,id={RAM_BACKEND},size={cfg.memory},"
                   f"mem-path={ram_file},share=on"]
    return [
        "qemu-system-i386", "-nodefaults", "-no-reboot", "-display", "none",
        *machine, "-accel", accel, "-cpu", CPU,
        "-m", cfg.memory, "-smp", str(cfg.smp),
        "-kernel", str(cfg.kernel), "-initrd", str(cfg.initrd),
        "-append", kernel_cmdline(cfg.append),
        *SERIAL, "-monitor", "none",
        "-chardev", f"socket,id=gdb0,path={sockdir}/gdb.sock,server=on,wait=off",
        "-gdb", "chardev:gdb0",
        *(a for name in (QMP_SOCKET, TOOLS_QMP_SOCKET, USER_QMP_SOCKET)
          for a in ("-qmp", f"unix:{sockdir}/{name},server=on,wait=off")),
        *net, *cfg.extra_args, *(["-incoming", "defer"] if incoming else []),
    ]


def _reap(child: pexpect.spawn, timeout: float = 5.0) -> None:
    """Wait (a few ms) for a killed QEMU to be gone, so closing its pty finds it dead and
    sends no signals of its own; a process that outlives `timeout` is left to close()."""
    deadline = time.monotonic() + timeout
    while child.isalive() and time.monotonic() < deadline:
        time.sleep(0.002)


def _tmpfs(d: Path) -> bool:
    """`d` is a writable tmpfs (the RAM file must not go to a disk)."""
    try:
        with open("/proc/mounts") as f:
            mounted = any(line.split()[1] == str(d) and line.split()[2] == "tmpfs" for line in f)
    except OSError:
        return False
    return mounted and os.access(d, os.W_OK)


def ram_dir_usable() -> bool:
    """Whether guests get their RAM as a shared tmpfs file (fast reads, snapshots)."""
    return _tmpfs(RAM_DIR_BASE)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (QEMU binds it right after; the race is accepted)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def _kvm_verdict_file() -> Path:
    """Where a failed KVM liveness probe is remembered, per host kernel and QEMU."""
    qemu = shutil.which("qemu-system-i386") or ""
    key = f"{os.uname().release}|{qemu}|{os.stat(qemu).st_mtime if qemu else 0}"
    return cache_dir() / f"kvm-hangs-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class Qemu:
    """One running guest. Use as a context manager: QEMU is killed on any exit path."""

    def __init__(self, cfg: QemuConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        sweep_stale()
        self.sockdir = make_sockdir()
        self.ramdir: Path | None = None
        if cfg.shared_ram and _tmpfs(RAM_DIR_BASE):
            sweep_stale(RAM_DIR_BASE)
            self.ramdir = make_sockdir(RAM_DIR_BASE)
        link = run_dir / "sockets"  # the current guest's (a reboot replaces the link)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(self.sockdir)
        self.crash_line: str | None = None  # an oops/BUG seen while booting
        self.child: pexpect.spawn | None = None
        self.accel = ""
        self.argv: list[str] = []
        self.boot_seconds = 0.0
        self.started = 0.0          # time.monotonic() when QEMU was started
        self.tries = 0              # QEMU processes started (a port clash starts another)
        self.incoming = False
        self.ssh_port = free_port()
        self._log = (run_dir / "console.log").open("a", encoding="utf-8", errors="replace")

    @property
    def gdb_socket(self) -> Path:
        return self.sockdir / "gdb.sock"

    @property
    def ram_file(self) -> Path | None:
        """The guest's RAM (a shared file on tmpfs), or None without a shared backend."""
        return self.ramdir / "ram" if self.ramdir is not None else None

    @property
    def qmp_socket(self) -> Path:
        return self.sockdir / QMP_SOCKET

    @property
    def tools_qmp_socket(self) -> Path:
        """The one-shot inspector commands' QMP socket (stages/qmp_line.py)."""
        return self.sockdir / TOOLS_QMP_SOCKET

    @property
    def user_qmp_socket(self) -> Path:
        """The user's QMP socket (`highmem boot`, `highmem gdb`, `highmem status` show it)."""
        return self.sockdir / USER_QMP_SOCKET

    def __enter__(self) -> "Qemu":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def port_clash(self) -> bool:
        """QEMU exited because another process took the SSH port free_port() picked (two
        parallel runs, rarely): then a new port is picked and QEMU started again."""
        if self.alive() or self.tries >= PORT_TRIES or HOSTFWD_CLASH not in \
                self.console_text()[-4000:]:
            return False
        self.ssh_port = free_port()
        self.child = self._spawn(self.accel, self.incoming)
        return True

    def _spawn(self, accel: str, incoming: bool = False) -> pexpect.spawn:
        self.tries += 1
        self.accel, self.incoming = accel, incoming
        self.argv = qemu_argv(self.cfg, accel, self.sockdir, self.ssh_port, self.ram_file,
                              incoming)
        (self.run_dir / "qemu-cmdline.txt").write_text(
            " ".join(subprocess.list2cmdline([a]) for a in self.argv) + "\n")
        child = pexpect.spawn(self.argv[0], self.argv[1:], timeout=30, maxread=65536,
                              searchwindowsize=8192, preexec_fn=die_with_parent,
                              encoding="utf-8", codec_errors="replace",
                              dimensions=(50, 200))
        child.logfile_read = self._log
        # pexpect sleeps 50 ms before every send by default (for slow terminals): at ~5
        # serial commands a module that was a quarter of a suite's module time
        child.delaybeforesend = None
        # and 0.1 s after closing the pty "for the kernel to update the process status":
        # close() kills and reaps QEMU itself first, so there is nothing to wait for
        child.delayafterclose = child.ptyproc.delayafterclose = 0.0
        return child

    def boot(self) -> None:
        """Start QEMU and wait for the guest's ready marker and shell, with a deadline."""
        t0 = self.started = time.monotonic()
        accel = self.cfg.accel
        if accel == "auto":
            accel = self._probe_kvm() if _kvm_usable() else "tcg"
        if self.child is None:
            self.child = self._spawn(accel)
        self._wait_ready(t0)
        self.boot_seconds = time.monotonic() - t0

    def start_incoming(self, accel: str) -> None:
        """Start QEMU paused, waiting for a saved state (`migrate-incoming` over QMP); its
        RAM file must already hold the snapshot's RAM. No ready marker: the guest was
        ready when it was saved."""
        if self.ram_file is None:
            raise BootError("a snapshot needs the guest RAM in a shared tmpfs file",
                            f"make {RAM_DIR_BASE} a writable tmpfs")
        self.started = time.monotonic()
        self.child = self._spawn(accel, incoming=True)

    def _probe_kvm(self) -> str:
        """Start under KVM; keep it only if the kernel prints within a few seconds."""
        verdict = _kvm_verdict_file()
        if verdict.exists():
            say(f"  accel: tcg (KVM hung on this host before; rm {verdict} to probe again)")
            return "tcg"
        child = self._spawn("kvm")
        try:
            child.expect([r"Linux version", r"\[\s*\d+\.\d+\]"], timeout=KVM_LIVENESS_SECONDS)
            self.child = child
            say("  accel: kvm")
            return "kvm"
        except (pexpect.TIMEOUT, pexpect.EOF):
            child.close(force=True)
            verdict.parent.mkdir(parents=True, exist_ok=True)
            tmp = verdict.with_name(f".{verdict.name}.{os.getpid()}")
            tmp.write_text(f"KVM guest printed nothing in {KVM_LIVENESS_SECONDS} s\n")
            os.replace(tmp, verdict)  # parallel runs: one whole file
            say(f"  accel: KVM printed nothing in {KVM_LIVENESS_SECONDS:.0f} s; "
                "falling back to TCG (remembered for this host)")
            return "tcg"

    def kill(self) -> None:
        """SIGKILL now, without waiting (close() reaps it and removes its directories)."""
        if self.child is not None and self.child.isalive():
            self.child.kill(signal.SIGKILL)

    def alive(self) -> bool:
        return self.child is not None and self.child.isalive()

    def exit_text(self) -> str:
        """How QEMU ended ("killed by SIGKILL", "exit status 0"); "" while it runs."""
        if self.child is None or self.child.isalive():
            return ""
        if self.child.signalstatus is not None:
            return exit_text(-self.child.signalstatus)
        return exit_text(self.child.exitstatus or 0)

    def _wait_ready(self, t0: float) -> None:
        """Up to the ready marker. A panic or QEMU's exit ends the wait at once; an oops or
        BUG ends it BOOT_CRASH_GRACE_S later unless the marker comes (then the boot's own
        log reports it)."""
        assert self.child is not None
        ticker = Ticker("boot", every=1.0)
        deadline = t0 + self.cfg.boot_timeout
        last = "starting"
        quiet_since = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                if self.crash_line:
                    self._boot_failed(f"the kernel crashed while booting: {self.crash_line}")
                self._boot_failed(f"no ready marker within {self.cfg.boot_timeout:.0f} s "
                                  f"(last console line: {last!r})")
            try:
                # a pty turns the guest's "\r\n" into "\r\r\n": \r* before the \n
                i = self.child.expect([READY + r"[^\r\n]*", r"[^\r\n]*\r*\n"],
                                      timeout=min(left, 1.0))
            except pexpect.TIMEOUT:
                if time.monotonic() - quiet_since > BOOT_IDLE_S:
                    why = f"; the last crash: {self.crash_line}" if self.crash_line else ""
                    self._boot_failed(f"the boot stopped: nothing on the console for "
                                      f"{BOOT_IDLE_S:.0f} s (last console line: {last!r}){why}")
                ticker.update(last)
                continue
            except pexpect.EOF:
                if self.port_clash():
                    continue
                text = self.console_text()
                why = panic_line(text) or self.crash_line or ""
                self._boot_failed(f"the kernel panicked while booting: {why}" if why else
                                  f"QEMU exited during boot (last output: {last_line(text)!r})")
            quiet_since = time.monotonic()
            if i == 0:
                break
            line = str(self.child.after).strip()
            if line:
                last = line[:100]
            crash = CRASH.search(line)
            if crash and self.crash_line is None:
                self.crash_line = crash.group(0).strip()
                deadline = min(deadline, time.monotonic() + BOOT_CRASH_GRACE_S)
            if line.startswith("Kernel panic"):
                deadline = min(deadline, time.monotonic() + 2.0)  # QEMU exits now
            ticker.update(last)
        ticker.done()

    def console_text(self) -> str:
        self._log.flush()
        try:
            return (self.run_dir / "console.log").read_text(errors="replace")
        except OSError:
            return ""

    def _boot_failed(self, what: str) -> None:
        self.close()
        raise BootError(what, f"read {self.run_dir / 'console.log'} and "
                        f"{self.run_dir / 'qemu-cmdline.txt'}")

    def close(self) -> None:
        if self.child is not None:
            self.kill()  # nothing to save (pexpect's own ladder of signals sleeps 0.1 s a rung)
            _reap(self.child)
            self.child.close(force=True)
            self.child = None
        self._log.flush()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        if self.ramdir is not None:
            shutil.rmtree(self.ramdir, ignore_errors=True)
