"""Kernel matrix files: the kernels and guests one suite runs on, one cell each. Loaded like
suite files (suitefile.py): YAML composed node by node, so every error names file:line.

    description: what this matrix is for
    suite: ../suites/default.yaml        # relative to this file (default: suites/default.yaml)
    cells:
      - {}                               # 6.12, highmem64g.config, 8G, 2 CPUs: `make run`
      - configs: [highmem4g]             # fragments merged after highmem64g.config
        memory: 4G
      - source: "6.1"                    # Debian's linux-source-6.1 (or a tree / tarball)
        smp: 4
        modules: [kmap_local_basic]      # a subset of the suite's modules (by name)
        id: my-cell                      # default: 6.1-highmem64g-smp4-8G

A cell's id is `<source>-<fragments>-smp<N>-<memory>`, e.g. `6.12-highmem4g-smp2-4G`: the
fragment names after the profile's, or the profile's last fragment when there are none
(`highmem64g` for 6.1-6.14, `pae4g` from 6.15: core/profile.py). A cell's memory defaults
to its profile's (8G, or 4G from 6.15). Sources from 6.15 on are not in Debian stable: a
cell `source: "7.2"` reads linux-source-7.2.tar.xz where `make deps KERNEL=7.2` puts it.
`cells()` lists a file's cells in order (what `highmem matrix`, the pytest plugin and a
shard split read).
Pure: no I/O beyond reading the file and checking the named fragments exist.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ...core.errors import HarnessError
from ...core.options import DEFAULTS, RunOptions
from ...core.preflight import check_memory, format_memory
from ...core.profile import FIRST_WITHOUT_HIGHMEM64G, memory_for, profile_for
from ...core.repo import CONFIGS_DIR, REPO
from ...core.suitefile import (
    DEFAULT_SUITE_FILE,
    SuiteError,
    _err,
    _pairs,
    _scalar,
    compose,
    resolved,
)

TOP_KEYS = {"cells": "list", "suite": "path", "description": "text"}
CELL_KEYS = {"id": "str", "source": "str", "configs": "list", "memory": "str", "smp": "number",
             "modules": "list"}
BASE_FRAGMENT = "highmem64g"         # always merged first (harness/stages/kconfig.py)
DEFAULT_VERSION = "6.12"
DEFAULT_MATRIX_FILE = REPO / "matrices" / "default.yaml"
_VERSION = re.compile(r"\d+\.\d+")
_ID = re.compile(r"[A-Za-z0-9._+-]+")


class MatrixError(SuiteError):
    """A matrix file that cannot be used: file:line, what is wrong, what to write."""


def version_tuple(version: str) -> tuple[int, int]:
    """"6.12" -> (6, 12)."""
    major, minor = version.split(".")
    return int(major), int(minor)


def from_unstable(version: str) -> bool:
    """Whether Debian ships this linux-source only in unstable (6.15 and later): fetched and
    unpacked into the cache by `make deps KERNEL=X.Y` (scripts/deps.sh), not installed."""
    return version_tuple(version) >= FIRST_WITHOUT_HIGHMEM64G


def debian_source(version: str) -> tuple[Path, str]:
    """(tarball, Debian package) of a kernel version a cell names: `6.1` is
    /usr/src/linux-source-6.1.tar.xz from package linux-source-6.1; `7.2` is the bare name
    linux-source-7.2.tar.xz, which stages/source.find_named looks up (/usr/src, then the
    cache's kernels/)."""
    name = f"linux-source-{version}.tar.xz"
    return (Path(name) if from_unstable(version) else Path("/usr/src") / name,
            f"linux-source-{version}")


@dataclass(frozen=True)
class Cell:
    """One kernel and guest of a matrix. source: a version (`6.12`) or a path; configs:
    Kconfig fragments merged after highmem64g.config; modules: the suite's modules to run
    (all when empty); line: where the cell starts in its file."""

    id: str
    source: str = DEFAULT_VERSION
    configs: tuple[str, ...] = ()
    memory: str = DEFAULTS.memory
    smp: int = DEFAULTS.smp
    modules: tuple[str, ...] = ()
    line: int = 0

    @property
    def version(self) -> str | None:
        """The kernel version the cell names, or None for a path."""
        return self.source if _VERSION.fullmatch(self.source) else None

    @property
    def source_path(self) -> Path:
        return debian_source(self.source)[0] if self.version else Path(self.source)

    @property
    def package(self) -> str | None:
        """The Debian package holding the cell's source, None for a path."""
        return debian_source(self.source)[1] if self.version else None

    def options(self, base: RunOptions | None = None) -> RunOptions:
        """`base` (the run's other knobs: accel, timeout, append) with this cell's kernel and
        guest. The suite's own fragments come first, then the cell's."""
        b = base or RunOptions()
        return replace(b, source=self.source_path, configs=[*b.configs, *self.configs],
                       memory=self.memory, smp=self.smp, module_dirs=dict(b.module_dirs))


@dataclass(frozen=True)
class Matrix:
    path: Path
    suite: Path
    cells: tuple[Cell, ...]
    description: str = ""
    packages: tuple[str, ...] = field(default=())

    def cell(self, cell_id: str) -> Cell:
        return next(c for c in self.cells if c.id == cell_id)


def cell_id(source: str, configs: tuple[str, ...], smp: int, memory: str) -> str:
    """`6.12-highmem4g-smp2-4G`, `7.2-pae4g-smp2-4G`: a path source is named by its file
    name (`.tar.xz` and the like dropped)."""
    versioned = _VERSION.fullmatch(source)
    src = source if versioned else Path(source).name.split(".tar")[0]
    base = profile_for(version_tuple(source)).fragments if versioned else (BASE_FRAGMENT,)
    names = [n for n in (Path(c).name.removesuffix(".config") for c in configs)
             if n not in base] or [base[-1]]
    return "-".join([src, *names, f"smp{smp}", memory])


def _fragment_exists(name: str, base: Path) -> bool:
    """kconfig.resolve_fragments' rule: a path (relative to the matrix file here), or a
    name in kernel-configs/ (".config" optional)."""
    cands = [Path(name), base / name, CONFIGS_DIR / name, CONFIGS_DIR / f"{name}.config"]
    return any(c.is_file() for c in cands)


def _fragment_path(name: str, base: Path) -> str:
    """A fragment given relative to the matrix file, as a path the build stage finds."""
    if (CONFIGS_DIR / name).is_file() or (CONFIGS_DIR / f"{name}.config").is_file():
        return name
    return str((base / name).resolve()) if (base / name).is_file() else name


def _names(path: Path, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node]]:
    if isinstance(node, yaml.ScalarNode):
        node = yaml.SequenceNode("tag:yaml.org,2002:seq", [node], node.start_mark, node.end_mark)
    if not isinstance(node, yaml.SequenceNode):
        raise _err(path, node, f"'{key}' must be a list of names", f"write {key}: [name, ...]")
    return [(str(_scalar(path, item, key, "str")), item) for item in node.value]


