"""Tolerant KTAP v1 / TAP 14 parser for kernel console and dmesg captures.

Targets the output of KUnit in Linux 6.1-6.14 (lib/kunit/test.c,
lib/kunit/executor.c): a module's tests print ``KTAP version 1`` / ``1..N``
at column 0, then each suite indented by 4 spaces (``# Subtest:``, ``#
module:``, plan, ``ok N case``), parameterised cases one level deeper, the
per-suite ``# name: pass:.. fail:..`` and ``# Totals:`` lines back at column
0, then ``ok N suite``.  Such a wrapper document is flattened into one
:class:`Suite` per KUnit suite; a stand-alone KTAP document becomes one Suite.

Like tools/testing/kunit/kunit_parser.py it strips printk prefixes, but per
line with a regex (``<6>``, ``[    1.234567] ``, ``[    T1]`` caller ids,
busybox ``dmesg``/``dmesg -r``) so changing prefix widths and interleaved
kernel messages are tolerated; lines that are not KTAP are ignored unless
they look like a crash ("Oops", "kernel BUG at", "Kernel panic", "BUG:")
or continue an indented diagnostic (KUnit's ``Expected ... but`` lines).
Results the plan promised but that never appeared become ``CRASHED``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

STATUSES = ("PASS", "FAIL", "SKIP", "XFAIL", "CRASHED")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STAMP = re.compile(r"^(?:<\d{1,3}>)?\[\s*(\d+\.\d+)\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PREFIX = re.compile(r"^(?:<\d{1,3}>)?((?:\[\s*\d+\.\d+\])?(?:\[\s*[CT]\d+\])?)")
_VERSION = re.compile(r"^K?TAP version \d+$")
_PLAN = re.compile(r"^1\.\.(\d+)\b")
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\b(?:\s+-)?\s*([^#]*?)\s*(?:#\s*(.*?))?\s*$")
_SUBTEST = re.compile(r"^#\s*Subtest:\s*(.*?)\s*$")
_NAME = re.compile(r"^#\s*name:\s*(.*?)\s*$")
_CASE_MSG = re.compile(r"^# ([A-Za-z_][A-Za-z0-9_]*): ")
_STATS = re.compile(r": pass:\d+ fail:\d+")
_CRASH = re.compile(r"^(?:Oops\b|kernel BUG at|Kernel panic|BUG: "
                    r"|general protection fault|Bail out!)")


@dataclass
class Case:
    """One test point (``ok N name``); ``subtests`` holds a nested plan's cases."""

    name: str
    number: int
    status: str
    directive: str = ""
    diagnostics: list[str] = field(default_factory=list)
    subtests: list[Case] = field(default_factory=list)
    seconds: float = 0.0    # from the previous result of its plan (or the plan's start) to
                            # this one, by the printk timestamps; 0 without timestamps


@dataclass
class Suite:
    """A KUnit suite (or stand-alone KTAP document) and its cases.

    ``crashed`` is True when the plan promised results that never appeared or
    the suite's own result line is missing.  ``diagnostics`` holds the suite's
    header lines (``# module: ...``) and trailing ones (``# Totals: ...``).
    """

    name: str
    plan: int | None
    cases: list[Case]
    crashed: bool
    diagnostics: list[str] = field(default_factory=list)


