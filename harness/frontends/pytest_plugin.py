"""pytest plugin (entry point `pytest11: highmem`, registered by `pip install`).

Two ways in:

- **YAML suite files** (`test*.yaml`, or any suite file named on the command line):
  collecting one prepares the kernel and image (built once, reused after) and runs nothing
  in the guest. It yields a `boot` item (this process's guest booted and judged) and, per
  module entry, a collector with one `kernel_log` item. Running that item runs the module in
  the guest; each KTAP case the module printed is then reported as a test of its own
  (`SUITE.yaml::MODULE::CASE`, pytest_cases.py), before the `kernel_log` item's verdict.
  So collection is the same in every pytest-xdist worker, and `pytest -n 2` spreads the
  modules over two workers, each with its own guest, run directory (`pytest-gw0-...`),
  sockets and RAM file; the build lock makes the two workers build the kernel once. With a
  warm guest of the same knobs up (`highmem up`), the modules run there instead (rebuilt
  with make M=, pushed over SSH: no image, no boot); the fixtures keep their own guest.
- **Fixtures** for Python tests: `highmem_lab` (session: the built kernel and image, a guest
  booted on demand), `guest` (the booted guest: `.run(cmd)`, `.dmesg()`), `kernel` (the
  build's artifacts), `highmem_module` (run a module spec, get its `ModuleResult`).

Options (command line, or `highmem_*` ini keys in pytest.ini / pyproject.toml): one per run
knob of core/options.py's RunOptions, with its default — --highmem-source,
--highmem-config (comma-separated), --highmem-accel, --highmem-memory, --highmem-smp,
--highmem-timeout, --highmem-append, --highmem-snapshot, --highmem-reset — and
--highmem-artifacts.

`--highmem-matrix FILE` (a kernel matrix, harness/workflows/matrix/model.py) runs the suite
file once per cell: the items are parametrized by the cell id (`SUITE.yaml::<cell
id>::MODULE::...`), each cell with its own kernel (prepared at collection), guest and run
directory; a cell's guest is stopped when the items of another cell start (no warm guest for
matrix cells).
"""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ..core.errors import HarnessError
from ..workflows.matrix.model import Cell, cells
from ..core.options import RunOptions, default_text, knobs
from ..core.preflight import options_from_texts
from ..core.results import ModuleResult
from ..core.suite import ModuleSpec, parse_params, select
from ..core.suitefile import load_suite
from ..lab import Lab
from ..operations import GuestSession, guest_session, stage_lab
from ..stages.build import KernelBuild
from ..stages.paths import artifacts_root, new_run_dir
from ..workflows.warm import client as warm_client
from ..core.verdict import case_key
from .pytest_cases import CaseReports, case_verdict, log_cases, mark_system_out, set_system_out

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
    g.addoption("--highmem-param", action="append", default=[], metavar="MODULE:KEY=VALUE",
                help="a module parameter for this run, as `highmem run --param` (repeatable; "
                "replaces the suite entry's parameters)")


def _opt(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"--highmem-{name}")
    return str(value) if value is not None else str(config.getini(f"highmem_{name}"))


def run_options(config: pytest.Config) -> RunOptions:
    """RunOptions from the --highmem-* options and highmem_* ini keys (defaults: RunOptions'),
    parsed and checked as `highmem` checks its own (core/preflight.py)."""
    return options_from_texts({k.name: _opt(config, k.name) for _, k in knobs()}, "--highmem-")


