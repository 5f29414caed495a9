"""Modules stage: build our test modules (modules/) or a user's out of tree, against the
kernel under test. Sources are copied into the build directory first, so the repository (or
the user's directory) gets no build litter and each kernel has its own objects.
"""

import hashlib
import json
import re
import shutil
import subprocess
from glob import escape as glob_escape
from pathlib import Path

from ..core.errors import BuildError
from ..core.modinputs import (is_input, kbuild_text, module_digests, module_objects,
                               stale_modules)
from ..core.modinputs import module_names as names_in_kbuild
from ..core.repo import MODULES_DIR
from .build import KernelBuild, compiler
from .buildlock import build_lock
from .progress import say

CORE = "hm_checkpoint"


def _read_inputs(d: Path) -> dict[str, bytes]:
    """The input files of a module directory: name -> bytes."""
    out = {}
    for f in sorted(d.iterdir()):
        if is_input(f.name) and f.is_file():
            try:
                out[f.name] = f.read_bytes()
            except OSError:
                continue  # removed meanwhile
    return out


def _sync(src: Path, dst: Path) -> dict[str, bytes]:
    """Copy the sources whose content differs from the copy's, with the copy's mtime now
    (not the source's: a file saved while the previous make ran has an mtime older than the
    .o that make wrote, and make would keep that .o); remove the copies of removed sources.
    Returns what was copied from: the build reads these bytes (a save during the make
    changes the source, not the copy)."""
    dst.mkdir(parents=True, exist_ok=True)
    files = _read_inputs(src)
    for name, data in files.items():
        t = dst / name
        try:
            same = t.read_bytes() == data
        except OSError:
            same = False
        if not same:
            tmp = dst / f".{name}.hm-tmp"
            tmp.write_bytes(data)
            tmp.replace(t)
    for t in dst.iterdir():  # a source removed: its copy goes (the build must not find it)
        if is_input(t.name) and t.name not in files and t.is_file():
            t.unlink()
    return files


STALE_OUTPUTS = (".o", ".ko", ".mod.o", ".mod.c", ".mod")


