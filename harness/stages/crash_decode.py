"""A crash names the code that broke: the frames of an oops (core/oops.py) decoded to
file:line with the kernel's own `scripts/faddr2line` (binutils' addr2line, nm and readelf
underneath) against the built vmlinux and the test modules' .ko files, once per object
file, with a deadline.
"""

import subprocess
from pathlib import Path

from ..core.oops import Frame, format_chain, oops_frames, parse_faddr2line


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
        try:
            r = subprocess.run([str(faddr2line), str(obj), *dict.fromkeys(f.key for f in fs)],
                               capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            continue
        where.update(parse_faddr2line(r.stdout))
    return format_chain(frames, where)
