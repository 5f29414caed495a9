"""The Lab's operations on the machine: configure, build, image and boot through the stages
(harness/stages/), and the booted guest they give (`GuestSession`). lab.py decides what to do
and when; this file only does it — as kunit_tool keeps LinuxSourceTreeOperations (make,
QEMU) apart from LinuxSourceTree (policy). The unit tests give the Lab a fake instead.
"""

import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from .core.errors import BootError, GdbError
from .core.host_errors import HostIOError
from .core.layout import Layout
from .core.meminfo import parse_meminfo
from .core.options import RunOptions
from .core.ram_layout import parse_mtree
from .core.phases import Phases
from .core.results import ModuleResult
from .core.repo import MODULES_DIR
from .core.suite import ModuleSpec, refuse_own_names
from .lab import Built, Lab
from .stages.boot_probe import safe_probe
from .stages.build import KernelBuild, build_kernel
from .stages.checker import Checker
from .stages.console import SerialShell
from .stages.console_log import ConsoleLog
from .stages.crash_decode import decode
from .stages.gdbmi import Gdb
from .stages.image import build_image
from .stages.kconfig import configure, resolve_fragments
from .stages.modbuild import build_modules, module_names, symvers
from .stages.module_run import Guest, load_core, run_module
from .stages.progress import say
from .stages.guest_ram import GuestRam
from .stages.kept_gdb import KeptGdb
from .stages.qemu import CPU, RAM_BACKEND, Qemu, QemuConfig, kernel_cmdline, ram_dir_usable
from .stages.qmp import Monitor
from .stages import snapshot
from .stages.source import resolve_source
from .stages.ssh import GuestSSH, SshAccess, access_keys, start_sshd
from .core.errors import HarnessError
from .core.snapshot_meta import SnapshotMeta, snapshot_key


def _not_attached() -> GdbError:
    return GdbError("this guest was booted without the harness's gdb attached",
                    "ask for an attached guest: Lab.boot(attach=True)")


