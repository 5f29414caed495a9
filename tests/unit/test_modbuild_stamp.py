"""The module build's stamp and its sweep (harness/stages/modbuild.py): a work directory
whose source directory is gone (a deleted clone's) is removed with its one-module siblings;
one whose source exists, or that carries no stamp of ours, is left alone."""

import json

from harness.stages import modbuild


def _work(root, name, src):
    d = root / name
    d.mkdir()
    (d / modbuild.STAMP).write_text(json.dumps({"key": "k", "kos": [], "failures": {},
                                                "src": str(src)}))
    return d


def test_the_work_directory_of_a_deleted_clone_is_swept(tmp_path):
    root = tmp_path / "hm-modules"
    root.mkdir()
    live_src = tmp_path / "clone-a" / "modules"
    live_src.mkdir(parents=True)
    live = _work(root, "modules-aaaa", live_src)
    gone = _work(root, "modules-bbbb", tmp_path / "clone-b" / "modules")
    sibling = root / "modules-bbbb-only-cat_x"
    sibling.mkdir()
    unstamped = root / "broken-cccc"
    unstamped.mkdir()
    modbuild._sweep_orphans(root)
    assert live.exists() and unstamped.exists()
    assert not gone.exists() and not sibling.exists()


def test_a_stamp_holds_only_for_the_same_inputs_and_untouched_modules(tmp_path):
    work = tmp_path / "modules-aaaa"
    work.mkdir()
    ko = work / "m.ko"
    ko.write_bytes(b"ko")
    modbuild._stamp(work, "key1", [ko], {"bad": "error: x"}, tmp_path)
    assert modbuild._stamped(work, "key1") == ([ko], {"bad": "error: x"})
    assert modbuild._stamped(work, "key2") is None      # an input changed
    ko.write_bytes(b"rebuilt by hand")
    assert modbuild._stamped(work, "key1") is None      # the .ko is not the one it made
