"""Nothing of the user's is ever deleted: ownership is the harness's marker, never a name.
The pure rule (core/ownership.judge) reason by reason, then `highmem clean`, `highmem
status` and the socket sweeps over a throwaway $HOME-like tree planted with look-alike
names, foreign and copied markers, symlinks and planted warm.json records."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core import ownership as own
from harness.core.ownership import DirFacts, Marker, judge, parse_marker
from harness.workflows.warm.model import WarmRecord
from harness.frontends import cli
from harness.stages import owned, paths
from harness.workflows.warm import record as warm_record
from harness.stages.sockdir import OWNER, sweep_stale

UID = os.getuid()


def made_by_a_finished_run(root: Path, tags: list[str]) -> list[Path]:
    """Run directories made by new_run_dir in a process that has exited (its lock gone)."""
    code = ("import sys; from pathlib import Path; from harness.stages.paths import "
            "new_run_dir\nfor t in sys.argv[2:]: print(new_run_dir(t, Path(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(root), *tags], check=True,
                         capture_output=True, text=True).stdout
    return [Path(line) for line in out.split()]


def _marker(**kw: object) -> str:
    base = dict(kind="run", uid=UID, pid=1, started="5", ino=7, dev=8)
    return Marker(**{**base, **kw}).to_json()  # type: ignore[arg-type]


def _facts(**kw: object) -> DirFacts:
    base: dict = dict(kind_of_entry="dir", uid=UID, ino=7, dev=8, marker_text=_marker())
    return DirFacts(**{**base, **kw})


# --- the pure rule ---

@pytest.mark.parametrize("facts, why", [
    (_facts(), "ours"),
    (_facts(kind_of_entry="symlink", marker_text=None), "symlink"),
    (_facts(kind_of_entry="other", marker_text=None), "not-a-directory"),
    (_facts(kind_of_entry="missing", marker_text=None), "missing"),
    (_facts(marker_text=None), "no-marker"),
    (_facts(marker_text="owner 123\n"), "bad-marker"),
    (_facts(marker_text=_marker(uid=UID + 1)), "other-uid"),
    (_facts(uid=UID + 1), "other-uid"),
    (_facts(ino=99), "copied"),
    (_facts(marker_text=_marker(kind="socket")), "wrong-kind"),
    (_facts(locked=True), "in-use"),
    (_facts(creator_alive=True), "ours"),  # a run directory outlives its maker: its lock counts
])
def test_judge(facts, why):
    v = judge(facts, UID, ("run", "warm"))
    assert (v.remove, v.why) == (why == "ours", why)
    assert v.reason


def test_a_socket_directory_is_in_use_while_its_maker_lives():
    f = _facts(marker_text=_marker(kind="socket"), creator_alive=True)
    assert judge(f, UID, ("socket",)).why == "creator-alive"
    assert judge(_facts(marker_text=_marker(kind="socket")), UID, ("socket",)).remove


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "x" * 5000,
                                  json.dumps({"harness": "other", "kind": "run"}),
                                  _marker().replace('"pid": 1', '"pid": "1"'),
                                  _marker().replace('"pid": 1', '"pid": true'),
                                  _marker(kind="photos")])
def test_parse_marker_refuses_what_we_did_not_write(text):
    assert parse_marker(text) is None


def test_parse_marker_reads_ours():
    assert parse_marker(_marker()) == Marker("run", UID, 1, "5", 7, 8)


# --- on disk ---

def test_new_run_dir_marks_and_locks(tmp_path):
    d = paths.new_run_dir("run", tmp_path)
    m = parse_marker((d / own.MARKER).read_text())
    assert m is not None and (m.kind, m.uid, m.pid) == ("run", UID, os.getpid())
    assert (m.ino, m.dev) == (d.stat().st_ino, d.stat().st_dev)
    assert owned.examine(d, paths.RUN_KINDS).why == "in-use"
    assert not owned.remove_owned(d, paths.RUN_KINDS).remove and d.is_dir()
    owned.release(d)
    assert owned.remove_owned(d, paths.RUN_KINDS).remove and not d.exists()
    assert paths.new_run_dir("warm", tmp_path).name.startswith("warm-")


def _plant(home: Path, outside: Path) -> dict[str, Path]:
    """The user's things in $HOME: look-alike names, markers not ours, symlinks."""
    planted = {}
    for name in ["backup-20240101-120000-1", "photos-20231224-093000-0",
                 "run-20240101-120000-1", "warm-20240101-120000-0"]:
        (home / name).mkdir(parents=True)
        (home / name / "precious.txt").write_text("the user's")
        planted[name] = home / name
    real = made_by_a_finished_run(outside, ["run", "run"])
    # a copy of a real run directory (cp -r: the same marker text, another inode)
    planted["copy"] = home / "run-copy"
    shutil.copytree(real[0], planted["copy"])
    # a marker naming another uid, for this directory's inode
    foreign = home / "foreign"
    foreign.mkdir()
    st = foreign.stat()
    (foreign / own.MARKER).write_text(_marker(uid=UID + 1, ino=st.st_ino, dev=st.st_dev))
    planted["foreign"] = foreign
    # the marker a symlink to a real one
    linked = home / "linked-marker"
    linked.mkdir()
    os.symlink(real[1] / own.MARKER, linked / own.MARKER)
    planted["linked"] = linked
    # a symlink with a run directory's name to a finished run directory outside
    os.symlink(real[1], home / "run-20240102-120000-0")
    planted["link-target"] = real[1]
    # a warm record naming a dead pid and a "socket" in a user's directory with an owner file
    stuff = home / "stuff"
    stuff.mkdir()
    (stuff / OWNER).write_text("999999999 1\n")
    (stuff / "thesis.tex").write_text("the user's")
    planted["stuff"] = stuff
    rec = WarmRecord(pid=999999999, started="1", run_dir=str(home / "warm-20240101-120000-0"),
                     socket=str(stuff / "warm.sock"))
    (home / "warm-20240101-120000-0" / "warm.json").write_text(rec.to_json())
    planted["warm.json"] = home / "warm-20240101-120000-0" / "warm.json"
    return planted


