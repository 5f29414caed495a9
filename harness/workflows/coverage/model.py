"""Kernel line and branch coverage of the highmem code the suite reaches (`highmem coverage`).

The kernel is built with `CONFIG_GCOV_KERNEL` (kernel-configs/gcov.config) and only the
objects below profiled, each by kbuild's per-object switch `GCOV_PROFILE_<stem>.o=y` on
make's command line (scripts/Makefile.lib reads it in every directory; no file of the tree
is edited); the test modules are profiled too (`GCOV_PROFILE` in modules/Kbuild), since the
highmem.h/highmem-internal.h helpers the suite calls are inlined into them. After the suite
the guest's /sys/kernel/debug/gcov/<build path>/… .gcda files are read over SSH (base64);
gcov turns each with its .gcno into JSON (`gcov --json-format --stdout`), and this module
sums it per file and per function. Pure: text and JSON in, numbers out.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from ...core.gcov import PROFILED, make_variables  # noqa: F401 (this workflow's switches)

GCOV_ROOT = "/sys/kernel/debug/gcov"
DUMP_MARK = "==HM-GCDA== "

# The guest's shell line that prints every .gcda as `==HM-GCDA== PATH` then its base64.
DUMP_COMMAND = (
    "grep -q ' /sys/kernel/debug debugfs ' /proc/mounts || "
    "mount -t debugfs none /sys/kernel/debug; "
    f"find {GCOV_ROOT} -name '*.gcda' | while read f; do echo \"{DUMP_MARK}$f\"; "
    "base64 \"$f\"; done")


class DumpError(ValueError):
    """The guest's .gcda listing is not what DUMP_COMMAND prints."""


def parse_dump(text: str) -> dict[str, bytes]:
    """{path in the guest: .gcda bytes} of DUMP_COMMAND's output."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(DUMP_MARK):
            current = out.setdefault(line[len(DUMP_MARK):].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
        elif line.strip():
            raise DumpError(f"a line before the first {DUMP_MARK.strip()} mark: {line[:80]!r}")
    try:
        return {p: base64.b64decode("".join(b), validate=True) for p, b in out.items()}
    except binascii.Error as e:
        raise DumpError(f"not base64: {e}") from None


def host_path(guest_path: str) -> str:
    """The object path on the host of a .gcda in the guest: its place under GCOV_ROOT is
    the absolute path the object was compiled to."""
    if not guest_path.startswith(GCOV_ROOT + "/"):
        raise DumpError(f"{guest_path} is not under {GCOV_ROOT}")
    return guest_path[len(GCOV_ROOT):]


@dataclass
class FunctionCoverage:
    name: str
    file: str
    first_line: int
    lines: int = 0
    lines_hit: int = 0
    branches: int = 0
    branches_hit: int = 0
    calls: int = 0
    missed: list[int] = field(default_factory=list)

    @property
    def line_percent(self) -> float:
        return 100.0 * self.lines_hit / self.lines if self.lines else 100.0


@dataclass
class FileCoverage:
    file: str
    lines: int = 0
    lines_hit: int = 0
    branches: int = 0
    branches_hit: int = 0
    functions: list[FunctionCoverage] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    @property
    def line_percent(self) -> float:
        return 100.0 * self.lines_hit / self.lines if self.lines else 100.0

    @property
    def branch_percent(self) -> float:
        return 100.0 * self.branches_hit / self.branches if self.branches else 100.0


def merge_gcov(docs: list[dict]) -> dict:
    """One gcov JSON document of several (the objects that inline one header, the parts of
    a run the guest was restored between): line, branch and call counts summed per file."""
    files: dict[str, dict] = {}
    for doc in docs:
        for f in doc.get("files", []):
            into = files.setdefault(str(f.get("file", "")), {"functions": {}, "lines": {}})
            for fn in f.get("functions", []):
                have = into["functions"].setdefault(fn["name"], {**fn, "execution_count": 0})
                have["execution_count"] += int(fn.get("execution_count", 0))
            for ln in f.get("lines", []):
                key = (int(ln["line_number"]), ln.get("function_name", ""))
                have = into["lines"].get(key)
                if have is None:
                    into["lines"][key] = {**ln, "count": int(ln.get("count", 0)),
                                          "branches": [dict(b) for b in ln.get("branches", [])]}
                    continue
                have["count"] += int(ln.get("count", 0))
                for mine, theirs in zip(have["branches"], ln.get("branches", [])):
                    mine["count"] = int(mine.get("count", 0)) + int(theirs.get("count", 0))
    return {"files": [{"file": path, "functions": list(d["functions"].values()),
                       "lines": list(d["lines"].values())} for path, d in files.items()]}


def summarize(gcov_json: dict, keep: tuple[str, ...] = ()) -> list[FileCoverage]:
    """Per source file (only those whose path ends with one of `keep`, when given) and per
    function, from one `gcov --json-format` document: a line is counted once (inlined
    copies of it in several functions are one line of the file)."""
    out = []
    for f in gcov_json.get("files", []):
        path = str(f.get("file", ""))
        if keep and not any(path.endswith(k) for k in keep):
            continue
        fc = FileCoverage(path)
        funcs = {fn["name"]: FunctionCoverage(fn.get("demangled_name", fn["name"]), path,
                                              int(fn.get("start_line", 0)),
                                              calls=int(fn.get("execution_count", 0)))
                 for fn in f.get("functions", [])}
        seen: dict[int, bool] = {}
        for ln in f.get("lines", []):
            number, hit = int(ln["line_number"]), int(ln.get("count", 0)) > 0
            seen[number] = seen.get(number, False) or hit
            br = ln.get("branches", [])
            taken = sum(1 for b in br if int(b.get("count", 0)) > 0)
            fc.branches += len(br)
            fc.branches_hit += taken
            fn = funcs.get(ln.get("function_name", ""))
            if fn is not None:
                fn.lines += 1
                fn.lines_hit += hit
                fn.branches += len(br)
                fn.branches_hit += taken
                if not hit:
                    fn.missed.append(number)
        fc.lines, fc.lines_hit = len(seen), sum(seen.values())
        fc.missed = sorted(n for n, h in seen.items() if not h)
        fc.functions = sorted(funcs.values(), key=lambda x: x.first_line)
        out.append(fc)
    return out


def format_text(files: list[FileCoverage]) -> str:
    """The text summary: per file, then its functions with the lines no test reached."""
    rows = []
    for f in files:
        rows.append(f"{f.file}: lines {f.lines_hit}/{f.lines} ({f.line_percent:.1f} %), "
                    f"branches {f.branches_hit}/{f.branches} ({f.branch_percent:.1f} %)")
        for fn in f.functions:
            if not fn.lines:
                continue
            miss = "" if not fn.missed else " missed: " + _ranges(fn.missed)
            rows.append(f"  {fn.name:<36} {fn.lines_hit:>4}/{fn.lines:<4} "
                        f"{fn.line_percent:5.1f} %  calls {fn.calls}{miss}")
    return "\n".join(rows) + "\n"


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = -2
    for n in sorted(set(numbers)):
        if start < 0:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start >= 0:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)