@dataclass
class _Block:
    indent: int
    name: str = ""
    plan: int | None = None
    entries: list[tuple[Case, "_Block | None"]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    child: "_Block | None" = None
    crashed: bool = False
    last: float | None = None   # printk time of the block's start, then of its last result

    def unstarted(self) -> bool:
        return self.plan is None and not self.entries and self.child is None

    def add_crashed(self, name: str, number: int, block: "_Block | None") -> None:
        diags = [] if self.crashed else self.pending  # crash context -> first victim
        if not self.crashed:
            self.pending = []
            if not name:  # KUnit prefixes a case's messages with "# <case>: "
                named = [m.group(1) for m in map(_CASE_MSG.match, diags)
                         if m and not _STATS.search(m.string)]
                name = named[-1] if named else ""
        self.crashed = True
        self.entries.append((Case(name, number, "CRASHED", "", diags), block))

    def next_number(self) -> int:
        return max((c.number for c, _ in self.entries), default=0) + 1


def visible(text: str) -> str:
    """Control characters (C0 but tab, DEL) as ``\\xNN`` text: a name or message a module
    printed reads the same in the terminal, report.json and JUnit, and cannot drive the
    user's terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def strip_prefix(line: str) -> str:
    """Remove ``\\r``, ANSI escapes, ``<N>`` levels and ``[ time]``/caller prefixes; other
    control characters made visible (``visible``)."""
    line = visible(_ANSI.sub("", line.rstrip("\r\n")).rstrip())
    m = _PREFIX.match(line)
    assert m is not None  # every part of the pattern is optional
    rest = line[m.end():]
    if m.group(1) and rest.startswith(" "):
        rest = rest[1:]  # printk puts exactly one space after the prefix
    return rest


def _status(ok: str, directive: str) -> str:
    word = directive.split()[0].upper() if directive.strip() else ""
    if word in ("SKIP", "XFAIL"):
        return word
    return "PASS" if ok == "ok" else "FAIL"


class _Parser:
    def __init__(self) -> None:
        self.stack: list[_Block] = []
        self.docs: list[_Block] = []
        self.now: float | None = None   # the printk time of the line being read

    def _orphan_child(self, blk: _Block) -> None:
        if blk.child is not None:  # a nested plan whose result line never came
            child, blk.child = blk.child, None
            blk.add_crashed(child.name, blk.next_number(), child)

    def close_top(self) -> None:
        blk = self.stack.pop()
        self._orphan_child(blk)
        if blk.plan is not None:
            seen = {c.number for c, _ in blk.entries}
            for n in range(1, blk.plan + 1):
                if n not in seen:
                    blk.add_crashed("", n, None)
        if self.stack:
            self._orphan_child(self.stack[-1])
            self.stack[-1].child = blk
        else:
            self.docs.append(blk)

    def finish(self) -> list[_Block]:
        while self.stack:
            self.close_top()
        return self.docs

    def feed(self, raw: str) -> None:
        stamp = _STAMP.match(raw)
        if stamp:
            self.now = float(stamp.group(1))
        text = strip_prefix(raw)
        body = text.lstrip(" \t")
        indent = len(text) - len(body)
        if not body:
            return
        kind = ("version" if _VERSION.match(body) else "plan" if _PLAN.match(body)
                else "result" if _RESULT.match(body) else "diag" if body.startswith("#")
                else "other")
        if kind == "other":
            top = self.stack[-1] if self.stack else None
            if top is not None and _CRASH.match(body):
                top.pending.append(body)
            elif top is not None and 0 < top.indent <= indent:  # "Expected ..." lines
                top.pending.append(text[top.indent:])
            return
        if not self.stack:
            if kind == "diag" and not _SUBTEST.match(body):
                return  # stray comment outside any KTAP output
            self.stack.append(_Block(indent, last=self.now))
        while len(self.stack) > 1 and self.stack[-1].indent > indent:
            self.close_top()
        top = self.stack[-1]
        if top.indent > indent:  # shallower than the document: re-root it
            if kind == "version":
                self.close_top()
                return self.feed(text)
            old = self.stack.pop()
            self.stack.append(_Block(indent, last=self.now))
            self.stack.append(old)
            self.close_top()
            top = self.stack[-1]
        if indent > top.indent:
            if kind == "diag" and not _SUBTEST.match(body):
                top.pending.append(body)
                return
            self._orphan_child(top)
            top = _Block(indent, last=self.now)
            self.stack.append(top)
        self._line(top, kind, body)

    def _line(self, top: _Block, kind: str, body: str) -> None:
        sub = _SUBTEST.match(body)
        if kind == "version" or sub:
            if top.unstarted() and not (sub and top.name):
                if sub:
                    top.name = sub.group(1)
                return
            indent = top.indent  # a sibling starts: close this block, retry
            self.close_top()
            self.feed(" " * indent + body)
        elif kind == "plan":
            plan = _PLAN.match(body)
            if top.plan is None and plan:
                top.plan = int(plan.group(1))
        elif kind == "result":
            m = _RESULT.match(body)
            assert m is not None
            directive = m.group(4) or ""
            case = Case(m.group(3), int(m.group(2)), _status(m.group(1), directive),
                        directive, top.pending)
            if self.now is not None and top.last is not None:
                case.seconds = round(max(0.0, self.now - top.last), 6)
            top.last = self.now
            top.pending = []
            child, top.child = top.child, None
            top.entries.append((case, child))
        else:
            named = _NAME.match(body)
            if named and not top.name and top.unstarted():
                top.name = named.group(1)
            elif top.unstarted():
                top.header.append(body)
            else:
                top.pending.append(body)


def _case(case: Case, blk: _Block | None) -> Case:
    if blk is not None:
        case.subtests = [_case(c, b) for c, b in blk.entries]
        case.diagnostics = blk.header + case.diagnostics + blk.pending
        if not case.name:
            case.name = blk.name
    return case


def _suites(doc: _Block) -> list[Suite]:
    blocks = [b for _, b in doc.entries]
    wrapper = (not doc.name and any(b is not None for b in blocks)
               and all(b is not None or c.status == "CRASHED" for c, b in doc.entries))
    if not wrapper:
        return [Suite(doc.name, doc.plan, [_case(c, b) for c, b in doc.entries],
                      doc.crashed, doc.header + doc.pending)]
    out = []
    for case, blk in doc.entries:
        if blk is None:
            out.append(Suite(case.name, None, [], True, case.diagnostics))
            continue
        out.append(Suite(blk.name or case.name, blk.plan,
                         [_case(c, b) for c, b in blk.entries],
                         blk.crashed or case.status == "CRASHED",
                         blk.header + blk.pending + case.diagnostics))
    return out


def parse_ktap(text: str) -> list[Suite]:
    """Parse every KTAP document found in ``text`` (a console log or dmesg)."""
    parser = _Parser()
    for line in text.splitlines():
        parser.feed(line)
    return [s for doc in parser.finish() for s in _suites(doc)]


def summarize(suites: list[Suite]) -> dict[str, int]:
    """Count the suites' top-level cases by status (all of STATUSES as keys)."""
    counts = Counter(c.status for s in suites for c in s.cases)
    return {status: counts.get(status, 0) for status in STATUSES}
