"""Builds keyed by content (harness/core/modinputs.py and the sync of stages/modbuild.py):
a module's digest follows the bytes of its sources and of the headers they include, of its
directory or of modules/, transitively, and nothing else; the sync copies by content with
the copy's mtime now and deletes the objects of exactly the modules whose inputs changed,
whatever the mtimes say (the user's bug: a .c saved with an mtime older than its .o)."""

import json
import os
import time

from harness.core import modinputs as mi
from harness.core.repo import MODULES_DIR
from harness.stages import modbuild

KBUILD = b"obj-m += a.o\nobj-m += b.o\nobj-m += c.o\nc-y := c1.o c2.o\n"
FILES = {
    "Kbuild": KBUILD,
    "a.c": b'#include "hm_checkpoint.h"\n#include "mine.h"\n#include <linux/module.h>\n',
    "b.c": b'#include "hm_checkpoint.h"\nint b;\n',
    "c1.c": b'  #  include "deep.h"\n',
    "c2.c": b"int c2;\n",
    "mine.h": b'#include "deep.h"\n',
    "deep.h": b"#define DEEP 1\n",
    "unused.h": b"#define UNUSED 1\n",
    "README": b"not an input\n",
}
SHARED = {"hm_checkpoint.h": b'#include "hm_ktap.h"\n', "hm_ktap.h": b"#define K 1\n",
          "deep.h": b"#define SHARED_DEEP 1\n"}


def test_the_inputs_of_a_module_are_its_sources_and_what_they_include():
    assert mi.module_names(KBUILD.decode()) == ["a", "b", "c"]
    assert mi.module_objects("c", KBUILD.decode()) == ["c1", "c2"]
    assert mi.module_inputs("a", FILES, SHARED) == [
        "Kbuild", "a.c", "shared:hm_checkpoint.h", "mine.h", "shared:hm_ktap.h", "deep.h"]
    assert mi.module_inputs("c", FILES, SHARED) == ["Kbuild", "c1.c", "c2.c", "deep.h"]
    assert mi.includes(b'#include "x.h"\n# include <y/z.h>\n// #include "no.h"\n') == \
        ["x.h", "y/z.h"]


def _changed(name, data, shared=False):
    files, sh = dict(FILES), dict(SHARED)
    (sh if shared else files)[name] = data
    before, after = mi.module_digests(FILES, SHARED), mi.module_digests(files, sh)
    return sorted(mi.stale_modules(before, after))


def test_a_digest_changes_with_the_content_of_exactly_its_inputs():
    assert _changed("a.c", FILES["a.c"]) == []                      # same bytes: nothing
    assert _changed("a.c", FILES["a.c"] + b" ") == ["a"]
    assert _changed("deep.h", b"#define DEEP 2\n") == ["a", "c"]    # through mine.h too
    assert _changed("hm_ktap.h", b"#define K 2\n", shared=True) == ["a", "b"]
    assert _changed("deep.h", b"x", shared=True) == []              # the directory's wins
    assert _changed("unused.h", b"changed") == []
    assert _changed("Kbuild", KBUILD + b"ccflags-y += -DX\n") == ["a", "b", "c"]
    assert mi.stale_modules({"a": "d"}, {"a": "d", "b": "e"}) == ["b"]  # no record: build


def test_the_directory_digest_follows_every_input_and_nothing_else():
    d = mi.dir_digest(FILES)
    assert mi.dir_digest(dict(FILES)) == d
    assert mi.dir_digest({**FILES, "README": b"other"}) == d
    assert mi.dir_digest({**FILES, "unused.h": b"other"}) != d
    assert mi.dir_digest({**FILES, "new.c": b""}) != d
    assert mi.dir_digest({k: v for k, v in FILES.items() if k != "c2.c"}) != d


def _tree(tmp_path):
    src, work = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    (src / "Kbuild").write_bytes(b"obj-m += a.o\nobj-m += b.o\n")
    (src / "a.c").write_bytes(b'#include "hm_checkpoint.h"\n#include "a.h"\nint a = 1;\n')
    (src / "a.h").write_bytes(b"#define A 1\n")
    (src / "b.c").write_bytes(b'#include "hm_checkpoint.h"\nint b = 1;\n')
    return src, work


def _built(work, digests):
    """What a make leaves: every module's .o and .ko, then the record."""
    for m in ("a", "b"):
        for suffix in (".o", ".ko", ".mod.c"):
            (work / f"{m}{suffix}").write_bytes(b"obj")
    modbuild._record_inputs(work, digests)


def test_a_source_saved_with_an_old_mtime_is_still_rebuilt(tmp_path):
    src, work = _tree(tmp_path)
    _built(work, modbuild._prepare(src, work))
    assert json.loads((work / modbuild.INPUTS).read_text()).keys() == {"a", "b"}
    # the user's bug: saved while make ran, so its mtime is older than the .o
    old = (work / "a.o").stat().st_mtime - 60
    (src / "a.c").write_bytes(b'#include "hm_checkpoint.h"\n#include "a.h"\nint a = 2;\n')
    os.utime(src / "a.c", (old, old))
    before = time.time()
    modbuild._prepare(src, work)
    assert (work / "a.c").read_bytes().endswith(b"int a = 2;\n")
    assert (work / "a.c").stat().st_mtime >= before - 1      # the copy's mtime is now
    assert not (work / "a.o").exists() and not (work / "a.ko").exists()
    assert (work / "b.o").exists() and (work / "b.ko").exists()  # b did not change
    assert not (work / modbuild.INPUTS).exists()   # until the make is over


def test_a_header_change_rebuilds_the_modules_that_include_it(tmp_path):
    src, work = _tree(tmp_path)
    _built(work, modbuild._prepare(src, work))
    (src / "a.h").write_bytes(b"#define A 2\n")
    digests = modbuild._prepare(src, work)
    assert not (work / "a.o").exists() and (work / "b.o").exists()
    _built(work, digests)
    # a header of modules/ that this user directory includes through -I changes: both
    shared = {n: (MODULES_DIR / n).read_bytes() for n in ("hm_checkpoint.h",)}
    files = modbuild._read_inputs(src)
    now = mi.module_digests(files, shared | {"hm_checkpoint.h": b"changed"})
    assert sorted(mi.stale_modules(digests, now)) == ["a", "b"]


def test_an_unchanged_source_is_not_copied_again_nor_its_objects_deleted(tmp_path):
    src, work = _tree(tmp_path)
    _built(work, modbuild._prepare(src, work))
    copied = (work / "a.c").stat().st_mtime_ns
    os.utime(src / "a.c")  # touched: newer mtime, same content
    modbuild._prepare(src, work)
    assert (work / "a.c").stat().st_mtime_ns == copied
    assert (work / "a.o").exists() and (work / "b.o").exists()


def test_no_record_means_every_object_is_rebuilt(tmp_path):
    src, work = _tree(tmp_path)
    _built(work, modbuild._prepare(src, work))
    (work / modbuild.INPUTS).unlink()   # a make killed before the record was written
    modbuild._prepare(src, work)
    assert not (work / "a.o").exists() and not (work / "b.o").exists()


def test_a_removed_header_is_removed_from_the_copy(tmp_path):
    src, work = _tree(tmp_path)
    _built(work, modbuild._prepare(src, work))
    (src / "a.h").unlink()     # the build must fail as the source tree would, not use a copy
    modbuild._prepare(src, work)
    assert not (work / "a.h").exists() and not (work / "a.o").exists()
    assert (work / "b.o").exists() and (work / "a.c").exists()
