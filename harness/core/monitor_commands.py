"""Which QEMU human-monitor commands the inspector passes on (`highmem qemu CMD`, `hm-qemu
CMD`, gdb's `monitor CMD` in `highmem gdb`) and which it refuses, with what to use instead.
Pure: the command line in, a Refusal (what, fix) or its normal form out.

Refused are the commands that flood (a whole address space printed), hang (a monitor
blocked for minutes) or pull the guest from under the harness and gdb (stop, cont, quit,
reset, a new gdbstub, snapshots). QEMU 7.2's HMP (hmp-commands.hx, hmp-commands-info.hx)
matches names exactly, with aliases written `quit|q`, `cont|c`, `info|i`: those are listed.
"""

import re
from dataclasses import dataclass

from .errors import HarnessError

# the guest's QMP sockets, in its 0700 socket directory (stages/qemu.py starts QEMU with all
# three; each serves one client at a time)
QMP_SOCKET = "qmp.sock"              # the harness's Monitor, for the guest's life
TOOLS_QMP_SOCKET = "qmp-tools.sock"  # one-shot inspector commands (highmem qemu/dump, hm-qemu)
USER_QMP_SOCKET = "qmp-user.sock"    # the user's own client; the harness never connects
OUTPUT_LINES = 2000          # more than this of a command's text is cut (the rest counted)
MEMORY_BYTES = 64 << 10      # `x`/`xp` up to this much; more is a dump
ALIASES = {"i": "info", "q": "quit", "c": "cont"}
ONE_ADDRESS = "`highmem pte VA` / `hm-pte VA` (one address), `hm-qemu gva2gpa VA`"


class MonitorRefused(HarnessError):
    """A monitor command the inspector will not pass on: why, and what to use instead."""


@dataclass(frozen=True)
class Refusal:
    name: str       # the command as HMP knows it ("info tlb", "quit")
    why: str        # what it would do to the session
    instead: str    # the command to use


REFUSED = {r.name: r for r in (
    Refusal("info tlb", "prints every mapped page of the guest's address space: on an 8 GiB "
            "PAE guest some 400,000 lines, and through gdb's `monitor` QEMU 7.2's gdbstub "
            "stalls after a few hundred", f"{ONE_ADDRESS}; a bounded range: `hm-kmaps` "
            "(PKMAP and kmap_local slots), `hm-vmaps` (vmap areas)"),
    Refusal("dump-guest-memory", "writes all guest RAM (GiBs) while the monitor blocks: "
            "no answer until it is done", "`highmem dump FILE` (in the background, with "
            "progress, a deadline and a check of the vmcore)"),
    Refusal("quit", "ends QEMU under the harness and gdb", "quit gdb (the harness shuts "
            "the guest down), Ctrl-] in `highmem boot`, `highmem down`"),
    Refusal("stop", "stops the VM behind gdb's back (gdb then sees a SIGINT it did not ask "
            "for; the harness's checkpoint waits time out)", "Ctrl-C in gdb"),
    Refusal("cont", "resumes a VM gdb holds stopped: gdb still believes it is stopped and "
            "reads registers of a running guest", "`continue` in gdb"),
    Refusal("system_reset", "reboots the kernel under the harness: loaded modules, gdb's "
            "breakpoints and every address known so far are gone", "quit and start again"),
    Refusal("system_powerdown", "shuts the guest down under the harness", "quit gdb, or "
            "`highmem down`"),
    Refusal("gdbserver", "replaces the gdbstub the session's gdb is attached to",
            "the gdbstub socket `highmem gdb` and `highmem boot` print"),
    Refusal("savevm", "a snapshot needs a qcow2 disk, which the guest has none of; the "
            "harness keeps its own snapshots", "--snapshot (the default) of `highmem run`"),
    Refusal("loadvm", "replaces the running kernel under gdb", "quit and start again"),
    Refusal("delvm", "the guest has no snapshot disk", "`highmem clean`"),
    Refusal("migrate", "the harness's own snapshots migrate through this monitor", "--snapshot"),
    Refusal("migrate_incoming", "the guest is not waiting for a migration", "--snapshot"),
    Refusal("log", "QEMU's debug log goes to its stderr, which is the serial console the "
            "harness reads (with TCG, `log in_asm` floods it)", "run qemu-system-i386 "
            "yourself with -d ITEMS -D FILE (qemu-cmdline.txt in the run directory)"),
    Refusal("logfile", "QEMU's log is the harness's console", "-D FILE on your own QEMU"),
    Refusal("chardev-remove", "the console and monitor chardevs are the harness's", "-"),
    Refusal("chardev-change", "the console and monitor chardevs are the harness's", "-"),
)}
XP = re.compile(r"^/(?P<count>\d*)(?P<letters>[xduoctsaibhwg]*)$")  # letters in any order
SIZES = {"b": 1, "h": 2, "w": 4, "g": 8, "": 4}


def command_name(line: str) -> str:
    """The HMP command `line` starts with, aliases resolved: "info tlb" for "i tlb"."""
    words = line.split()
    if not words:
        return ""
    first = ALIASES.get(words[0], words[0])
    if first == "info" and len(words) > 1:
        return f"info {words[1]}"
    return first


def memory_bytes(line: str) -> int:
    """How many bytes an `x`/`xp` command prints (0: not one, or no /FMT)."""
    words = line.split()
    if len(words) < 2 or words[0] not in ("x", "xp"):
        return 0
    m = XP.match(words[1])
    if m is None:
        return 0
    count, letters = int(m["count"] or 1), m["letters"]
    if set(letters) & set("csi"):
        return count
    return count * next((SIZES[c] for c in letters if c in SIZES), SIZES[""])


def check_command(line: str) -> str:
    """`line`, stripped, if the inspector may pass it on; MonitorRefused otherwise."""
    line = line.strip()
    if not line:
        raise MonitorRefused("no monitor command given",
                             "give one, e.g. `info registers` or `gva2gpa 0xff601000`")
    if any(c in line for c in "\n\r\x00"):
        raise MonitorRefused("a monitor command is one line", "give one command at a time")
    name = command_name(line)
    r = REFUSED.get(name)
    if r is not None:
        raise MonitorRefused(f"`{name}` is refused here: it {r.why}", f"use {r.instead}")
    n = memory_bytes(line)
    if n > MEMORY_BYTES:
        raise MonitorRefused(f"`{line}` prints {n} bytes of memory (more than "
                             f"{MEMORY_BYTES >> 10} KiB)", "ask for less, or dump the "
                             "whole RAM with `highmem dump FILE`")
    return line


def cut_output(text: str, limit: int = OUTPUT_LINES) -> str:
    """`text` as a terminal shows it (HMP's \r\n ends and leading blank line dropped), up
    to `limit` lines, with a last line counting what was cut."""
    text = text.replace("\r\n", "\n").lstrip("\n")
    lines = text.splitlines()
    if len(lines) <= limit:
        return text
    return "\n".join(lines[:limit]) + f"\n[{len(lines) - limit} more lines cut]\n"
