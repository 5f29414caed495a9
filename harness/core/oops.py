"""The frames of an oops (pure): the EIP, then the call trace, as `func+offset [module]`;
faddr2line's or addr2line's output read back; the chain the report shows.
stages/crash_decode.py runs them. i386 oops format of Linux 6.1-6.14
(arch/x86/kernel/dumpstack.c: `EIP: %pS`, `Call Trace:` then ` [?] %pBb` lines; without
frame pointers every frame is a `?` guess).
"""

import re
from dataclasses import dataclass

# "EIP: cat_null_deref_init+0x31/0x1000 [cat_null_deref]"
EIP_FRAME = re.compile(r"EIP: ([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)/0x[0-9a-f]+(?: \[(\w+)\])?")
# " ? do_one_initcall+0x6c/0x19a" or " kmap_local_fork+0x1c/0x40 [m]"
TRACE_FRAME = re.compile(r"^\s*(\? )?([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)/0x[0-9a-f]+"
                         r"(?: \[(\w+)\])?\s*$")
LOCATION = re.compile(r"^(\S+) at (\S+?:\d+)")
MAX_FRAMES = 4


@dataclass(frozen=True)
class Frame:
    """One frame of an oops: `func+offset` in vmlinux (module None) or in a module."""

    func: str
    offset: str
    module: str | None = None
    reliable: bool = True

    @property
    def key(self) -> str:
        return f"{self.func}+{self.offset}"


def oops_frames(text: str, limit: int = MAX_FRAMES) -> list[Frame]:
    """The first oops's EIP and the call trace under it (reliable frames first; `?`
    frames only when there is nothing better), at most `limit`."""
    lines = text.splitlines()
    start = next((i for i, x in enumerate(lines) if EIP_FRAME.search(x)), None)
    if start is None:
        return []
    m = EIP_FRAME.search(lines[start])
    assert m is not None
    frames = [Frame(m.group(1), m.group(2), m.group(3))]
    trace: list[Frame] = []
    inside = False
    for line in lines[start + 1:]:
        if "Call Trace:" in line:
            inside = True
            continue
        if not inside:
            continue
        t = TRACE_FRAME.match(line.split("] ", 1)[-1] if line.startswith("[") else line)
        if t is None:
            if trace:
                break
            continue
        trace.append(Frame(t.group(2), t.group(3), t.group(4), reliable=t.group(1) is None))
    good = [f for f in trace if f.reliable]
    return (frames + (good or trace))[:limit]


def parse_faddr2line(output: str) -> dict[str, str]:
    """{"func+0xoff": "file:line"} from faddr2line's output (the innermost location: for an
    inlined function, where the code really is)."""
    out: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        head = re.match(r"^([A-Za-z0-9_.$]+\+0x[0-9a-f]+)/0x[0-9a-f]+:$", line.strip())
        if head:
            key = head.group(1)
            continue
        loc = LOCATION.match(line.strip())
        if key and loc and key not in out:
            out[key] = _short(loc.group(2))
    return out


def text_symbols(system_map: str) -> dict[str, list[int]]:
    """Function name -> its addresses, from System.map (`c10bf1a6 T __kmap_local_pfn_prot`);
    a static function may have several."""
    out: dict[str, list[int]] = {}
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWw":
            try:
                out.setdefault(parts[2], []).append(int(parts[0], 16))
            except ValueError:
                continue
    return out


def frame_addresses(keys: list[str], symbols: dict[str, list[int]]) -> dict[int, str]:
    """Address -> "func+0xoff" for each key whose function has exactly one address (the
    others are left to faddr2line, which tells same-named functions apart by size)."""
    out: dict[int, str] = {}
    for key in keys:
        func, _, off = key.partition("+")
        addrs = symbols.get(func, [])
        if len(addrs) == 1 and off.startswith("0x"):
            out[addrs[0] + int(off, 16)] = key
    return out


def parse_addr2line(output: str, keys: dict[int, str], tree: str) -> dict[str, str]:
    """{"func+0xoff": "file:line"} from `addr2line -a -f -i` (each address, then function
    and location lines, the innermost first); paths under `tree` made relative to it, as
    faddr2line prints them."""
    out: dict[str, str] = {}
    key = None
    for line in output.splitlines():
        line = line.strip()
        if re.fullmatch(r"0x[0-9a-f]+", line):
            key = keys.get(int(line, 16))
            continue
        m = re.fullmatch(r"(\S+?):(\d+)(?: \(discriminator \d+\))?", line)
        if key and m and m.group(1) != "??" and key not in out:
            path = m.group(1)
            if path.startswith(tree.rstrip("/") + "/"):
                path = path[len(tree.rstrip("/")) + 1:]
            out[key] = _short(f"{path}:{m.group(2)}")
    return out


def _short(path_line: str) -> str:
    """A module copy's path in the cache shortened to its file name; kernel paths stay
    relative to the tree (as the kernel's DWARF has them)."""
    path, _, line = path_line.rpartition(":")
    if "/hm-modules/" in path:
        path = path.rsplit("/", 1)[-1]
    path = path.removeprefix("./")  # a module's, compiled with its paths mapped
    return f"{path}:{line}"


def format_chain(frames: list[Frame], where: dict[str, str]) -> str:
    """`f+0x3c mm/highmem.c:573 <- g+0x10 ... <- ? h+0x6c init/main.c:1224`."""
    parts = []
    for f in frames:
        loc = where.get(f.key)
        parts.append(("" if f.reliable else "? ") + f.key + (f" {loc}" if loc else ""))
    return " <- ".join(parts)