class HighmemState:
    """One Lab per pytest process (the session, or one xdist worker), made on first use,
    closed at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lab: Lab | None = None
        self.module_dirs: dict[str, Path] = {}
        self.warm: Any = None   # the warm guest's record, False when there is none
        self.cell: Cell | None = None          # the matrix cell self.lab is for
        self.cell_labs: dict[str, Lab] = {}    # each matrix cell's Lab, by cell id
        self.cases_seen: dict[str, list[str]] = {}  # module nodeid -> its KTAP cases

    def _switch_cell(self, cell: Cell | None) -> None:
        """Make `cell`'s Lab the current one; the previous cell's guest is stopped (its Lab
        keeps its boots for its boot item, and boots again if its items come back)."""
        if cell == self.cell:
            return
        if self.lab is not None and self.cell is not None:
            self.lab.close()
        self.cell = cell
        self.lab = self.cell_labs.get(cell.id) if cell is not None else None

    def get_lab(self, module_dirs: dict[str, Path] | None = None,
                cell: Cell | None = None) -> Lab:
        if cell is not None or self.cell is not None:
            self._switch_cell(cell)
        new_dirs = {k: v for k, v in (module_dirs or {}).items() if self.module_dirs.get(k) != v}
        if self.lab is not None and not new_dirs:
            return self.lab
        self.module_dirs.update(new_dirs)
        if self.lab is not None:  # a suite brought new module directories: rebuild the image
            self.lab.close()
        art = _opt(self.config, "artifacts")
        run_dir = new_run_dir(run_dir_tag(self.config), Path(art) if art else None)
        opts = run_options(self.config)
        if self.cell is not None:
            opts = self.cell.options(opts)
        opts.module_dirs = dict(self.module_dirs)
        lab = stage_lab(opts, run_dir)
        lab.prepare()  # a HarnessError here leaves no Lab: the next item tries again
        self.lab = lab
        if self.cell is not None:
            self.cell_labs[self.cell.id] = lab
        return lab

    def warm_guest(self) -> Any:
        """The warm guest (`highmem up`) of the same knobs, looked up once; None if none."""
        if self.warm is None:
            art = _opt(self.config, "artifacts")
            root = Path(art) if art else None
            self.warm = warm_client.fitting(run_options(self.config), root) or False
        return self.warm or None

    def timeout(self) -> float | None:
        return run_options(self.config).timeout

    def close(self) -> None:
        for lab in {id(x): x for x in [*self.cell_labs.values(), self.lab] if x}.values():
            lab.close()


def xdist_worker(config: pytest.Config) -> str | None:
    """This process's pytest-xdist worker id ("gw0", ...), or None outside xdist."""
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


def run_dir_tag(config: pytest.Config) -> str:
    """`pytest`, or `pytest-gw0` in xdist's worker gw0: each worker its own run directory."""
    worker = xdist_worker(config)
    return f"pytest-{worker}" if worker else "pytest"


_STATE = pytest.StashKey[HighmemState]()


def pytest_configure(config: pytest.Config) -> None:
    try:  # a bad --highmem-* value: one error: and one fix: line, exit 2, as `highmem` says
        run_options(config)
    except HarnessError as e:
        sys.stderr.write(f"{e}\n")
        pytest.exit("highmem: usage error (above)", returncode=2)
    config.stash[_STATE] = HighmemState(config)
    if xdist_worker(config) is None:  # the process that shows the results
        config.pluginmanager.register(CaseReports(), "highmem-case-reports")
        config.pluginmanager.register(CollectionErrorExit(), "highmem-collection-error-exit")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


def _state(config: pytest.Config) -> HighmemState:
    return config.stash[_STATE]


class CollectionErrorExit:
    """A plugin object of the process that shows the results: a suite that could not be
    collected (its source, config or build failed: one HarnessError) ends the run with exit
    2, under pytest-xdist too (pytest stops at a collection error with 2; xdist's controller
    counts the workers' collection errors as failures, exit 1)."""

    def __init__(self) -> None:
        self.failed = False

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.failed = self.failed or report.failed

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.failed and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
            session.exitstatus = pytest.ExitCode.INTERRUPTED