def _forget_stale(src: Path, dst: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Delete the objects of every module whose inputs (its sources, the headers they
    include, of its directory or of modules/) differ by content from what its objects
    were built from (the last make's record in INPUTS), so make rebuilds them whatever
    the mtimes: a header of modules/ is read in place by a user directory's build, where
    no copy's mtime can tell make. Returns the digests now, recorded after the make."""
    shared = {} if src.resolve() == MODULES_DIR.resolve() else \
        {n: b for n, b in _read_inputs(MODULES_DIR).items() if n.endswith(".h")}
    now = module_digests(files, shared)
    try:
        built = json.loads((dst / INPUTS).read_text())
        built = built if isinstance(built, dict) else {}
    except (OSError, ValueError):
        built = {}
    kbuild = kbuild_text(files)
    for m in stale_modules(built, now):
        for stem in dict.fromkeys([m, *module_objects(m, kbuild)]):
            for suffix in STALE_OUTPUTS:
                (dst / f"{stem}{suffix}").unlink(missing_ok=True)
    (dst / INPUTS).unlink(missing_ok=True)  # rewritten once the make is over
    return now


def _record_inputs(dst: Path, digests: dict[str, str]) -> None:
    """What the objects in `dst` were built from (after a make, failed or not: a module
    that did not compile has no object, so make compiles it next time)."""
    tmp = dst / f".{INPUTS}.tmp"
    tmp.write_text(json.dumps(digests))
    tmp.replace(dst / INPUTS)


def _prepare(src: Path, dst: Path) -> dict[str, str]:
    return _forget_stale(src, dst, _sync(src, dst))


def build_modules(kb: KernelBuild, src: Path = MODULES_DIR,
                  extra_symbols: Path | None = None) -> tuple[list[Path], dict[str, str]]:
    """Run `make M=` for one module directory: (the .ko files, {module: why not built}).

    A user's directory gets `-I modules/` (for hm_checkpoint.h) and our Module.symvers (for
    hm_checkpoint()) so it can call the checkpoint API without copying anything.
    """
    if not (src / "Kbuild").exists() and not (src / "Makefile").exists():
        raise BuildError(f"{src} has no Kbuild or Makefile",
                         "add a Kbuild file with 'obj-m += your_module.o'")
    work = _work_dir(kb, src)
    with build_lock(kb.build_dir):
        _sweep_orphans(work.parent)
        digests = _prepare(src, work)
        key = _inputs_key(kb, digests, extra_symbols,
                          _make_argv(kb, work, extra_symbols, src.name), src)
        done = _stamped(work, key)
        if done is not None:
            _record_inputs(work, digests)
            kos, failures = done
            say(f"  modules up to date: {', '.join(k.name for k in kos)}"
                + (f"; not built: {', '.join(failures)}" if failures else ""))
            return done
        kos, failures = _make_modules(kb, src, work, extra_symbols, digests)
        _stamp(work, key, kos, failures, src)
        return kos, failures


STAMP = ".hm-modules.json"
INPUTS = ".hm-inputs.json"  # module -> digest of the inputs its objects were built from


def _inputs_key(kb: KernelBuild, digests: dict[str, str], extra_symbols: Path | None,
                argv: list[str], src: Path) -> str:
    """Everything a `make M=` of `src` depends on: its modules' input digests (content:
    the sources, the headers they include, ours of modules/ included), the kernel's vmlinux
    (size and mtime: only the kernel's make writes it) and Module.symvers, hm_checkpoint's
    symbols (content), the make command line. When none changed, make would do nothing
    (and takes 1-2 s to say so)."""
    h = hashlib.sha256(f"{src.resolve()}|{' '.join(argv)}\n".encode())
    h.update(json.dumps(digests, sort_keys=True).encode())
    for f in (kb.build_dir / "Module.symvers", extra_symbols):
        if f is not None:
            try:
                h.update(f"{f}|".encode() + hashlib.sha256(f.read_bytes()).digest())
            except OSError:
                h.update(f"{f}|missing\n".encode())
    try:
        st = kb.vmlinux.stat()
        h.update(f"{kb.vmlinux}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    except OSError:
        h.update(f"{kb.vmlinux}|missing\n".encode())
    return h.hexdigest()


def _stamped(work: Path, key: str) -> tuple[list[Path], dict[str, str]] | None:
    """The last build's result if it was made from the same inputs and its .ko files are
    the ones it made (same size and mtime); else None."""
    try:
        d = json.loads((work / STAMP).read_text())
        if d["key"] != key:
            return None
        kos = [Path(k["path"]) for k in d["kos"]]
        for k, ko in zip(d["kos"], kos):
            st = ko.stat()
            if (st.st_size, st.st_mtime_ns) != (k["size"], k["mtime_ns"]):
                return None
        return kos, dict(d["failures"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _sweep_orphans(root: Path) -> None:
    """Remove the work directories (and their one-module siblings) whose source directory
    is gone: a deleted clone's (CI clones one per run). Only directories with our stamp
    naming a source are touched."""
    for stamp in root.glob(f"*/{STAMP}"):
        try:
            src = Path(json.loads(stamp.read_text())["src"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if src.is_absolute() and not src.exists():
            work = stamp.parent
            for d in [work, *root.glob(f"{glob_escape(work.name)}-only-*")]:
                shutil.rmtree(d, ignore_errors=True)


def _stamp(work: Path, key: str, kos: list[Path], failures: dict[str, str],
           src: Path) -> None:
    entries = [{"path": str(k), "size": k.stat().st_size, "mtime_ns": k.stat().st_mtime_ns}
               for k in kos]
    tmp = work / f".{STAMP}.tmp"
    tmp.write_text(json.dumps({"key": key, "kos": entries, "failures": failures,
                               "src": str(src.resolve())}))
    tmp.replace(work / STAMP)


OBJ_M = re.compile(r"^\s*obj-m\s*[+:]?=\s*(.+)$", re.M)
ASSIGNMENT = re.compile(r"^\s*[A-Za-z0-9_.-]+\s*[:+?]?=")  # name-y, ccflags-y, ... (no rules)
COMPILER_ERROR = re.compile(r"^(\S+:\d+:\d+: (?:fatal )?error: .*|ERROR: modpost: .*)$", re.M)


def module_names(src: Path) -> list[str]:
    """The modules a directory's Kbuild (or Makefile) lists in obj-m, in order."""
    return names_in_kbuild("".join(f.read_text(errors="replace")
                                   for f in (src / "Kbuild", src / "Makefile") if f.exists()))


def first_error(log_text: str) -> str:
    """The compiler's (or modpost's) first error line of a build log."""
    m = COMPILER_ERROR.search(log_text)
    if m:
        return m.group(1).strip()
    lines = [x for x in log_text.splitlines() if x.strip()]
    return lines[-1].strip() if lines else "(empty build log)"


def _make_argv(kb: KernelBuild, work: Path, extra_symbols: Path | None,
               label: str) -> list[str]:
    """make M=work. The file prefix maps keep this checkout's and this build directory's
    paths out of the .ko (its DWARF and BUG()'s __FILE__ name `label/file.c` and
    `modules/hm_checkpoint.h`; the kernel's headers keep their paths in the shared cache):
    two clones build byte-identical modules, so they share the image and its snapshot."""
    flags = (f"-I{MODULES_DIR} -ffile-prefix-map={kb.build_dir}=. "  # gcc's cwd
             f"-ffile-prefix-map={work}={label} "  # the later map wins for the work dir
             f"-ffile-prefix-map={MODULES_DIR}=modules")
    argv = ["make", "-C", str(kb.build_dir), f"M={work}", "ARCH=i386", f"CC={compiler()}",
            f"KCFLAGS={flags}", "modules"]
    if extra_symbols is not None:
        argv.append(f"KBUILD_EXTRA_SYMBOLS={extra_symbols}")
    return argv


def _make(kb: KernelBuild, work: Path, extra_symbols: Path | None,
          label: str) -> tuple[int, Path]:
    log = work / "build.log"
    with log.open("w") as f:
        r = subprocess.run(_make_argv(kb, work, extra_symbols, label), stdout=f,
                           stderr=subprocess.STDOUT, timeout=600)
    return r.returncode, log


def _make_modules(kb: KernelBuild, src: Path, work: Path, extra_symbols: Path | None,
                  digests: dict[str, str]) -> tuple[list[Path], dict[str, str]]:
    """All modules of the directory in one make; if that fails, each one on its own, so a
    module that does not compile fails alone: ({.ko}, {module name: first error})."""
    rc, log = _make(kb, work, extra_symbols, src.name)
    _record_inputs(work, digests)
    failures: dict[str, str] = {}
    if rc != 0:
        say(f"  building {src} failed: building its modules one by one (log: {log})")
        kos: list[Path] = []
        for name in module_names(src):  # hm_checkpoint is first in modules/Kbuild
            one = _only_dir(work, name)
            files = _sync(src, one)
            _kbuild_for_one(src, one, name)
            one_digests = _forget_stale(src, one, files)
            rc1, log1 = _make(kb, one, extra_symbols, src.name)
            _record_inputs(one, one_digests)
            ko = one / f"{name}.ko"
            if rc1 == 0 and ko.exists():
                kos.append(ko)
                if name == CORE:  # the others link against its hm_checkpoint()
                    extra_symbols = one / "Module.symvers"
            elif name == CORE:
                raise BuildError(f"{CORE}.ko does not build against this kernel: "
                                 f"{first_error(log1.read_text(errors='replace'))}",
                                 f"read {log1}")
            else:
                err = first_error(log1.read_text(errors="replace")).replace(f"{one}/", f"{src}/")
                failures[name] = f"{err} (log: {log1})"
        if not kos and not failures:
            raise BuildError(f"building the modules in {src} failed: "
                             f"{first_error(log.read_text(errors='replace'))}", f"read {log}")
    else:
        kos = sorted(work.glob("*.ko"))
    say(f"  modules: {', '.join(k.name for k in kos)}"
        + (f"; not built: {', '.join(failures)}" if failures else ""))
    return kos, failures


def _work_dir(kb: KernelBuild, src: Path) -> Path:
    """Per kernel build and per source directory (two clones must not share objects)."""
    real = src.resolve()
    tag = hashlib.sha256(str(real).encode()).hexdigest()[:8]
    return kb.build_dir / "hm-modules" / f"{real.name}-{tag}"


def _kbuild_for_one(src: Path, one: Path, name: str) -> None:
    """A Kbuild for `name` alone: obj-m := name.o, the directory's other lines kept (a
    composite module's name-y lines, flags)."""
    text = "".join(f.read_text(errors="replace") for f in (src / "Kbuild", src / "Makefile")
                   if f.exists())
    rest = [line for line in text.splitlines()
            if ASSIGNMENT.match(line) and not OBJ_M.match(line)]
    (one / "Kbuild").write_text("\n".join([f"obj-m := {name}.o", *rest]) + "\n")


def _only_dir(work: Path, name: str) -> Path:
    return work.parent / f"{work.name}-only-{name}"


def symvers(kb: KernelBuild) -> Path:
    """hm_checkpoint's Module.symvers (from the whole-directory build, or its own)."""
    work = _work_dir(kb, MODULES_DIR)
    whole, alone = work / "Module.symvers", _only_dir(work, CORE) / "Module.symvers"
    if alone.exists() and (not whole.exists() or alone.stat().st_mtime > whole.stat().st_mtime):
        return alone
    return whole
