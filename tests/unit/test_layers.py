"""The layers hold (harness/__init__.py): the pure core and the kernel layer import no I/O
library, each layer imports only the layers it may, and no harness module imports itself back
through others (an import cycle, found by reading the imports with ast, type-only included).
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "harness"
IO_LIBRARIES = ("subprocess", "socket", "pexpect", "pygdbmi", "paramiko", "qemu")
# besides core and kernel: the facade's policy, the CLI's parser and the helpers they use
# need no I/O library until they act, so the unit tests (test_orchestration.py with its
# fakelab.py, test_cli_usage.py) drive them without one
# each workflow's pure files (harness/workflows/*/): what it decides, without I/O
WORKFLOW_PURE = ("harness.workflows.warm.model", "harness.workflows.warm.saves",
                 "harness.workflows.warm.inotify_events", "harness.workflows.bisect.model",
                 "harness.workflows.mutate.model", "harness.workflows.matrix.model",
                 "harness.workflows.matrix.report", "harness.workflows.merge.model",
                 "harness.workflows.coverage.model")
ALSO_WITHOUT_IO = (*WORKFLOW_PURE, "harness.lab", "harness.run", "harness.frontends.cli",
                   "harness.frontends.inspect_args", "harness.stages.host",
                   "harness.stages.console_log", "harness.stages.paths", "tests.unit.fakelab")
FACADE = ("harness.lab", "harness.operations", "harness.run")
# what each layer may import (its own modules included); frontends may import anything
MAY_IMPORT = {
    "core": ("harness.core",),
    "kernel": ("harness.core", "harness.kernel"),
    "stages": ("harness.core", "harness.kernel", "harness.stages"),
    "facade": ("harness.core", "harness.kernel", "harness.stages", *FACADE),
    # a workflow's pure model: the core and its own workflow's pure files
    "workflow-pure": ("harness.core", *WORKFLOW_PURE),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(HARNESS.rglob("*.py"))}


def layer_of(module: str) -> str:
    if module in FACADE:
        return "facade"
    if module in WORKFLOW_PURE:
        return "workflow-pure"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "top"


def harness_imports(module: str) -> set[str]:
    """The harness modules `module` imports anywhere in its text (functions and
    `if TYPE_CHECKING:` blocks included): `from .x import y` is x, or x.y when y is a module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "harness")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            if base_name.split(".")[0] != "harness":
                continue
            for a in node.names:
                sub = f"{base_name}.{a.name}"
                out.add(sub if sub in MODULES else base_name)
    out.discard(module)
    return out


GRAPH = {m: harness_imports(m) for m in MODULES}


def test_every_import_names_a_harness_module():
    unknown = {m: sorted(i - MODULES.keys()) for m, i in GRAPH.items() if i - MODULES.keys()}
    assert not unknown


def test_no_import_cycle():
    """Tarjan's strongly connected components of the import graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in sorted(GRAPH.get(m, ())):
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            scc = []
            while True:
                n = stack.pop()
                scc.append(n)
                if n == m:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert not cycles, f"import cycles: {cycles}"


def test_each_layer_imports_only_what_it_may():
    wrong = []
    for m, imports in GRAPH.items():
        allowed = MAY_IMPORT.get(layer_of(m))
        if allowed is None:
            continue
        wrong += [f"{m} imports {i}" for i in sorted(imports)
                  if i != "harness" and not any(i == a or i.startswith(a + ".") for a in allowed)]
    assert not wrong


BLOCKER = """
import importlib, importlib.abc, sys
BLOCKED = {blocked!r}

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is an I/O library: not importable here")
        return None

for name in [m for m in sys.modules if m.split(".")[0] in BLOCKED]:
    del sys.modules[name]
sys.meta_path.insert(0, Blocked())
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ImportError as e:
        sys.exit(f"{{name}}: {{e}}")
"""


def import_blocked(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=IO_LIBRARIES, modules=modules)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_pure_layers_import_with_the_io_libraries_blocked():
    pure = [m for m in MODULES if layer_of(m) in ("core", "kernel")]
    assert "harness.core.checkpoint" in pure and "harness.kernel.reports" in pure
    p = import_blocked([*pure, *ALSO_WITHOUT_IO])
    assert p.returncode == 0, p.stderr


def test_the_blocker_blocks():
    p = import_blocked(["harness.stages.console"])
    assert p.returncode != 0 and "pexpect is an I/O library" in p.stderr
