"""What a test module is built from, by content: the files of its directory that kbuild
reads for it (its .c sources, the local headers they include, transitively, and the
Kbuild/Makefile), and a digest of their bytes. The module build (stages/modbuild.py)
compares these digests with the ones its objects were built from, so a module whose inputs
changed is rebuilt whatever the files' mtimes say; `highmem watch` names a save by the
digest of the whole directory. No I/O: the files come in as {name: bytes}.
"""

import hashlib
import re

INPUT_SUFFIXES = (".c", ".h")
INPUT_NAMES = ("Kbuild", "Makefile")
# `#include "hm_checkpoint.h"` or `#include <hm_checkpoint.h>` (found through -I modules/)
INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*["<]([^">]+)[">]', re.M)
OBJ_M = re.compile(r"^\s*obj-m\s*[+:]?=\s*(.+)$", re.M)
# a composite module's objects: name-y := a.o b.o (or name-objs, name-m)
PARTS = re.compile(r"^\s*([A-Za-z0-9_]+)-(?:y|objs|m)\s*[+:]?=\s*(.+)$", re.M)

Files = dict[str, bytes]


def is_input(name: str) -> bool:
    """Whether a file of a module directory is one kbuild may read to build a module."""
    return name.endswith(INPUT_SUFFIXES) or name in INPUT_NAMES


def kbuild_text(files: Files) -> str:
    return "".join(files[n].decode(errors="replace") for n in INPUT_NAMES if n in files)


def module_names(kbuild: str) -> list[str]:
    """The modules a Kbuild (or Makefile) text lists in obj-m, in order."""
    return [w[:-2] for m in OBJ_M.finditer(kbuild) for w in m.group(1).split()
            if w.endswith(".o")]


def module_objects(name: str, kbuild: str) -> list[str]:
    """The objects (.o names, without the suffix) module `name` links: its `name-y` /
    `name-objs` list, else `name` itself (name.c -> name.o)."""
    parts = [w[:-2] for m in PARTS.finditer(kbuild) if m.group(1) == name
             for w in m.group(2).split() if w.endswith(".o")]
    return parts or [name]


def includes(text: bytes) -> list[str]:
    """The file names a C text #includes (quoted or bracketed), in order."""
    return [m.group(1).decode(errors="replace") for m in INCLUDE.finditer(text)]


def module_inputs(name: str, files: Files, shared: Files | None = None) -> list[str]:
    """The input files of module `name`: its sources, the headers they include that are in
    its directory (`files`) or in `shared` (modules/, which a user directory includes
    through -I), transitively, and the Kbuild/Makefile. A name found in neither is a kernel
    header (the kernel build's own make keeps track of those). A header of `shared` comes
    out as `shared:NAME`."""
    shared = shared or {}
    out = [n for n in INPUT_NAMES if n in files]
    todo = [f"{o}.c" for o in module_objects(name, kbuild_text(files)) if f"{o}.c" in files]
    seen: set[str] = set()
    while todo:
        f = todo.pop(0)
        if f in seen:
            continue
        seen.add(f)
        out.append(f)
        text = shared[f[7:]] if f.startswith("shared:") else files[f]
        for inc in includes(text):
            base = inc.rsplit("/", 1)[-1] if inc.startswith("./") else inc
            if base in files and not f.startswith("shared:"):
                todo.append(base)
            elif base in shared:
                todo.append(f"shared:{base}")
    return out


def _digest_of(names: list[str], files: Files, shared: Files) -> str:
    h = hashlib.sha256()
    for n in names:
        data = shared[n[7:]] if n.startswith("shared:") else files[n]
        h.update(f"{n}\0{len(data)}\0".encode() + data)
    return h.hexdigest()


def module_digests(files: Files, shared: Files | None = None) -> dict[str, str]:
    """{module name: sha256 of its inputs' names and bytes} for every module of obj-m."""
    shared = shared or {}
    return {m: _digest_of(module_inputs(m, files, shared), files, shared)
            for m in module_names(kbuild_text(files))}


def dir_digest(files: Files) -> str:
    """sha256 of every input file of a directory (names and bytes): equal iff no input's
    content changed, was added or removed."""
    return _digest_of(sorted(n for n in files if is_input(n)), files, {})


def stale_modules(built: dict[str, str], now: dict[str, str]) -> list[str]:
    """The modules whose inputs differ from the ones their objects were built from
    (`built`, recorded after the last make), or that have no record: to rebuild."""
    return [m for m in now if built.get(m) != now[m]]
