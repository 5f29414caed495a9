"""`highmem watch`'s saves (harness/workflows/warm/saves.py, workflows/warm/inotify_events.py,
workflows/warm/inotify.py): a burst of events is one save after 150 ms of quiet; editors' scratch
files never make one; a save during a run supersedes that run, so the verdict shown is
always the newest save's; inotify's records decode, and a real directory's events arrive."""

import os
import struct
import time

import pytest

from harness.workflows.warm import inotify_events as ie
from harness.core.errors import HarnessError
from harness.workflows.warm.saves import (
    RUN,
    SHOWN,
    SUPERSEDED,
    UNCHANGED,
    Save,
    SaveTracker,
    is_watched,
    save_label,
)
from harness.workflows.warm.inotify import DirWatch

C, M, D = ie.CREATE, ie.MODIFY, ie.DELETE


def test_watched_files():
    assert all(is_watched(n) for n in ("a.c", "hm.h", "Kbuild", "Makefile"))
    assert not any(is_watched(n) for n in (
        "a.o", "a.ko", ".a.c.swp", "a.c~", "README", "#a.c#", ".#a.c", "4913", ".a.c.swx",
        "a.c.orig", ".a.c.hm-tmp", "modules/.#hm_ktap.h", "modules/hm_ktap.h~"))
    assert is_watched("modules/hm_ktap.h")


def test_a_burst_of_events_is_one_save_after_the_quiet_time():
    s = SaveTracker(quiet=0.15)
    s.feed(10.00, "a.c", M)
    s.feed(10.10, "a.c", M)
    s.feed(10.12, "b.h", M)
    assert s.wait_s(10.20) == pytest.approx(0.07)
    assert s.settle(10.20) is None                  # still within 150 ms of the last
    save = s.settle(10.27)
    assert save == Save(1, ("a.c", "b.h"), 10.12) and s.queued == save
    assert s.settle(11.0) is None and s.wait_s(11.0) is None


def test_scratch_files_make_no_save():
    s = SaveTracker()
    for name in (".a.c.swp", "4913", "a.c~", "#a.c#", ".#a.c", "notes.txt"):
        s.feed(1.0, name, C)
        s.feed(1.01, name, D)
    assert s.settle(5.0) is None and s.count == 0
    s.feed(6.0, "tmp.c", C)      # a watched name, created and deleted within the burst
    s.feed(6.05, "tmp.c", D)
    assert s.settle(7.0) is None
    s.feed(8.0, "a.c", D)        # vim's rename-and-write: deleted, then created: a save
    s.feed(8.01, "a.c", C)
    assert s.settle(9.0) == Save(1, ("a.c",), 8.01)


def test_an_overflow_counts_as_a_save():
    s = SaveTracker()
    s.feed(1.0, "", ie.OVERFLOW)
    assert s.settle(2.0).names == ("(events lost)",)


def _run_first(s, digest="d1"):
    s.start_watch(0.0)
    assert s.start(digest)[0] == RUN


def test_a_run_with_no_save_meanwhile_is_shown():
    s = SaveTracker()
    _run_first(s)
    outcome, run = s.finish("d1", 5.0)
    assert outcome == SHOWN and run.save.number == 1 and s.shown == (1, "d1")
    assert s.queued is None


def test_a_save_during_a_run_supersedes_it_and_the_newest_runs_next():
    s = SaveTracker()
    _run_first(s)
    s.feed(1.0, "a.c", M)               # saved twice during the build
    assert s.settle(1.2).number == 2
    assert s.start("d2") is None        # one run at a time
    s.feed(1.5, "a.c", M)
    assert s.settle(1.7).number == 3    # replaces save 2, which never ran
    outcome, run = s.finish("d3", 4.0)
    assert outcome == SUPERSEDED and run.save.number == 1 and s.shown is None
    assert s.start("d3") == (RUN, Save(3, ("a.c",), 1.5))
    outcome, run = s.finish("d3", 6.0)
    assert outcome == SHOWN and run.save.number == 3 and s.shown == (3, "d3")


