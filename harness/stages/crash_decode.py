"""A crash names the code that broke: the frames of an oops (core/oops.py) decoded to
file:line, with a deadline. vmlinux's frames: the function's address from System.map and
one `addr2line` for all of them (0.1 s; the kernel's `scripts/faddr2line` runs nm and
readelf over the 90 MB vmlinux for each frame, ~0.9 s a frame). The test modules' .ko
files, and a function name System.map has twice, go through `scripts/faddr2line`.
"""

import subprocess
from pathlib import Path

from ..core.oops import (Frame, format_chain, frame_addresses, oops_frames, parse_addr2line,
                         parse_faddr2line, text_symbols)

_SYMBOLS: dict[tuple[str, int], dict[str, list[int]]] = {}  # (System.map, mtime_ns) -> symbols


def decode(text: str, faddr2line: Path, vmlinux: Path, modules: dict[str, Path],
           timeout: float = 30.0) -> str | None:
    """The decoded frame chain of the first oops in `text`, or None if there is no oops.
    `modules`: module name -> its .ko; frames in other modules stay undecoded."""
    frames = oops_frames(text)
    if not frames:
        return None
    by_object: dict[Path, list[Frame]] = {}
    for f in frames:
        obj = vmlinux if f.module is None else modules.get(f.module)
        if obj is not None:
            by_object.setdefault(obj, []).append(f)
    where: dict[str, str] = {}
    for obj, fs in by_object.items():
        keys = list(dict.fromkeys(f.key for f in fs))
        if obj == vmlinux:
            where.update(_vmlinux_lines(vmlinux, keys, faddr2line.parent.parent, timeout))
            keys = [k for k in keys if k not in where]
        if not keys:
            continue
        try:
            r = subprocess.run([str(faddr2line), str(obj), *keys],
                               capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            continue
        where.update(parse_faddr2line(r.stdout))
    return format_chain(frames, where)


def _vmlinux_lines(vmlinux: Path, keys: list[str], tree: Path,
                   timeout: float) -> dict[str, str]:
    """The locations of vmlinux's frames through System.map and one addr2line ({} for
    what this cannot place: faddr2line tries those)."""
    addrs = frame_addresses(keys, _symbols(vmlinux.parent / "System.map"))
    if not addrs:
        return {}
    try:
        r = subprocess.run(["addr2line", "-a", "-f", "-i", "-e", str(vmlinux),
                            *(f"{a:#x}" for a in addrs)],
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_addr2line(r.stdout, addrs, str(tree))


def _symbols(system_map: Path) -> dict[str, list[int]]:
    try:
        key = (str(system_map), system_map.stat().st_mtime_ns)
        if key not in _SYMBOLS:
            _SYMBOLS.clear()
            _SYMBOLS[key] = text_symbols(system_map.read_text())
        return _SYMBOLS[key]
    except OSError:
        return {}