def _source(path: Path, node: yaml.Node) -> str:
    """The source as written (`6.10` stays `6.10`, not the float 6.1)."""
    if not isinstance(node, yaml.ScalarNode) or not str(node.value):
        raise _err(path, node, "'source' must be a kernel version or a path",
                   'write e.g. source: "6.1" (Debian\'s linux-source-6.1) or a kernel tree')
    text = str(node.value)
    if _VERSION.fullmatch(text):
        return text
    src = Path(text) if Path(text).is_absolute() else resolved(path, node, path.parent / text,
                                                               "source")
    if not src.exists():
        raise _err(path, node, f"source '{text}' is neither a version like 6.1 nor an "
                   f"existing path ({src})", 'write e.g. source: "6.1", or a kernel tree or '
                   "tarball (relative to the matrix file)")
    return str(src)


def _cell(path: Path, node: yaml.Node, modules: set[str]) -> Cell:
    f: dict[str, object] = {}
    for key, _k, v in _pairs(path, node, CELL_KEYS, "a cell"):
        if key == "source":
            f[key] = _source(path, v)
        elif key == "configs":
            frags = []
            for name, item in _names(path, v, key):
                if not _fragment_exists(name, path.parent):
                    known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.config")))
                    raise _err(path, item, f"Kconfig fragment '{name}' not found",
                               f"use a path, or one of kernel-configs/: {known}")
                frags.append(_fragment_path(name, path.parent))
            f[key] = tuple(frags)
        elif key == "memory":
            text = str(_scalar(path, v, key, "str"))
            try:
                f[key] = format_memory(check_memory(text))
            except HarnessError as e:
                raise _err(path, v, e.what.replace("--memory", "'memory'"),
                           e.fix.replace("--memory", "memory:")) from None
        elif key == "smp":
            smp = _scalar(path, v, key, "number")
            if not isinstance(smp, int):
                raise _err(path, v, f"'smp' must be a whole number of CPUs, got {smp!r}",
                           "write e.g. smp: 4")
            f[key] = smp
        elif key == "modules":
            names = _names(path, v, key)
            for name, item in names:
                if name not in modules:
                    raise _err(path, item, f"module '{name}' is not in the matrix's suite",
                               f"use one of: {', '.join(sorted(modules))}")
            f[key] = tuple(n for n, _ in names)
        else:
            text = str(_scalar(path, v, key, "str"))
            if not _ID.fullmatch(text):
                raise _err(path, v, f"'id' {text!r} has characters other than letters, "
                           "digits and . _ + -", "write e.g. id: 6.1-smp4")
            f[key] = text
    source = str(f.get("source", DEFAULT_VERSION))
    configs: tuple[str, ...] = f.get("configs", ())  # type: ignore[assignment]
    smp = int(f.get("smp", DEFAULTS.smp))  # type: ignore[call-overload]
    version = version_tuple(source) if _VERSION.fullmatch(source) else (6, 12)
    memory = str(f.get("memory", memory_for(DEFAULTS.memory, version)))
    cid = str(f.get("id") or cell_id(source, configs, smp, memory))
    return Cell(id=cid, source=source, configs=configs, memory=memory, smp=smp,
                modules=f.get("modules", ()),  # type: ignore[arg-type]
                line=node.start_mark.line + 1)


