"""pytest plugin (entry point `pytest11: highmem`, registered by `pip install`).

Two ways in:

- **YAML suite files** (`test*.yaml`, or any suite file named on the command line): each
  module entry becomes a collector, and each KTAP case its module printed becomes a pytest
  item, so `pytest suite.yaml --junitxml=out.xml` lists every kernel-side case with its PTE
  verdicts (a failing case's message names the failing field). The KTAP cases are only known
  once the module ran, so a module entry runs in the guest when it is collected.
- **Fixtures** for Python tests: `highmem_lab` (session: the built kernel and image, a guest
  booted on demand), `guest` (the booted guest: `.run(cmd)`, `.dmesg()`), `kernel` (the
  build's artifacts), `highmem_module` (run a module spec, get its `ModuleResult`).

Options (command line, or `highmem_*` ini keys in pytest.ini / pyproject.toml): one per run
knob of core/options.py's RunOptions, with its default — --highmem-source,
--highmem-config (comma-separated), --highmem-accel, --highmem-memory, --highmem-smp,
--highmem-timeout, --highmem-append — and --highmem-artifacts.

`--highmem-matrix FILE` (a kernel matrix, harness/core/matrix.py) runs the suite file once
per cell: the items are parametrized by the cell id (`suite.yaml::<cell id>::<module>::
<case>`), each cell with its own kernel, guest and artifacts directory, one after the other.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..core.errors import HarnessError
from ..core.matrix import Cell, cells
from ..core.options import RunOptions, default_text, knobs, parse_text
from ..core.results import ModuleResult
from ..core.suite import ModuleSpec
from ..core.suitefile import load_suite
from ..lab import Lab
from ..operations import GuestSession, guest_session, stage_lab
from ..stages.build import KernelBuild
from ..stages.paths import artifacts_root, new_run_dir

# name: (default, help): the run knobs of RunOptions, and where the artifacts go
OPTIONS = {k.name: (default_text(f), k.help + (" (comma-separated)" if k.repeat else ""))
           for f, k in knobs()}
OPTIONS["artifacts"] = ("", "artifacts directory (default: $HIGHMEM_ARTIFACTS or ./artifacts)")
OPTIONS["matrix"] = ("", "kernel matrix file: run the suite on each of its cells, items "
                     "parametrized by cell id (e.g. matrices/default.yaml)")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("highmem", "highmem-harness (i386 PAE guest, live PTE checks)")
    for name, (default, text) in OPTIONS.items():
        shown = "" if "default" in text else f" (default: {default or '-'})"
        g.addoption(f"--highmem-{name}", default=None, help=text + shown)
        parser.addini(f"highmem_{name}", text, default=default)


def _opt(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"--highmem-{name}")
    return str(value) if value is not None else str(config.getini(f"highmem_{name}"))


def run_options(config: pytest.Config) -> RunOptions:
    """RunOptions from the --highmem-* options and highmem_* ini keys (defaults: RunOptions')."""
    return RunOptions(**{f.name: parse_text(f, k, _opt(config, k.name)) for f, k in knobs()})


class HighmemState:
    """One Lab per pytest session, made on first use, closed at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lab: Lab | None = None
        self.module_dirs: dict[str, Path] = {}
        self.cell: Cell | None = None          # the matrix cell the Lab is for
        self.cell_labs: dict[str, Lab] = {}    # every cell's Lab (closed), for its boot item

    def get_lab(self, module_dirs: dict[str, Path] | None = None,
                cell: Cell | None = None) -> Lab:
        if cell is not None and cell != self.cell:  # the next matrix cell: its own Lab
            if self.lab is not None:
                self.lab.close()
            self.lab, self.cell = None, cell
        new_dirs = {k: v for k, v in (module_dirs or {}).items() if self.module_dirs.get(k) != v}
        if self.lab is not None and not new_dirs:
            return self.lab
        self.module_dirs.update(new_dirs)
        if self.lab is not None:  # a suite brought new module directories: rebuild the image
            self.lab.close()
        art = _opt(self.config, "artifacts")
        run_dir = new_run_dir("pytest") if not art else _run_dir_in(Path(art))
        opts = run_options(self.config)
        if self.cell is not None:
            opts = self.cell.options(opts)
        opts.module_dirs = dict(self.module_dirs)
        lab = stage_lab(opts, run_dir)
        if self.cell is not None:
            self.cell_labs[self.cell.id] = lab
        lab.prepare()  # a HarnessError here leaves no Lab: the next item tries again
        self.lab = lab
        return lab

    def timeout(self) -> float | None:
        return run_options(self.config).timeout

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()


def _run_dir_in(root: Path) -> Path:
    import os
    os.environ["HIGHMEM_ARTIFACTS"] = str(root)
    return new_run_dir("pytest")


_STATE = pytest.StashKey[HighmemState]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = HighmemState(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


def _state(config: pytest.Config) -> HighmemState:
    return config.stash[_STATE]


# -- YAML suites as pytest items -----------------------------------------------------------

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    named = any(Path(str(a)).resolve() == file_path.resolve() for a in parent.config.args)
    if not (file_path.name.startswith("test") or named):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteFile(pytest.File):
    def collect(self) -> Iterator[pytest.Collector]:
        try:
            specs, configs, dirs = load_suite(self.path)
        except HarnessError as e:
            raise self.CollectError(str(e)) from None
        if configs:
            extra = _opt(self.config, "config")
            if not extra:
                self.config.option.highmem_config = ",".join(configs)
        matrix = _opt(self.config, "matrix")
        if not matrix:
            yield from _suite_items(self, specs, dirs, None)
            return
        try:
            matrix_cells = cells(Path(matrix))
        except HarnessError as e:
            raise self.CollectError(str(e)) from None
        for cell in matrix_cells:
            yield CellCollector.from_parent(self, name=cell.id, cell=cell, specs=specs,
                                            dirs=dirs)


def _suite_items(parent: pytest.Collector, specs: tuple[ModuleSpec, ...],
                 dirs: dict[str, Path], cell: Cell | None) -> Iterator[pytest.Collector]:
    """The boot item and one collector per module entry (those of the cell, if any)."""
    yield BootItem.from_parent(parent, name="boot", cell=cell)
    for spec in specs:
        if cell is not None and cell.modules and spec.name not in cell.modules:
            continue
        name = f"{spec.name}:{spec.params.replace(' ', ',')}" if spec.params else spec.name
        yield ModuleCollector.from_parent(parent, name=name, spec=spec, dirs=dirs, cell=cell)


class CellCollector(pytest.Collector):
    """One cell of a --highmem-matrix: the suite's items on that cell's kernel and guest."""

    def __init__(self, *, cell: Cell, specs: tuple[ModuleSpec, ...], dirs: dict[str, Path],
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.cell, self.specs, self.dirs = cell, specs, dirs

    def collect(self) -> Iterator[pytest.Collector]:
        yield from _suite_items(self, self.specs, self.dirs, self.cell)


class BootItem(pytest.Item):
    """The boots of the guest (run while modules were collected): a kernel that does not
    boot, or warns while booting, is a failing test of its own."""

    def __init__(self, *, cell: Cell | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.cell = cell

    def runtest(self) -> None:
        state = _state(self.config)
        lab = state.lab if self.cell is None else state.cell_labs.get(self.cell.id)
        if lab is None or not lab.boots:
            pytest.skip("no guest was booted")
        why = [r for b in lab.boots for r in b.reasons()]
        for b in lab.boots:
            if b.artifacts is not None:
                self.user_properties.append((f"boot-{b.number}", str(b.artifacts)))
        if why:
            tails = [f"  | {x}" for b in lab.boots for x in b.console_tail]
            raise CaseFailure("\n".join(why + tails))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "boot"


class ModuleCollector(pytest.Collector):
    """Runs the module in the guest, then yields one item per KTAP case it printed."""

    def __init__(self, *, spec: ModuleSpec, dirs: dict[str, Path], cell: Cell | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.spec, self.dirs, self.cell = spec, dirs, cell

    def collect(self) -> Iterator[pytest.Item]:
        state = _state(self.config)
        try:
            lab = state.get_lab(self.dirs, self.cell)
            t = state.timeout()
            spec = self.spec if t is None else ModuleSpec(
                self.spec.name, self.spec.params, self.spec.expect_log, self.spec.crashes, t,
                self.spec.allow_log)
            result = lab.run_spec(spec)
        except HarnessError as e:
            raise self.CollectError(str(e)) from None
        for case in result.cases:
            yield KtapCaseItem.from_parent(self, name=case.name, result=result, case=case)
        yield KernelLogItem.from_parent(self, name="kernel_log", result=result)


class KtapCaseItem(pytest.Item):
    def __init__(self, *, result: ModuleResult, case: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.result, self.case = result, case

    def setup(self) -> None:
        if self.result.artifacts is not None:
            self.user_properties.append(("artifacts", str(self.result.artifacts)))

    def runtest(self) -> None:
        status = self.case.status
        if status == "SKIP":
            pytest.skip(self.case.directive or "skipped in the kernel")
        if status == "XFAIL":
            pytest.xfail(self.case.directive)
        if status != "PASS":
            raise CaseFailure(self._failure())

    def _failure(self) -> str:
        lines = [f"KTAP case {self.case.name}: {self.case.status}"]
        if self.result.failure is not None:
            lines.append(f"  module: {self.result.failure.line}")
        lines += [f"  # {d.lstrip('# ')}" for d in self.case.diagnostics]
        for stop in self.result.stops:
            if stop.expect.label.startswith(self.case.name) or \
                    stop.expect.label.split(":")[0] in self.case.name:
                for c in stop.checks:
                    lines += [f"  {c.label} at {c.va:#x}: {m}" for m in c.mismatches]
        return "\n".join(lines)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.parent.name}::{self.name}"


class KernelLogItem(KtapCaseItem):
    """The module run as a whole: insmod, expected and unexpected kernel messages, PTE
    checkpoints outside any case."""

    def __init__(self, *, result: ModuleResult, **kw: Any) -> None:
        super().__init__(result=result, case=None, **kw)

    def runtest(self) -> None:
        in_cases = bool(self.result.cases)  # the module folded checkpoint verdicts into cases
        why = [r for r in self.result.reasons() if not r.startswith("KTAP case")
               and not (in_cases and r.startswith("checkpoint ") and " of " not in r)]
        if why:
            where = (f"\nartifacts: {self.result.artifacts}" if self.result.artifacts else "")
            raise CaseFailure("\n".join(why) + where)


class CaseFailure(Exception):
    """A kernel-side failure: its message is the report, no Python traceback."""


# -- fixtures for Python tests ---------------------------------------------------------------

@pytest.fixture(scope="session")
def highmem_lab(request: pytest.FixtureRequest) -> Lab:
    """The prepared kernel/image and a guest booted on demand (shared by the session)."""
    try:
        return _state(request.config).get_lab()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def kernel(highmem_lab: Lab) -> KernelBuild:
    """The built kernel: .vmlinux, .bzimage, .config, .gdb_script, .build_dir."""
    return highmem_lab.kernel


@pytest.fixture
def guest(highmem_lab: Lab) -> GuestSession:
    """The booted guest, gdb attached: .run(cmd) -> (rc, out, err) over SSH, .console,
    .dmesg(), .gdb, .checker, .qemu, .meminfo."""
    return guest_session(highmem_lab, attach=True)


@pytest.fixture
def highmem_module(highmem_lab: Lab) -> Callable[..., ModuleResult]:
    """run(name, params="", expect_log=(), crashes=False) -> ModuleResult."""
    def run(name: str, params: str = "", **kw: Any) -> ModuleResult:
        return highmem_lab.run_spec(ModuleSpec(name, params, **kw))
    return run


def pytest_report_header(config: pytest.Config) -> str:
    return (f"highmem: source {_opt(config, 'source')}, accel {_opt(config, 'accel')}, "
            f"memory {_opt(config, 'memory')}, artifacts {artifacts_root()}")
