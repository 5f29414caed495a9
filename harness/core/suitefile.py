"""YAML suite files: which modules to run, with what parameters, expecting which kernel
messages. Loaded with yaml.safe_load's composer so every error names its file and line.

    modules:
      - name: kmap_local_misuse          # a .c in modules/, or in `dir`
        params: which=order              # insmod parameters
        expect: ['kernel BUG at mm/highmem\\.c:\\d+!']   # must appear in the kernel log
        allow: ['__kmap_local_sched_out']  # may appear (aftermath)
        crashes: true                    # insmod dies in the kernel: reboot after
        timeout: 120                     # seconds (default: the top-level timeout)
        dir: ../my-modules               # a user's module directory (relative to this file)
    configs: [debug-kmap-local]          # extra Kconfig fragments (kernel-configs/ or paths)
    timeout: 300
"""

import errno
import os
import re
import stat
from pathlib import Path

import yaml

from .errors import HarnessError
from .repo import MODULES_DIR, SUITES_DIR
from .suite import MODULE_TIMEOUT_S, ModuleSpec, params_problem

OWN_ONLY = ("hm_checkpoint", "hm_hold")   # the harness's own modules: never run as tests

TOP_KEYS = {"modules": "list", "configs": "list of fragment names", "timeout": "seconds",
            "description": "text"}
MODULE_KEYS = {"name": "str", "params": "str", "expect": "list", "allow": "list",
               "crashes": "bool", "timeout": "number", "dir": "str"}
DEFAULT_SUITE_FILE = SUITES_DIR / "default.yaml"
MAX_FILE_BYTES = 1 << 20    # a suite or matrix file; more is not one (`highmem run /dev/zero`)


class SuiteError(HarnessError):
    """A suite file that cannot be used: file:line, what is wrong, what to write."""


def _err(path: Path, node: yaml.Node | None, what: str, fix: str) -> SuiteError:
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    return SuiteError(f"{path}{line}: {what}", fix)


def _scalar(path: Path, node: yaml.Node, key: str, kind: str) -> object:
    if not isinstance(node, yaml.ScalarNode):
        raise _err(path, node, f"'{key}' must be a {kind}", f"write {key}: <{kind}>")
    value = yaml.safe_load(yaml.serialize(node))
    ok = {"str": isinstance(value, (str, int, float)) and not isinstance(value, bool),
          "bool": isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0}
    if not ok.get(kind, True):
        raise _err(path, node, f"'{key}' must be a {kind}, got {value!r}",
                   f"write e.g. {key}: " + {"bool": "true", "number": "120",
                                            "str": "name"}.get(kind, "..."))
    return str(value) if kind == "str" else value


def _strings(path: Path, node: yaml.Node, key: str) -> tuple[str, ...]:
    if isinstance(node, yaml.ScalarNode):
        node = yaml.SequenceNode("tag:yaml.org,2002:seq", [node], node.start_mark, node.end_mark)
    if not isinstance(node, yaml.SequenceNode):
        raise _err(path, node, f"'{key}' must be a list of regular expressions",
                   f"write {key}: ['kernel BUG at mm/highmem\\.c']")
    out = []
    for item in node.value:
        text = str(_scalar(path, item, key, "str"))
        try:
            re.compile(text)
        except re.error as e:
            raise _err(path, item, f"'{key}' entry {text!r} is not a regular expression: {e}",
                       "escape special characters with \\\\") from None
        out.append(text)
    return tuple(out)


def _pairs(path: Path, node: yaml.Node, keys: dict[str, str], where: str):  # type: ignore[no-untyped-def]
    if not isinstance(node, yaml.MappingNode):
        raise _err(path, node, f"{where} must be a mapping", f"write keys: {', '.join(keys)}")
    seen: dict[str, yaml.Node] = {}
    for k, v in node.value:
        key = str(k.value)
        if key not in keys:
            raise _err(path, k, f"unknown key '{key}' in {where}",
                       f"use one of: {', '.join(keys)}")
        if key in seen:
            raise _err(path, k, f"duplicate key '{key}' (first on line "
                       f"{seen[key].start_mark.line + 1})", f"keep one '{key}:' in {where}")
        seen[key] = k
        yield key, k, v


def _module(path: Path, node: yaml.Node, timeout: float) -> tuple[ModuleSpec, Path | None]:
    f: dict[str, object] = {}
    for key, _k, v in _pairs(path, node, MODULE_KEYS, "a module entry"):
        if key in ("expect", "allow"):
            f[key] = _strings(path, v, key)
        else:
            f[key] = _scalar(path, v, key, MODULE_KEYS[key])
        problem = params_problem(str(f[key])) if key == "params" else None
        if problem:
            raise _err(path, v, f"'params': {problem}",
                       "write space-separated KEY=VALUE words, e.g. params: which=order n=3")
    if "name" not in f:
        raise _err(path, node, "a module entry has no 'name'", "add name: <module>")
    name = str(f["name"])
    mdir = resolved(path, node, path.parent / str(f["dir"]), "dir") if "dir" in f else None
    src = (mdir or MODULES_DIR) / f"{name}.c"
    if not src.exists():
        raise _err(path, node, f"module '{name}' not found: no {src}",
                   f"check the name, or set dir: to the directory holding {name}.c")
    spec = ModuleSpec(name=name, params=str(f.get("params", "")),
                      expect_log=f.get("expect", ()),  # type: ignore[arg-type]
                      crashes=bool(f.get("crashes", False)),
                      timeout=float(f.get("timeout", timeout)),  # type: ignore[arg-type]
                      allow_log=f.get("allow", ()))  # type: ignore[arg-type]
    return spec, mdir