class GuestSession:
    """One guest, in one of three states. *made*: nothing runs (the constructor does no
    I/O). *booted* (boot()): QEMU, a root shell on the serial console, SSH; QEMU's gdbstub
    is free for any debugger (`highmem gdb` hands it to an interactive gdb). *attached*
    (attach()): hm_checkpoint.ko loaded, the harness's MI gdb attached and its breakpoint
    armed, the guest running again: modules can run. close() ends any state; a failure in
    boot() or attach() closes the session before it raises.

    boot() restores the snapshot of this kernel and image when there is one (`restored`),
    and a cold-booted, attached guest can be saved as that snapshot (save_snapshot())."""

    def __init__(self, cfg: QemuConfig, kernel: KernelBuild, run_dir: Path,
                 kept: KeptGdb | None = None) -> None:
        self.cfg, self.kernel, self.run_dir = cfg, kernel, run_dir
        self.kept = kept or KeptGdb()
        self.stack = ExitStack()
        self.qemu: Qemu | None = None
        self.shell: SerialShell | None = None
        self.access: SshAccess | None = None   # sshd's port and keys (connected on use)
        self.ssh: GuestSSH | None = None
        self.meminfo: dict[str, int] = {}
        self.boot_dmesg = ""
        self.layout: Layout | None = None
        self.monitor: Monitor | None = None
        self.restored = False          # from a snapshot, not booted
        self.notes: list[str] = []     # what the report should say of this boot (a bad snapshot)
        self.snapshot: snapshot.Snapshot | None = None  # this guest's snapshot, if any
        self.core_addr: int | None = None
        self.count_addr = 0   # hm_checkpoint's call count (re-fired breakpoints told apart)
        self._gdb: Gdb | None = None
        self._checker: Checker | None = None

    @property
    def booted(self) -> bool:
        return self.qemu is not None

    @property
    def attached(self) -> bool:
        """Whether the harness's gdb is attached (and hm_checkpoint() armed)."""
        return self._gdb is not None

    @property
    def snapshot_ready(self) -> bool:
        """Whether a guest like this one can be restored (a snapshot exists)."""
        return self.snapshot is not None

    def snapshot_key(self) -> str:
        return snapshot_key(self.snapshot_parts())

    def snapshot_parts(self) -> dict[str, str]:
        """What the saved state depends on: the kernel, the image, QEMU and its flags."""
        def ident(p: Path) -> str:
            try:
                st = p.stat()
            except OSError as e:
                raise BootError(f"the guest's {p.name} is gone: {e.strerror}",
                                "another run may have removed it: run again") from None
            return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        qemu = shutil.which("qemu-system-i386") or "qemu-system-i386"
        return {"vmlinux": ident(self.cfg.kernel), "initrd": ident(self.cfg.initrd),
                "qemu": ident(Path(qemu)), "memory": self.cfg.memory, "smp": str(self.cfg.smp),
                "cpu": CPU, "cmdline": kernel_cmdline(self.cfg.append),
                "accel": self.cfg.accel, "extra": " ".join(self.cfg.extra_args)}

    def boot(self, restore: bool = False) -> None:
        """Start QEMU, wait for the shell, start sshd; read /proc/meminfo and the boot log.
        restore: from this kernel and image's snapshot if there is one (a snapshot that
        does not restore is discarded and the guest booted)."""
        if self.booted:
            return
        if restore and self.cfg.shared_ram and ram_dir_usable():
            snap = snapshot.find(self.snapshot_key())
            if snap is not None:
                try:
                    self._restore(snap)
                    return
                except snapshot.SnapshotBad as e:
                    note = (f"snapshot {snap.meta.key} was bad: {e.what}; it was removed, "
                            "and the guest booted (and saved again)")
                    say(f"  {note}")
                    self.notes.append(note)
                    snapshot.discard(snap)
                except HostIOError:
                    self.close()
                    raise  # the host refused (e.g. /dev/shm full): the snapshot is kept
                except HarnessError as e:
                    say(f"  the snapshot did not restore ({e.what}); booting instead")
                    snapshot.discard(snap)
        try:
            self.kept.prewarm(self.kernel.vmlinux, self.run_dir / "gdb-mi.log")
            qemu = self.stack.enter_context(Qemu(self.cfg, self.run_dir))
            qemu.boot()
            self.qemu = qemu
            self.shell = SerialShell(qemu.child)
            self.shell.sync()
            self.meminfo = parse_meminfo(self.shell.check("cat /proc/meminfo"))
            self.access = start_sshd(self.shell, qemu.ssh_port)
            self.boot_dmesg = self.shell.run("dmesg", timeout=30)[1]
        except BaseException:
            self.close()
            raise

    def _restore(self, snap: snapshot.Snapshot) -> None:
        """QEMU started paused on a copy of the snapshot's RAM, its state loaded, resumed;
        the shell answers. SSH connects on first use, with the keys saved with it."""
        try:
            qemu = self.stack.enter_context(Qemu(self.cfg, self.run_dir))
            if qemu.ram_file is None:
                raise BootError("no shared RAM file for the restored guest",
                                "make /dev/shm a writable tmpfs")
            snapshot.verify(snap)
            snapshot.copy_sparse(snap.ram, qemu.ram_file)
            qemu.start_incoming(snap.meta.accel)
            self.qemu = qemu
            while True:
                try:
                    self.monitor = Monitor(qemu.qmp_socket, wait_s=10.0)
                    break
                except BootError:
                    if not qemu.port_clash():
                        raise
            self.stack.callback(self._close_monitor)
            snapshot.migrate_in(self.monitor, snap)
            console = ConsoleLog(self.run_dir / "console.log")
            self.monitor.qmp("cont")
            self.shell = SerialShell(qemu.child)
            if snapshot.has_spoken(snap):  # these files passed first_words() before
                self.shell.run("true", timeout=10)
            else:
                snapshot.first_words(self.shell, console)
                snapshot.mark_spoken(snap)
            qemu.boot_seconds = time.monotonic() - qemu.started
            m = snap.meta
            self.meminfo, self.boot_dmesg, self.core_addr = m.meminfo, m.boot_dmesg, m.core_addr
            self.count_addr = m.count_addr
            self.access = SshAccess.from_texts(qemu.ssh_port, m.host_key_type, m.host_key,
                                               m.client_key)
            self.restored, self.snapshot = True, snap
        except BaseException:
            self.close()
            raise

    def save_snapshot(self) -> None:
        """Save this cold-booted guest, hm_checkpoint loaded and gdb not yet attached, as
        the snapshot of its kernel and image (it pauses for the save, ~0.2 s)."""
        if self.restored or self.snapshot is not None:
            return
        if self.qemu is None or self.qemu.ram_file is None or self.monitor is None \
                or self.access is None or self.core_addr is None or self.attached:
            raise HarnessError("this guest cannot be saved (no shared RAM file, or gdb is "
                               "attached)", "make /dev/shm a writable tmpfs")
        host_type, host, client = access_keys(self.access)
        self._close_ssh()  # no TCP connection in the saved guest; run() connects again
        parts = self.snapshot_parts()
        meta = SnapshotMeta(key=snapshot_key(parts), parts=parts,
                            accel=self.qemu.accel, core_addr=self.core_addr,
                            count_addr=self.count_addr,
                            host_key_type=host_type, host_key=host, client_key=client,
                            meminfo=self.meminfo, boot_dmesg=self.boot_dmesg,
                            boot_seconds=self.qemu.boot_seconds)
        self.snapshot = snapshot.save(self.monitor, self.qemu.ram_file, meta)

    def attach(self, save: bool = False) -> None:
        """insmod hm_checkpoint.ko (already loaded in a restored guest); save: keep this
        ready guest as the snapshot of its kernel and image (before gdb attaches: a QMP
        stop would be a stop gdb did not ask for); attach the MI gdb (the guest stops),
        read the kernel's masks and layout while it is stopped (once per gdb), arm the
        breakpoint and resume."""
        if self.attached:
            return
        if self.qemu is None or self.shell is None:
            raise GdbError("attach() on a guest that is not booted", "boot() it first")
        try:
            if self.core_addr is None:
                self.core_addr, self.count_addr = load_core(self.shell)
            ram, monitor = self._ram_and_monitor()
            if save and not self.restored:
                self._save_quietly()
            facts = self.snapshot.meta.facts if self.snapshot is not None else None
            gdb, checker = self.kept.attach(self.kernel.vmlinux, self.run_dir / "gdb-mi.log",
                                            self.qemu.gdb_socket, ram, monitor, facts)
            checker.count_addr, checker.seen = self.count_addr, {}  # a new guest: no stop seen
            checker.target_alive = gdb.peer_alive = self.alive
            self.stack.callback(self._let_go_of_gdb)
            with self.kept.patient():  # read while stopped
                checker.kernel_masks()
                self.layout = checker.kernel_layout()
                if self.snapshot is not None and not self.snapshot.meta.facts:
                    self.snapshot = snapshot.add_facts(self.snapshot, checker.facts())
            self.kept.arm(self.core_addr)
            self._gdb, self._checker = gdb, checker
        except BaseException:
            self.close()
            raise

    def _let_go_of_gdb(self) -> None:
        """gdb lets go of this guest, which is going away: a running guest's QEMU is killed
        first and gdb sees its target close (no interrupt, no stop to wait for: ~0.1 s
        less per module); a stopped one is disconnected (a stopped gdb reads nothing)."""
        if self.qemu is not None and self.kept.running():
            self.qemu.kill()
            self.kept.target_killed()
        else:
            self.kept.detach()

    def _save_quietly(self) -> None:
        """save_snapshot(); a save that fails costs the speed of the next guests, not the
        run (each is then booted)."""
        t0 = time.monotonic()
        try:
            self.save_snapshot()
            say(f"  snapshot saved in {time.monotonic() - t0:.1f} s "
                f"({self.snapshot.disk_bytes() >> 20 if self.snapshot else 0} MiB): the next "
                "guests of this kernel and image are restored from it")
        except HarnessError as e:
            say(f"  no snapshot ({e.what}): each guest is booted")

    def _ram_and_monitor(self) -> tuple[GuestRam | None, Monitor | None]:
        """QMP kept open for QEMU's cross-check, and the guest's RAM mapped at the offsets
        of QEMU's own memory map (None, None: the checks go through gdb's monitor)."""
        assert self.qemu is not None
        if self.monitor is None:
            self.monitor = Monitor(self.qemu.qmp_socket)
            self.stack.callback(self._close_monitor)
        if self.qemu.ram_file is None:
            return None, self.monitor
        regions = parse_mtree(self.monitor.hmp("info mtree -f"), RAM_BACKEND)
        ram = GuestRam(self.qemu.ram_file, regions)
        self.stack.callback(ram.close)
        return ram, self.monitor

    def _close_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None

    def _close_ssh(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
            self.ssh = None

    @property
    def gdb(self) -> Gdb:
        """The harness's MI gdb, with vmlinux's symbols (loaded now into the symbol-less
        gdb of a restored guest); a GdbError if this guest was booted without it."""
        if self._gdb is None:
            raise _not_attached()
        self.kept.ensure_symbols()
        return self._gdb

    @property
    def checker(self) -> Checker:
        if self._checker is None:
            raise _not_attached()
        return self._checker

    @property
    def accel(self) -> str:
        return self.qemu.accel if self.qemu else ""

    @property
    def boot_seconds(self) -> float:
        return self.qemu.boot_seconds if self.qemu else 0.0

    def guest_ssh(self, timeout: float = 10.0) -> GuestSSH:
        """The SSH connection, made on first use (a restored guest's with the keys saved
        in its snapshot)."""
        assert self.access is not None, "boot() first"
        if self.ssh is None:
            self.ssh = self.access.connect(timeout=timeout)
            self.stack.callback(self._close_ssh)
        return self.ssh

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """A command in the guest over SSH: (exit code, stdout, stderr)."""
        # the first connection may wait for a restored guest on a loaded host (seen: a
        # banner not read within 10 s while CI ran two pytest workers and a kernel build)
        return self.guest_ssh(min(timeout, 30.0)).run(cmd, timeout)

    @property
    def console(self) -> SerialShell:
        """The serial console (boot log, panics); kernel messages interleave there."""
        assert self.shell is not None, "boot() first"
        return self.shell

    def dmesg(self) -> str:
        return self.run("dmesg")[1]

    def alive(self) -> bool:
        return self.qemu is not None and self.qemu.alive()

    def gdb_mark(self) -> int:
        """Where the gdb transcript (gdb-mi.log) is now, to cut one module's part out."""
        if self._gdb is None:
            raise _not_attached()
        return self._gdb.transcript_size()

    def module_guest(self, console: ConsoleLog) -> Guest:
        if self._gdb is None:
            raise _not_attached()
        return Guest(shell=self.console, gdb=self._gdb, checker=self.checker, console=console,
                     remote=self.run, alive=self.alive,
                     exited=lambda: self.qemu.exit_text() if self.qemu else "")

    def run_module(self, spec: ModuleSpec, console: ConsoleLog) -> ModuleResult:
        """One module with the checkpoints served (module_run.py); needs attach()."""
        return run_module(self.module_guest(console), spec)

    def close(self) -> None:
        self._gdb = self._checker = None
        self.stack.close()
        self.qemu = self.shell = self.ssh = self.monitor = self.access = None


class StageOperations:
    """What the Lab asks of the machine, done by the stages (see lab.Operations). One gdb
    is kept across the Lab's guests (stages/kept_gdb.py); close() ends it."""

    def __init__(self) -> None:
        self.kept = KeptGdb()

    def close(self) -> None:
        self.kept.close()

    def configure(self, opts: RunOptions, run_dir: Path) -> KernelBuild:
        """The source resolved (unpacked once) and configured: a KernelBuild whose .config
        exists and which is not built yet."""
        source = resolve_source(opts.source)
        say(f"  Linux {source.version_str} from {source.tree}")
        return KernelBuild(configure(source, resolve_fragments(opts.configs, source.version)),
                           source)

    def build(self, configured: KernelBuild, opts: RunOptions) -> Built:
        """The kernel, then our modules and each user module directory against it."""
        user_dirs = sorted(set(opts.module_dirs.values()))
        for user_dir in user_dirs:  # refused before any build: nothing of ours is replaced
            if user_dir.resolve() != MODULES_DIR:
                refuse_own_names(user_dir, module_names(user_dir), module_names(MODULES_DIR))
        kernel = build_kernel(configured.source, configured.build_dir)
        kos, failures = build_modules(kernel)
        for user_dir in user_dirs:
            more, failed = build_modules(kernel, user_dir, extra_symbols=symvers(kernel))
            kos += more
            failures.update(failed)
        return Built(kernel=kernel, kos=kos, failures=failures)

    def image(self, built: Built) -> Path:
        return build_image(built.kernel.build_dir, built.kos)

    def boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
             run_dir: Path) -> GuestSession:
        """A guest (not attached) from the built kernel and image: restored from their
        snapshot when opts.snapshot and there is one, else booted."""
        cfg = QemuConfig.from_options(kernel.vmlinux, initrd, opts)
        session = GuestSession(cfg, kernel, run_dir, self.kept)
        session.boot(restore=opts.snapshot)
        return session


    def probe_boot(self, kernel: KernelBuild, initrd: Path, opts: RunOptions,
                   run_dir: Path) -> list[str]:
        """Boot the failed kernel again, under gdb from its first instruction, and judge
        its first kmap_local maps and unmaps (stages/boot_probe.py); the mismatches."""
        cfg = QemuConfig.from_options(kernel.vmlinux, initrd, opts, accel="tcg",
                                      extra_args=("-S",), shared_ram=False)
        probe_dir = run_dir / "probe"
        probe_dir.mkdir(parents=True, exist_ok=True)
        with Qemu(cfg, probe_dir) as qemu, Gdb(kernel.vmlinux, probe_dir / "gdb-mi.log") as gdb:
            return safe_probe(qemu, gdb)

    def decode_crash(self, text: str, built: Built) -> str | None:
        """The oops in `text` decoded with the tree's scripts/faddr2line (None if none)."""
        tool = built.kernel.source.tree / "scripts" / "faddr2line"
        if not tool.exists():
            return None
        return decode(text, tool, built.kernel.vmlinux, {k.stem: k for k in built.kos})


def stage_lab(opts: RunOptions, run_dir: Path) -> Lab:
    """A Lab over the real operations (what every command and the pytest plugin use)."""
    return Lab(opts, run_dir, Phases(), StageOperations())


def guest_session(lab: Lab, attach: bool) -> GuestSession:
    """lab.boot(attach), typed as the GuestSession a Lab of StageOperations boots."""
    s = lab.boot(attach=attach)
    assert isinstance(s, GuestSession)
    return s