# -- YAML suites as pytest items -----------------------------------------------------------

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    named = any(Path(str(a).split("::")[0]).resolve() == file_path.resolve()
                for a in parent.config.args)  # a nodeid names its file too
    if not (file_path.name.startswith("test") or named):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteFile(pytest.File):
    """A suite file: its `boot` item and one collector per module entry. Collecting it
    prepares the Lab (configure, build, image: cached), so that a source, config or build
    error is one collection error (pytest exits 2) rather than a failure per module."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        matrix = _opt(self.config, "matrix")
        try:
            specs, configs, dirs = load_suite(self.path)
            params = parse_params(self.config.getoption("--highmem-param") or [],
                                  "--highmem-param")
            if params:
                specs = select(specs, [], params)
            if configs and not _opt(self.config, "config"):
                self.config.option.highmem_config = ",".join(configs)
            state = _state(self.config)
            if matrix:
                matrix_cells = cells(Path(matrix))
            elif state.warm_guest() is None:  # (a warm guest builds the modules itself)
                state.get_lab(dirs)
        except HarnessError as e:
            raise self.CollectError(str(e)) from None
        if not matrix:
            yield from suite_items(self, specs, dirs, None)
            return
        for cell in matrix_cells:
            yield CellCollector.from_parent(self, name=cell.id, cell=cell, specs=specs,
                                            dirs=dirs)


def suite_items(parent: pytest.Collector, specs: tuple[ModuleSpec, ...], dirs: dict[str, Path],
                cell: Cell | None) -> Iterator[pytest.Item | pytest.Collector]:
    """The `boot` item and one collector per module entry (of the cell's modules)."""
    yield BootItem.from_parent(parent, name="boot", cell=cell)
    for spec in specs:
        if cell is not None and cell.modules and spec.name not in cell.modules:
            continue
        name = f"{spec.name}:{spec.params.replace(' ', ',')}" if spec.params else spec.name
        yield ModuleCollector.from_parent(parent, name=name, spec=spec, dirs=dirs, cell=cell)


class CellCollector(pytest.Collector):
    """One cell of a --highmem-matrix: the suite's items on that cell's kernel and guest.
    Collecting it prepares the cell's Lab (its kernel built: a cold build the first time),
    so a cell whose source or build fails is one collection error."""

    def __init__(self, *, cell: Cell, specs: tuple[ModuleSpec, ...], dirs: dict[str, Path],
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.cell, self.specs, self.dirs = cell, specs, dirs

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        try:
            _state(self.config).get_lab(self.dirs, self.cell)
        except HarnessError as e:
            raise self.CollectError(str(e)) from None
        yield from suite_items(self, self.specs, self.dirs, self.cell)


class BootItem(pytest.Item):
    """The first boot of this process's guest: a kernel that does not boot, or warns while
    booting, is a failing test of its own (and the modules are then NOT RUN)."""

    def __init__(self, *, cell: Cell | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.cell = cell

    def runtest(self) -> None:
        warm = _state(self.config).warm_guest() if self.cell is None else None
        if warm is not None:
            pytest.skip(f"the modules run on the warm guest of pid {warm.pid} (`highmem up`)")
        try:
            lab = _state(self.config).get_lab(cell=self.cell)
        except HarnessError as e:
            raise CaseFailure(str(e)) from None
        # the boot the Lab makes for its modules, recorded as a BootResult
        lab.boot_for_modules()
        why = [r for b in lab.boots for r in b.reasons()]
        set_system_out(self, [f"boot-{b.number}: {b.artifacts}" for b in lab.boots
                              if b.artifacts is not None])
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
    """One module entry of the suite: an item per KTAP case it reported last time (pytest's
    cache, `highmem/cases/<nodeid>`), so `-k CASE`, a case's nodeid, `--lf` and `--ff` select
    cases; then its `kernel_log` item (what no case carries: a crash, a lost log, a
    checkpoint no case claims). The module runs once, before the first of its items that
    runs; a case it reports that was not collected (new, or no cache) is reported as a test
    of its own all the same (pytest_cases.py)."""

    def __init__(self, *, spec: ModuleSpec, dirs: dict[str, Path], cell: Cell | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.spec, self.dirs, self.cell = spec, dirs, cell
        self.result: ModuleResult | None = None
        self.error = ""
        self.ran = False

    def collect(self) -> Iterator[pytest.Item]:
        for name in known_cases(self.config, self.nodeid):
            yield CaseItem.from_parent(self, name=name)
        yield ModuleItem.from_parent(self, name="kernel_log", spec=self.spec, dirs=self.dirs,
                                     cell=self.cell)

    def run_module(self) -> None:
        self.ran = True
        state = _state(self.config)
        t = state.timeout()
        spec = self.spec if t is None else replace(self.spec, timeout=t)
        try:
            warm = state.warm_guest() if self.cell is None else None
            if warm is not None:  # rebuilt and run there: no image, no boot of our own
                self.result = warm_client.run_specs_on_warm(
                    warm, (spec,), self.dirs, run_options(self.config).reset)[0]
            else:
                self.result = state.get_lab(self.dirs, self.cell).run_spec(spec)
        except HarnessError as e:  # the Lab could not be made: no module runs
            self.error = str(e)
        if self.result is not None:
            state.cases_seen[self.nodeid] = list(dict.fromkeys(
                case_key(c) for c in self.result.cases))

    def unlisted_cases(self) -> set[str] | None:
        """The cases to report as tests beyond the collected items: those not collected
        (new, or no cache) when the module entry runs as a whole (its kernel_log item is
        selected); None for every case when it is not (-k CASE, a case's nodeid)."""
        if not any(isinstance(i, ModuleItem) and i.parent is self for i in self.session.items):
            return None
        return set(known_cases(self.config, self.nodeid))


CASES_KEY = "highmem/cases/"


def known_cases(config: pytest.Config, nodeid: str) -> list[str]:
    """The KTAP cases the module of `nodeid` reported when it last ran (pytest's cache)."""
    cache = getattr(config, "cache", None)
    names = cache.get(CASES_KEY + nodeid, []) if cache is not None else []
    return [n for n in names if isinstance(n, str) and n]


class _ModulePart(pytest.Item):
    """An item of a module entry (a case, or its kernel log): the module's result."""

    @property
    def module(self) -> ModuleCollector:
        assert isinstance(self.parent, ModuleCollector)
        return self.parent

    def setup(self) -> None:
        r = self.module.result
        if r is not None and r.artifacts is not None:
            set_system_out(self, [f"artifacts: {r.artifacts}"])

    def ran(self) -> ModuleResult:
        if self.module.result is None:
            raise CaseFailure(self.module.error or "the module did not run")
        return self.module.result

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.parent.name}::{self.name}" if self.parent else self.name


class CaseItem(_ModulePart):
    """One KTAP case of the module, as the core judged it (core/verdict.py)."""

    def runtest(self) -> None:
        result = self.ran()
        mine = [c for c in result.cases if case_key(c) == self.name]
        if not mine:
            why = f"; {result.failure.line}" if result.failure else ""
            raise CaseFailure(f"KTAP case {self.name}: not reported in this run (it was in "
                              f"the last one){why}")
        verdicts = [case_verdict(result, c) for c in mine]
        outcome, text, xfail = next((v for v in verdicts if v[0] == "failed"), verdicts[0])
        if outcome == "failed":
            raise CaseFailure(text)
        if xfail:
            pytest.xfail(text)
        if outcome == "skipped":
            pytest.skip(text)


class ModuleItem(_ModulePart):
    """The module run as a whole: insmod, expected and unexpected kernel messages, PTE
    checkpoints outside any case, a lost kernel log (the verdict's module-level reasons)."""

    def __init__(self, *, spec: ModuleSpec, dirs: dict[str, Path], cell: Cell | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.spec, self.dirs, self.cell = spec, dirs, cell

    @property
    def result(self) -> ModuleResult | None:
        return self.module.result

    def runtest(self) -> None:
        result = self.ran()
        # the module's own reasons: what no KTAP case carries (a case's reasons fail it)
        why = [r.text for r in result.verdict().module_reasons()]
        if why:
            where = f"\nartifacts: {result.artifacts}" if result.artifacts else ""
            raise CaseFailure("\n".join(why) + where)


class CaseFailure(Exception):
    """A kernel-side failure: its message is the report, no Python traceback."""


_RUN_SECONDS = pytest.StashKey[float]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The first item of a module entry to run runs the module (its progress captured into
    the item's report, as its setup output is; the time it took counted in the item's
    call), then reports the cases the module printed that are not items of their own;
    pytest's own protocol then runs the item."""
    if not isinstance(item, _ModulePart) or item.module.ran:
        return
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    t0 = time.monotonic()
    with capture.item_capture("setup", item) if capture is not None else nullcontext():
        item.module.run_module()
    item.stash[_RUN_SECONDS] = time.monotonic() - t0
    result = item.module.result
    known = item.module.unlisted_cases()
    if result is not None and known is not None:
        log_cases(item, result, in_worker=xdist_worker(item.config) is not None, skip=known)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Real durations (--durations, JUnit): the module's run in the setup of the item that
    ran it, a case's own time in the kernel (its printk timestamps) in its call."""
    outcome = yield
    if call.when == "setup" and _RUN_SECONDS in item.stash:
        outcome.get_result().duration += item.stash[_RUN_SECONDS]
    if call.when == "teardown":  # its artifacts: the JUnit test case's <system-out>
        mark_system_out(outcome.get_result(), item)
    if call.when == "call" and isinstance(item, CaseItem) and item.module.result is not None:
        outcome.get_result().duration += sum(c.seconds for c in item.module.result.cases
                                             if case_key(c) == item.name)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `pytest -n N` (xdist's default `--dist load`) with a suite file named, the
    items are spread by scope (`SUITE::MODULE`): a module's cases and its kernel_log go to
    one worker, and the module runs once. Another --dist the user chose is kept."""
    if getattr(config.option, "dist", "load") != "load" or not any(
            str(a).split("::")[0].endswith((".yaml", ".yml")) for a in config.args):
        return None
    from xdist.scheduler import LoadScopeScheduling
    return LoadScopeScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The cases each module reported, kept in pytest's cache for the next collection
    (written at the end: a pytest-xdist worker still collecting must see what the others
    saw)."""
    cache = getattr(session.config, "cache", None)
    state = session.config.stash.get(_STATE, None)
    if cache is None or state is None:
        return
    for nodeid, names in state.cases_seen.items():
        cache.set(CASES_KEY + nodeid, names)


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
    """The built kernel: .vmlinux, .config, .gdb_script, .build_dir."""
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
    art = _opt(config, "artifacts") or artifacts_root()
    return (f"highmem: source {_opt(config, 'source')}, accel {_opt(config, 'accel')}, "
            f"memory {_opt(config, 'memory')}, artifacts {art}")
