"""What the harness may delete, decided from facts alone: a directory is ours only when it
carries the marker the harness wrote into it when it made it (`.highmem-run`, JSON), never
because of its name. No I/O here: stages/owned.py reads the facts (lstat, never following a
symlink; the marker opened with O_NOFOLLOW; a flock probe; /proc) and does the removing.

A marker names the harness (HARNESS), the kind of directory, the uid that made it, the
creating process (pid and its /proc start time, which tells a reused pid apart) and the
directory's own inode and device: a copy of a run directory (cp -r, a backup) holds the same
marker text but another inode, so it is the user's, not ours.

Removable = a valid marker of an allowed kind, made by this uid, for this very directory,
in a real directory (not a symlink) of this uid, and not in use: no live run holds its lock
(run, warm, snapshot) or its creating process is alive (socket, ram).
"""

import json
from dataclasses import asdict, dataclass
from typing import Any

MARKER = ".highmem-run"
HARNESS = "highmem-harness"
MARKER_MAX = 4096             # bytes: a longer "marker" is not one of ours
# run: a run directory (run, boot, ssh, pytest, matrix, ... made by paths.new_run_dir);
# warm: a warm server's run directory; snapshot: a saved guest in the cache; socket, ram:
# a guest's private directories under /tmp and /dev/shm (sockdir.py)
KINDS = ("run", "warm", "snapshot", "socket", "ram")
# in use while their lock is held (whoever made them: a warm server holds its client's run
# directory; a snapshot outlives the run that saved it); the others (a guest's private
# directories) while the process that made them lives
LOCKED_KINDS = ("run", "warm", "snapshot")


@dataclass(frozen=True)
class Marker:
    """The `.highmem-run` file's content."""

    kind: str
    uid: int
    pid: int
    started: str              # /proc/PID/stat field 22 of the creating process
    ino: int                  # the directory's inode and device when it was made
    dev: int
    harness: str = HARNESS

    def to_json(self) -> str:
        return json.dumps(asdict(self)) + "\n"


def parse_marker(text: str) -> Marker | None:
    """The marker of a `.highmem-run` file's text; None when it is not one of ours (not
    JSON, another program's, a field missing or of the wrong type, an unknown kind)."""
    if len(text) > MARKER_MAX:
        return None
    try:
        d: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(d, dict) or d.get("harness") != HARNESS or d.get("kind") not in KINDS:
        return None
    ints = ("uid", "pid", "ino", "dev")
    if not all(isinstance(d.get(k), int) and not isinstance(d.get(k), bool) for k in ints):
        return None
    if not isinstance(d.get("started"), str):
        return None
    return Marker(kind=d["kind"], uid=d["uid"], pid=d["pid"], started=d["started"],
                  ino=d["ino"], dev=d["dev"])


@dataclass(frozen=True)
class DirFacts:
    """What stages/owned.py found at a path. `kind_of_entry`: "dir", "symlink", "other" or
    "missing" (from lstat); `uid`, `ino`, `dev`: the directory's lstat; `marker_text`: the
    marker file's text (None: no regular marker file, or a symlink in its place);
    `locked`: a live process holds the directory's lock; `creator_alive`: the marker's pid
    runs with the marker's start time."""

    kind_of_entry: str
    uid: int = -1
    ino: int = 0
    dev: int = 0
    marker_text: str | None = None
    locked: bool = False
    creator_alive: bool = False


@dataclass(frozen=True)
class Verdict:
    """Whether a directory may be removed, and why (for clean's output). `why` is one of
    REASONS' keys."""

    remove: bool
    why: str
    marker: Marker | None = None

    @property
    def reason(self) -> str:
        return REASONS[self.why]


REASONS = {
    "ours": "made by this harness, not in use",
    "in-use": "in use by a live run (its lock is held)",
    "creator-alive": "the process that made it is still running",
    "no-marker": "no .highmem-run marker (not made by this harness, or by an older version)",
    "bad-marker": "its .highmem-run marker is not one this harness wrote",
    "other-uid": "made by another user",
    "copied": "a copy of a harness directory (its marker names another directory)",
    "wrong-kind": "a harness directory of another kind",
    "symlink": "a symlink (never followed)",
    "mount": "something is mounted inside it",
    "not-a-directory": "not a directory",
    "missing": "gone",
}


def judge(facts: DirFacts, uid: int, kinds: tuple[str, ...]) -> Verdict:
    """May the directory of `facts` be removed by a process of `uid`, for a sweep of
    `kinds`?"""
    if facts.kind_of_entry != "dir":
        why = {"symlink": "symlink", "missing": "missing"}.get(facts.kind_of_entry,
                                                                 "not-a-directory")
        return Verdict(False, why)
    if facts.marker_text is None:
        return Verdict(False, "no-marker")
    m = parse_marker(facts.marker_text)
    if m is None:
        return Verdict(False, "bad-marker")
    if m.uid != uid or facts.uid != uid:
        return Verdict(False, "other-uid", m)
    if (m.ino, m.dev) != (facts.ino, facts.dev):
        return Verdict(False, "copied", m)
    if m.kind not in kinds:
        return Verdict(False, "wrong-kind", m)
    if facts.locked:
        return Verdict(False, "in-use", m)
    if facts.creator_alive and m.kind not in LOCKED_KINDS:
        return Verdict(False, "creator-alive", m)
    return Verdict(True, "ours", m)


def summary(verdicts: list[Verdict]) -> dict[str, int]:
    """How many directories were left alone for each reason (clean's closing lines)."""
    out: dict[str, int] = {}
    for v in verdicts:
        if not v.remove:
            out[v.why] = out.get(v.why, 0) + 1
    return out