def test_a_change_with_no_settled_save_still_reruns():
    s = SaveTracker()
    _run_first(s)
    s.feed(1.0, "tmp.c", C)     # touched during the run, cancelled out, no save
    s.feed(1.01, "tmp.c", D)
    outcome, _ = s.finish("d1", 3.0)
    assert outcome == SUPERSEDED and s.queued == Save(2, (), 3.0)
    s2 = SaveTracker()
    _run_first(s2)
    outcome, _ = s2.finish("other", 3.0)     # events missed, but the content differs
    assert outcome == SUPERSEDED and s2.queued is not None


def test_the_content_of_the_verdict_shown_is_not_rerun():
    s = SaveTracker()
    _run_first(s)
    s.finish("d1", 1.0)
    s.feed(2.0, "a.c", M)                # saved with no change (or changed back)
    s.settle(3.0)
    assert s.start("d1") == (UNCHANGED, Save(2, ("a.c",), 2.0)) and s.run is None
    s.feed(4.0, "a.c", M)
    s.settle(5.0)
    assert s.start("d2")[0] == RUN


def test_finish_without_a_run_is_our_bug():
    with pytest.raises(ValueError):
        SaveTracker().finish("d", 0.0)
    with pytest.raises(ValueError):
        SaveTracker().feed(0.0, "", ie.GONE)


def test_a_verdict_names_its_save():
    assert save_label(Save(3, ("a.c",), 0.0), "1a2b3c4d5e6f", "12:04:01") == \
        "save 3 (12:04:01, 1a2b3c4d)"


def _record(mask, name=b""):
    padded = name + b"\0" * ((16 - len(name) % 16) % 16) if name else b""
    return struct.pack("=iIII", 1, mask, 0, len(padded)) + padded


def test_inotify_records_decode():
    buf = _record(ie.IN_MODIFY, b"a.c") + _record(ie.IN_CREATE | ie.IN_ISDIR, b"sub") + \
        _record(ie.IN_DELETE_SELF) + _record(ie.IN_Q_OVERFLOW)
    events = ie.parse_events(buf + b"\1\0")      # a truncated tail is dropped
    assert events == [(1, ie.IN_MODIFY, "a.c"), (1, ie.IN_CREATE | ie.IN_ISDIR, "sub"),
                      (1, ie.IN_DELETE_SELF, ""), (1, ie.IN_Q_OVERFLOW, "")]
    assert [ie.kind_of(m) for _, m, _ in events] == [M, None, ie.GONE, ie.OVERFLOW]
    assert ie.kind_of(ie.IN_MOVED_TO) == C and ie.kind_of(ie.IN_MOVED_FROM) == D
    assert ie.kind_of(ie.IN_CLOSE_WRITE) == M and ie.kind_of(0) is None


def _read_until(w, want, timeout=5.0):
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not set(want) <= set(got):
        got += w.read(0.1)
    return got


def test_real_directories_report_their_saves(tmp_path):
    mine, shared = tmp_path / "mine", tmp_path / "shared"
    mine.mkdir()
    shared.mkdir()
    (mine / "a.c").write_text("int a;\n")
    with DirWatch(mine, shared) as w:
        assert w.read(0.0) == []
        (mine / "a.c").write_text("int a = 1;\n")
        (mine / "b.c").write_text("")
        os.unlink(mine / "b.c")
        (shared / "h.h").write_text("")
        want = [(mine, "a.c", M), (mine, "b.c", C), (mine, "b.c", D), (shared, "h.h", C)]
        assert set(want) <= set(_read_until(w, want))
        (mine / "a.c").unlink()
        mine.rename(tmp_path / "moved")
        assert (mine, "", ie.GONE) in _read_until(w, [(mine, "", ie.GONE)])
    assert w.fd == -1


def test_a_directory_that_cannot_be_watched_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="cannot watch"):
        DirWatch(tmp_path, tmp_path / "missing")