def test_clean_and_status_delete_nothing_of_the_users(tmp_path, monkeypatch, capsys):
    home, outside = tmp_path / "home", tmp_path / "outside"
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(home))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    planted = _plant(home, outside)
    ours = made_by_a_finished_run(home, ["run", "pytest-gw1"])
    live = paths.new_run_dir("run", home)  # this process's run: in use
    assert cli.main(["status"]) == 0
    assert cli.main(["clean"]) == 0
    out = capsys.readouterr().out
    assert all(p.exists() for p in planted.values()), out
    assert (planted["stuff"] / "thesis.tex").read_text() == "the user's"
    assert not any(d.exists() for d in ours)
    assert live.is_dir() and f"leaving {live} alone: in use by a live run" in out
    assert "removed 2 run directories" in out
    assert "run-20240101-120000-1" in out and "without a .highmem-run marker" in out
    assert "not in a directory this harness made: left alone" in out
    owned.release(live)
    assert cli.main(["clean"]) == 0 and not live.exists()


def test_a_stale_record_of_ours_never_removes_a_users_socket_dir(tmp_path):
    """The record is in a warm directory of ours, but the socket it names is in a user's
    directory with an `owner` file: the record goes, the directory stays."""
    [warm] = made_by_a_finished_run(tmp_path, ["warm"])
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / OWNER).write_text("999999999 1\n")
    rec = WarmRecord(pid=999999999, started="1", run_dir=str(warm),
                     socket=str(stuff / "warm.sock"))
    path = warm_record.write_record(warm, rec)
    assert warm_record.live_records(tmp_path) == []
    assert not path.exists() and (stuff / OWNER).exists()


def test_sweeps_remove_only_marked_orphans(tmp_path):
    """hm-* directories with an owner file naming a dead pid, a symlink, another kind's
    marker: all stay; only an orphan the harness made goes."""
    code = ("import sys; from pathlib import Path; from harness.stages.sockdir import "
            "make_sockdir; print(make_sockdir(Path(sys.argv[1])))")
    orphan = Path(subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True,
                                 capture_output=True, text=True).stdout.strip())
    lookalike = tmp_path / "hm-lookalike"
    lookalike.mkdir()
    (lookalike / OWNER).write_text("999999999 1\n")
    os.symlink(orphan, tmp_path / "hm-link")
    [run] = made_by_a_finished_run(tmp_path, ["run"])
    os.rename(run, tmp_path / "hm-run")  # a run directory's marker: not a socket's
    assert sweep_stale(tmp_path) == [orphan]
    assert lookalike.is_dir() and (tmp_path / "hm-run").is_dir()
    assert (tmp_path / "hm-link").is_symlink()


def test_clean_never_follows_a_symlink_out_of_a_run_dir(tmp_path, monkeypatch, capsys):
    """A finished run directory of ours whose `sockets` link points at a user's directory,
    and one with a tmpfs mounted inside: the link goes with the run directory, the user's
    directory and the mount's files stay."""
    art, outside = tmp_path / "art", tmp_path / "outside"
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(art))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep.txt").write_text("the user's")
    linked, mounted = made_by_a_finished_run(art, ["run", "run"])
    os.symlink(outside, linked / "sockets")
    os.symlink(outside / "sub" / "keep.txt", linked / "file-link")
    inner = mounted / "mnt"
    inner.mkdir()
    mount = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(inner)],
        capture_output=True).returncode == 0
    try:
        if mount:
            (inner / "data").write_text("on the mount")
        assert cli.main(["clean"]) == 0
        assert not linked.exists() and (outside / "sub" / "keep.txt").read_text() == "the user's"
        if mount:
            assert (inner / "data").read_text() == "on the mount"
            assert "something is mounted inside it" in capsys.readouterr().out
    finally:
        if mount:
            subprocess.run(["umount", str(inner)], check=True)