def _suite_path(path: Path, node: yaml.Node) -> Path:
    text = str(_scalar(path, node, "suite", "str"))
    p = Path(text) if Path(text).is_absolute() else resolved(path, node, path.parent / text,
                                                             "suite")
    if not p.is_file():
        raise _err(path, node, f"suite file '{text}' not found ({p})",
                   "give a suite file relative to the matrix file, e.g. "
                   "suite: ../suites/default.yaml")
    return p


def _suite_modules(suite: Path) -> set[str]:
    from ...core.suitefile import load_suite
    specs, _configs, _dirs = load_suite(suite)
    return {s.name for s in specs}


def load_matrix(path: Path) -> Matrix:
    """The cells of a matrix file, in order; MatrixError (file:line) for any mistake (of
    the suite file it names too)."""
    try:
        return _load(path)
    except MatrixError:
        raise
    except SuiteError as e:
        raise MatrixError(e.what, e.fix) from None


def _load(path: Path) -> Matrix:
    root = compose(path, "cells")  # its SuiteError becomes a MatrixError in load_matrix
    suite, description, cells_node = DEFAULT_SUITE_FILE, "", None
    for key, _k, v in _pairs(path, root, TOP_KEYS, "the matrix file"):
        if key == "suite":
            suite = _suite_path(path, v)
        elif key == "description":
            description = str(_scalar(path, v, key, "str"))
        else:
            cells_node = v
    if not isinstance(cells_node, yaml.SequenceNode) or not cells_node.value:
        raise _err(path, cells_node or root, "'cells' must be a non-empty list",
                   "write cells: [{}, {configs: [highmem4g], memory: 4G}]")
    modules = _suite_modules(suite)
    cells: list[Cell] = []
    for item in cells_node.value:
        c = _cell(path, item, modules)
        first = next((x for x in cells if x.id == c.id), None)
        if first is not None:
            raise _err(path, item, f"cell '{c.id}' twice (first on line {first.line})",
                       "drop one, or give one an id: of its own")
        cells.append(c)
    packages = tuple(dict.fromkeys(c.package for c in cells if c.package))
    return Matrix(path=path, suite=suite, cells=tuple(cells), description=description,
                  packages=packages)


def cells(path: Path) -> list[Cell]:
    """The cells of the matrix file `path`, in file order."""
    return list(load_matrix(path).cells)


def cell_ids(path: Path) -> list[str]:
    """The ids of the cells of the matrix file `path`, in file order."""
    return [c.id for c in cells(path)]


def missing_sources(m: Matrix, find: Callable[[Path], Path] = lambda p: p) -> list[Cell]:
    """The cells whose source is not on this machine (a Debian package not installed, a
    tarball not fetched). `find`: where a bare tarball name is (stages/source.find_named)."""
    return [c for c in m.cells if not find(c.source_path).exists()]