def resolved(path: Path, node: yaml.Node | None, p: Path, key: str) -> Path:
    """`p` (a path the file at `path` names under `key`) with its symlinks resolved;
    SuiteError when they loop (Path.resolve's RuntimeError, or ELOOP)."""
    try:
        return p.resolve()
    except RuntimeError:
        pass
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise _err(path, node, f"'{key}' {p}: {e.strerror}",
                       f"check the path given as {key}:") from None
    raise _err(path, node, f"'{key}' {p} is a symlink loop",
               f"point {key}: at a real directory (ls -l {p})")


def _kind(mode: int) -> str:
    return {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
            stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}.get(stat.S_IFMT(mode), "special file")


def _read_bounded(path: Path) -> bytes:
    """At most MAX_FILE_BYTES of a regular file (opened without blocking on a FIFO);
    SuiteError for a directory, a device, a FIFO, a larger file; OSError as open raises."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            yamls = sorted(p.name for p in path.glob("*.yaml"))
            raise SuiteError(f"suite file {path} is a directory",
                             f"pass a YAML file in it ({', '.join(yamls)})" if yamls
                             else "pass a YAML file, e.g. suites/default.yaml")
        if not stat.S_ISREG(st.st_mode):
            raise SuiteError(f"suite file {path} is not a regular file (a {_kind(st.st_mode)})",
                             "pass a YAML file, e.g. suites/default.yaml")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise SuiteError(f"suite file {path} is larger than {MAX_FILE_BYTES >> 20} MiB: not a "
                         "suite or matrix file", "pass a YAML file, e.g. suites/default.yaml")
    return b"".join(chunks)


def _read(path: Path) -> str:
    """The text of a suite file (at most MAX_FILE_BYTES, a regular file); SuiteError if it
    is a directory, a device or FIFO, too large, unreadable or not UTF-8."""
    try:
        data = _read_bounded(path)
    except OSError as e:
        raise SuiteError(f"cannot read suite file {path}: {e.strerror}",
                         "pass an existing YAML file, e.g. suites/default.yaml") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SuiteError(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x})",
                         "save the suite file as UTF-8") from None


def compose(path: Path, main_key: str) -> yaml.Node:
    """The YAML node tree of a suite or matrix file (line numbers kept); SuiteError with
    file:line when it cannot be read, is not YAML, or is empty (`main_key`: the list the
    file needs)."""
    try:
        root = yaml.compose(_read(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SuiteError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})",
                         "fix the YAML syntax (indentation, quotes, colons)") from None
    if root is None:
        raise SuiteError(f"{path}: the file is empty", f"add a '{main_key}:' list")
    return root


def load_suite(path: Path) -> tuple[tuple[ModuleSpec, ...], list[str], dict[str, Path]]:
    """(specs, extra Kconfig fragments, {module name: user directory}) of a suite file."""
    root = compose(path, "modules")
    timeout, configs, mods = MODULE_TIMEOUT_S, [], None
    for key, _k, v in _pairs(path, root, TOP_KEYS, "the suite file"):
        if key == "timeout":
            timeout = float(_scalar(path, v, key, "number"))  # type: ignore[arg-type]
        elif key == "configs":
            configs = list(_strings(path, v, key))
        elif key == "modules":
            mods = v
    if not isinstance(mods, yaml.SequenceNode) or not mods.value:
        raise _err(path, mods or root, "'modules' must be a non-empty list",
                   "write modules: [{name: kmap_local_basic}]")
    specs, dirs = [], {}
    where: dict[str, Path] = {}  # name -> the directory its first entry takes it from
    for item in mods.value:
        spec, mdir = _module(path, item, timeout)
        first = where.setdefault(spec.name, mdir or MODULES_DIR)
        if first != (mdir or MODULES_DIR):
            raise _err(path, item, f"two modules named '{spec.name}': from {first} and from "
                       f"{mdir or MODULES_DIR} (the guest loads one {spec.name}.ko; the "
                       "second would silently run the first one's code)",
                       "rename one of them (its .c and its obj-m line)")
        if mdir is None and spec.name in OWN_ONLY:
            raise _err(path, item, f"'{spec.name}' is the harness's own module, not a test",
                       "name a test module (ls modules/*.c)")
        specs.append(spec)
        if mdir is not None:
            dirs[spec.name] = mdir
    return tuple(specs), configs, dirs
