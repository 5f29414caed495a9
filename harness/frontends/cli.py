"""The `highmem` command line. `highmem run` is the main job (what `make run` calls).

Every subcommand's parser is here; the options that are run knobs (--source, --config,
--accel, --memory, --smp, --timeout, --append) are generated from core/options.py's
RunOptions, which holds their defaults. Usage and host errors are caught here, before
anything is built or booted. The subcommands that build or boot live in commands.py,
inspect_cli.py, mutate.py, bisect.py and bisect_step.py and are imported when they run:
parsing and every usage error need no I/O library (tests/unit/test_layers.py holds that).
"""

import argparse
import contextlib
import importlib
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from ..core.errors import HarnessError, Terminated
from ..core.options import DEFAULTS, RunOptions, default_text, knobs
from ..core.preflight import (
    check_modules,
    check_smp_value,
    check_timeout,
    checked_memory,
)
from ..core.kcidb import ORIGIN, check_origin
from ..workflows.matrix.model import DEFAULT_MATRIX_FILE
from ..core.shard import check_not_empty, parse_shard
from ..core.suite import ModuleSpec, parse_params, select, select_cases
from ..core.suitefile import DEFAULT_SUITE_FILE, load_suite
from ..run import Outputs
from ..stages.host import (
    BUILD_TOOLS,
    RUN_TOOLS,
    check_ram_dir,
    check_tools,
    check_writable_dir,
)
from ..stages.paths import artifacts_root, cache_dir, new_run_dir

Command = Callable[[argparse.Namespace], int]
# the run knobs every subcommand that builds or boots takes
LAB_KNOBS = ("source", "config", "accel", "memory", "smp", "snapshot")


def load(module: str, name: str) -> Any:
    """`name` from harness/frontends/`module`.py (a dotted `module`: harness.`module`, e.g.
    workflows.mutate.command), imported now (commands that build or boot import the I/O
    libraries; parsing must not)."""
    where = f"harness.{module}" if "." in module else f"harness.frontends.{module}"
    return getattr(importlib.import_module(where), name)


def _deferred(module: str, name: str) -> Command:
    def call(args: argparse.Namespace) -> int:
        return int(load(module, name)(args))
    call.__name__ = name
    return call


def add_knobs(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """The run knobs `names` as options of `p`, with RunOptions' defaults."""
    for f, k in knobs(names):
        if isinstance(getattr(DEFAULTS, f.name), bool):  # a switch, on by default
            p.add_argument(f"--no-{k.name}", dest=f.name, action="store_false",
                           default=True, help=f"{k.off} (default: {k.help})")
            continue
        kw: dict[str, Any] = {"dest": f.name, "metavar": k.metavar}
        text = k.help
        if k.repeat:
            kw.update(action="append", default=[])
            text += " (repeatable)"
        else:
            kw.update(type=k.parse, default=getattr(DEFAULTS, f.name))
            if default_text(f) and "default" not in text:
                text += " (default: %(default)s)"
        if k.choices:
            kw["choices"] = k.choices
        p.add_argument(f"--{k.name}", help=text, **kw)


def run_options(args: argparse.Namespace, names: tuple[str, ...] | None = None) -> RunOptions:
    """The knobs `args` has (of `names`, if given) into RunOptions; the others keep their
    defaults."""
    return RunOptions(**{f.name: getattr(args, f.name) for f, _ in knobs(names)
                         if hasattr(args, f.name)})


def _params(items: list[str]) -> dict[str, str]:
    return parse_params(items)


class HarnessParser(argparse.ArgumentParser):
    """argparse that ends a usage error the house way: the usage text, then one `error:` and
    one `fix:` line, exit 2 (also for each subcommand's parser, which share this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {' '.join(message.split())}\nfix: run '{self.prog} --help'\n")


if TYPE_CHECKING:  # the subcommands' parsers
    Subparsers: TypeAlias = "argparse._SubParsersAction[HarnessParser]"


def _check_lab_options(args: argparse.Namespace) -> None:
    """Usage errors in the options every building or booting subcommand has. --memory is
    rewritten to one form ("8G", "5632M") that QEMU and meminfo both read."""
    args.memory = checked_memory(args.memory)
    check_smp_value(args.smp)
    check_timeout(getattr(args, "timeout", None))


def _check_host(tools: Sequence[str]) -> None:
    """The tools on PATH, and the cache and artifacts directories writable."""
    check_tools(tools)
    check_writable_dir(cache_dir(), "HIGHMEM_CACHE")
    check_writable_dir(artifacts_root(), "HIGHMEM_ARTIFACTS")
    if "qemu-system-i386" in tools:
        check_ram_dir()


def checked_run(args: argparse.Namespace) -> tuple[RunOptions, tuple[ModuleSpec, ...]]:
    """`highmem run`'s options and modules, after every usage and host check."""
    _check_lab_options(args)
    params = _params(args.param)
    specs, configs, dirs = load_suite(Path(args.suite))
    check_modules(args.module, specs, dirs, Path(args.suite))
    suite = select_cases(select(specs, args.module, params, args.timeout),
                         getattr(args, "case", []))
    _check_host(RUN_TOOLS)
    opts = run_options(args)
    opts.configs = configs + opts.configs
    opts.module_dirs = dirs
    return opts, suite


def _output_file(text: str | None, option: str) -> Path | None:
    """An output file's path (--junit, --kcidb): its directory must exist."""
    if text is None:
        return None
    path = Path(text).absolute()
    if path.is_dir() or not path.parent.is_dir():
        raise HarnessError(f"{option} {text}: " + ("is a directory" if path.is_dir() else
                           f"directory {path.parent} does not exist"),
                           f"give a file in an existing directory, e.g. {option} "
                           f"results/{option.strip('-')}.{'xml' if 'junit' in option else 'json'}")
    return path


def cmd_run(args: argparse.Namespace) -> int:
    """`highmem run`: every usage and host check first, then a run directory and the run."""
    out = Outputs(parse_shard(args.shard), _output_file(args.junit, "--junit"),
                  _output_file(args.kcidb, "--kcidb"), check_origin(args.kcidb_origin))
    opts, suite = checked_run(args)
    check_not_empty(out.shard, len(suite))
    run_dir = new_run_dir()
    (run_dir / "reproduce.txt").write_text(
        f"cd {shlex.quote(os.getcwd())} && {shlex.join(['highmem', *args.argv])}\n")
    return int(load("commands", "run_suite")(opts, suite, run_dir, out))


def cmd_clean(args: argparse.Namespace) -> int:
    """`highmem clean` (clean.py): only what carries this harness's marker."""
    from .clean import cmd_clean as clean
    return clean(args)


def _stage_commands(sub: "Subparsers") -> None:
    """build, image, boot, ssh (commands.py)."""
    for name, what in (("build", "configure and build the kernel, modules and image"),
                       ("image", "the same as build (the image is part of it)")):
        b = sub.add_parser(name, help=what, description="Stages configure, build and image "
                           "of `highmem run`; prints where the artifacts are.")
        add_knobs(b, LAB_KNOBS)
        b.add_argument("--json", action="store_true", help="print JSON")
        b.set_defaults(func=_deferred("commands", "cmd_build"))
    bo = sub.add_parser("boot", help="boot the guest with an interactive console (Ctrl-] leaves)",
                        description="Boot the 8 GiB guest and attach this terminal to its "
                        "serial console. While it runs, `highmem ssh -- CMD` reaches it and "
                        "gdb can attach to the gdbstub socket it prints. Ctrl-] stops it.")
    add_knobs(bo, LAB_KNOBS)
    bo.set_defaults(func=_deferred("commands", "cmd_boot"))
    s = sub.add_parser("ssh", help="run a command in the guest over SSH",
                       description="Run CMD in the guest over SSH (exit code passed through). "
                       "Uses the guest of a running `highmem boot`, else boots one.")
    add_knobs(s, LAB_KNOBS)
    s.add_argument("--timeout", type=float, default=120.0, help="seconds (default %(default)s)")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    s.set_defaults(func=_deferred("commands", "cmd_ssh"))


def _warm_commands(sub: "Subparsers") -> None:
    """up, status, down (warm_client.py), watch (warm_watch.py): the warm guest."""
    u = sub.add_parser("up", help="start a warm guest in the background for `highmem run` "
                       "and `highmem watch`", description="Builds what is missing, starts "
                       "a guest (and its gdb) held by a background server, and returns when "
                       "it is ready. `highmem run` with the same knobs then runs there: "
                       "modules rebuilt with make M= and copied in over SSH, no image, no "
                       "boot. `highmem down` stops it.")
    add_knobs(u, (*LAB_KNOBS, "append"))
    u.add_argument("--wait", type=float, default=1800.0,
                   help="seconds to wait for it to be ready (default %(default).0f)")
    u.add_argument("--idle-timeout", type=float, default=4 * 3600.0, metavar="SECONDS",
                   help="stop it after this long without a request (default %(default).0f)")
    u.set_defaults(func=_deferred("workflows.warm.client", "cmd_up"))
    st = sub.add_parser("status", help="list the warm guests (stale ones are removed)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_deferred("workflows.warm.client", "cmd_status"))
    d = sub.add_parser("down", help="stop the warm guests of this artifacts directory")
    d.set_defaults(func=_deferred("workflows.warm.client", "cmd_down"))
    w = sub.add_parser("watch", help="rerun a module on the warm guest at every save of "
                       "its sources", description="Watches MODULE_DIR's *.c, *.h, Kbuild and "
                       "Makefile (inotify); each save rebuilds the module (make M=, by "
                       "content), runs it on the warm guest (started if none is up) and "
                       "prints its verdict, naming the save; a save during a run supersedes "
                       "it. Ctrl-C stops watching; the warm guest stays up.")
    w.add_argument("dir", metavar="MODULE_DIR", help="the module's directory (with its Kbuild)")
    w.add_argument("--module", help="the module to run, if the directory builds several")
    add_knobs(w, (*LAB_KNOBS, "append", "timeout", "reset"))
    w.set_defaults(func=_deferred("workflows.warm.watch", "cmd_watch"))


def _inspect_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hold", action="store_true",
                   help="insmod hm_hold.ko first: it holds a kmap, a stale kmap, a vmap and "
                   "a kmap_local (in a sleeping kernel thread) until the guest stops")
    p.add_argument("--hold-param", action="append", default=[], metavar="KEY=VALUE",
                   help="hm_hold parameter (implies --hold), e.g. spin=1: the kmap_local "
                   "holder busy-waits, so its PTE is present when the guest stops")
    add_knobs(p, (*LAB_KNOBS, "append"))


def _inspect_commands(sub: "Subparsers") -> None:
    """gdb, pte, kmaps, vmaps, layout (inspect_cli.py)."""
    g = sub.add_parser("gdb", help="boot the guest and open an interactive gdb on it with "
                       "hm-pte, hm-kmaps, hm-vmaps, hm-layout and the kernel's lx-* helpers",
                       description="Quit gdb to shut the guest down.")
    _inspect_common(g)
    g.add_argument("--no-lx-symbols", action="store_true",
                   help="do not run lx-symbols (module symbols) after attaching")
    g.add_argument("--max-seconds", type=float, default=4 * 3600,
                   help="end the session after this long (default %(default).0f)")
    g.set_defaults(func=_deferred("inspect_cli", "cmd_gdb"))
    for name, what in (
            ("pte", "the full page walk of one virtual address"),
            ("kmaps", "every live kmap: PKMAP slots, kmap_local slots, kmap_ctrl stacks"),
            ("vmaps", "the VM_MAP vmap areas with their pages' PFNs"),
            ("layout", "the address-space layout of the live kernel")):
        p = sub.add_parser(name, help=f"boot the guest, print {what}, shut it down")
        if name == "pte":
            p.add_argument("va", help="virtual address (hex), or a C expression for gdb")
            p.add_argument("--cpu", type=int, metavar="N",
                           help="walk on CPU N; with --hold, hm_hold's kmap_local is made "
                           "on CPU N (default: a kmap_local slot's own CPU, else the CPU "
                           "that stopped)")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        _inspect_common(p)
        p.set_defaults(func=_deferred("inspect_cli", f"cmd_{name}"))
    _monitor_commands(sub)


def _monitor_commands(sub: "Subparsers") -> None:
    """qemu, dump (monitor_cli.py): QEMU's monitor on a running guest."""
    where = ("the socket directory of the guest (`highmem boot`, `highmem gdb` and `highmem "
             "status` print it; default: the one running guest)")
    q = sub.add_parser("qemu", help="a QEMU human-monitor command on the running guest, "
                       "through QMP with a deadline", description="Runs CMD (e.g. `info "
                       "registers`, `gva2gpa VA`) through the guest's qmp-tools.sock. "
                       "Commands that flood, hang or take the guest from under gdb (info "
                       "tlb, stop, cont, quit, ...) are refused with what to use instead.")
    q.add_argument("--sockets", metavar="DIR", help=where)
    q.add_argument("--cpu", type=int, metavar="N", help="the vCPU the command runs on")
    q.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the answer (default %(default).0f)")
    q.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD", help="-- CMD [ARGS...]")
    q.set_defaults(func=_deferred("monitor_cli", "cmd_qemu"))
    d = sub.add_parser("dump", help="write the running guest's memory as a vmcore crash "
                       "and drgn open", description="QMP dump-guest-memory (ELF, paging "
                       "off) into FILE, which must not exist; its headers are checked "
                       "(every RAM block in a PT_LOAD, each CPU's registers). Exit 1 if "
                       "the check fails.")
    d.add_argument("file", metavar="FILE", help="the vmcore to write (a new file)")
    d.add_argument("--sockets", metavar="DIR", help=where)
    d.add_argument("--timeout", type=float, default=900.0,
                   help="seconds the dump may take (default %(default).0f)")
    d.set_defaults(func=_deferred("monitor_cli", "cmd_dump"))


def _watch_kernel_command(sub: "Subparsers") -> None:
    """watch-kernel (kernel_watch_cli.py)."""
    w = sub.add_parser("watch-kernel", help="boot the guest, run a shell workload, and judge "
                       "every kmap_local/kmap/vmap/vm_map_ram mapping the kernel makes",
                       description="Breakpoints on the kernel's map and unmap paths; each "
                       "mapping judged while live and after its unmap (docs/watch-kernel.md). "
                       "Exit 1 on a finding.")
    w.add_argument("--budget", type=float, default=200.0,
                   help="stops per second before the entry breakpoints pause (default "
                   "%(default)g)")
    w.add_argument("--no-map-entries", dest="map_entries", action="store_false",
                   help="no breakpoint on __kmap_local_pfn_prot: half the stops; each "
                   "kmap_local is judged without the pfn and prot it was asked for")
    w.add_argument("--pages", type=int, default=256,
                   help="pages of the workload's tmpfs file (default %(default)d)")
    w.add_argument("--execs", type=int, default=20,
                   help="rounds of busybox applet execs (default %(default)d)")
    w.add_argument("--workload", help="a shell command for the guest instead of the built-in")
    w.add_argument("--module-dir", action="append", default=[], metavar="DIR",
                   help="build DIR's modules into the image (repeatable)")
    w.add_argument("--insmod", metavar="NAME", help="insmod NAME.ko before the watched run")
    w.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter for --insmod")
    w.add_argument("--expect-mappings", type=int, default=1,
                   help="fail unless this many mappings are judged (default %(default)d)")
    w.add_argument("--max-seconds", type=float, default=1800.0,
                   help="deadline for each run of the workload (default %(default)g)")
    w.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_knobs(w, (*LAB_KNOBS, "append"))
    w.set_defaults(func=_deferred("kernel_watch_cli", "cmd_watch_kernel"))


def _suite_options(p: argparse.ArgumentParser) -> None:
    """What `highmem run` takes besides the suite file (and so does `highmem mutate`)."""
    add_knobs(p, LAB_KNOBS)
    p.add_argument("--module", action="append", default=[],
                   help="run only this module: its suite entries, or a plain module from "
                   "modules/ (repeatable; they run in the order given)")
    p.add_argument("--param", action="append", default=[], metavar="MODULE:KEY=VALUE",
                   help="module parameter, e.g. kmap_local_basic:mutate=pfn")
    p.add_argument("--case", action="append", default=[], metavar="MODULE.CASE",
                   help="judge only these KTAP cases (fnmatch globs, e.g. "
                   "'kmap_suite.kmap_*'; repeatable): the modules named run whole")
    add_knobs(p, ("timeout", "append", "reset"))


def _coverage_command(sub: "Subparsers") -> None:
    """coverage (coverage.py)."""
    c = sub.add_parser("coverage", help="run the suite on a gcov kernel and write the line "
                       "and branch coverage of mm/highmem.c, mm/vmalloc.c and the highmem "
                       "helpers (text per function, HTML)",
                       description="The suite as `highmem run` runs it, on a kernel built "
                       "with kernel-configs/gcov.config (its own build), every module on one "
                       "guest; then the guest's gcov counters. Exit status as `highmem run`.")
    c.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE_FILE),
                   help="YAML suite file (default: suites/default.yaml)")
    _suite_options(c)
    c.set_defaults(func=_deferred("workflows.coverage.command", "cmd_coverage"))


def _mutate_command(sub: "Subparsers") -> None:
    """mutate (mutate.py)."""
    m = sub.add_parser("mutate", help="apply each patch in turn to a git copy of the kernel "
                       "tree, run the suite on it, print which mutants it caught",
                       description="Mutation testing: each PATCH is applied to a cached git "
                       "copy of the --source tree, the suite runs as `highmem run` runs it "
                       "(incremental build), the patch is reverted. Exit 0 only if every "
                       "mutant was caught (with --expect-fail: caught by a check).")
    m.add_argument("paths", nargs="+", metavar="PATCH",
                   help="patch files, run in the order given (a directory: its *.patch "
                   "files); a .yaml among them is the suite file (default: "
                   "suites/default.yaml)")
    _suite_options(m)
    m.add_argument("--expect-fail", action="store_true",
                   help="exit 0 only if every patch makes a check of the suite fail (a new "
                   "test must fail with its fix reverted)")
    m.add_argument("--json", metavar="FILE", help="also write the matrix as JSON to FILE")
    m.set_defaults(func=_deferred("workflows.mutate.command", "cmd_mutate"),
                   suite=str(DEFAULT_SUITE_FILE))


def _matrix_command(sub: "Subparsers") -> None:
    """matrix (matrix.py)."""
    x = sub.add_parser("matrix", help="run the suite on every cell (kernel, fragments, "
                       "memory, CPUs) of a matrix file and print one table, cell x module",
                       description="Each cell runs as `highmem run` runs it, one after the "
                       "other (a cell not built yet costs a cold kernel build). Exit 0 only "
                       "if every cell passed.")
    x.add_argument("matrix", nargs="?", default=str(DEFAULT_MATRIX_FILE),
                   help="YAML matrix file (default: matrices/default.yaml)")
    x.add_argument("--cell", action="append", default=[], metavar="ID",
                   help="run only this cell (repeatable), e.g. 6.12-highmem4g-smp2-4G")
    x.add_argument("--packages", action="store_true",
                   help="print the Debian packages the matrix's kernel sources come from "
                   "(what `make deps MATRIX=FILE` installs) and exit")
    x.add_argument("--json", metavar="FILE", help="also write the table as JSON to FILE")
    add_knobs(x, ("accel", "timeout", "append", "snapshot", "reset"))
    x.set_defaults(func=_deferred("workflows.matrix.command", "cmd_matrix"))
def _bisect_commands(sub: "Subparsers") -> None:
    """bisect (bisect.py) and the step git bisect run calls (bisect_step.py)."""
    b = sub.add_parser("bisect", help="find the commit that broke the suite: git bisect run "
                       "with the harness as the test, one incremental build directory",
                       description="Bisect GOOD..BAD of a git kernel tree: each commit is "
                       "built and the suite run on it with RUN_ARGS (`highmem run`'s options); "
                       "a test failure is bad, a commit that does not build or boot is "
                       "skipped. Prints the first bad commit with its failing case and PTE "
                       "field; `git bisect reset` always. Exit 0 when it was found.")
    b.add_argument("--good", required=True, metavar="REV", help="a commit where the suite "
                   "passes (an ancestor of --bad)")
    b.add_argument("--bad", required=True, metavar="REV", help="a commit where it fails")
    b.add_argument("--source", default=DEFAULTS.source, metavar="TREE",
                   help="the top of a git kernel tree (default: the cache's git copy of "
                   "%(default)s, the one `highmem mutate` makes)")
    b.add_argument("--boot-failure", choices=("skip", "bad"), default="skip",
                   help="a commit whose kernel does not come up at all: skipped (default), "
                   "or bad (to find the commit that kills the boot)")
    b.add_argument("run_args", nargs=argparse.REMAINDER, metavar="-- RUN_ARGS",
                   help="options of `highmem run` for each step, e.g. -- --module "
                   "kmap_local_basic")
    b.set_defaults(func=_deferred("workflows.bisect.command", "cmd_bisect"))
    s = sub.add_parser("bisect-step", help="one step of highmem bisect: build and test the "
                       "checked-out commit, exit 0 good, 1 bad, 125 skip (for git bisect run)",
                       description="What `git bisect run` calls for each commit; by hand: "
                       "`git bisect run highmem bisect-step -- --module kmap_local_basic`.")
    s.add_argument("--source", default=".", metavar="TREE",
                   help="the kernel tree (default: the current directory)")
    s.add_argument("--log", metavar="FILE", help="append the step's verdict to FILE (JSON)")
    s.add_argument("--boot-failure", choices=("skip", "bad"), default="skip",
                   help="a kernel that does not come up: exit 125 (skip, default) or 1 (bad)")
    s.add_argument("run_args", nargs=argparse.REMAINDER, metavar="-- RUN_ARGS",
                   help="options of `highmem run`")
    s.set_defaults(func=_deferred("workflows.bisect.step", "cmd_bisect_step"))


def _ci_options(r: argparse.ArgumentParser) -> None:
    """`highmem run`'s options for CI engines (not knobs of the guest)."""
    r.add_argument("--shard", default="1/1", metavar="I/N",
                   help="run only shard I of N of the modules: N contiguous, balanced blocks "
                   "in suite order (default: %(default)s, all)")
    r.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    r.add_argument("--kcidb", metavar="FILE",
                   help="also write KCIDB JSON (KernelCI's results schema v5.3) to FILE")
    _origin_option(r)


def _origin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kcidb-origin", default=ORIGIN, metavar="NAME",
                   help="the KCIDB origin of the ids (your lab's name at KernelCI; default: "
                   "%(default)s)")


def _merge_command(sub: "Subparsers") -> None:
    """merge (merge.py)."""
    m = sub.add_parser("merge", help="combine the report.json of shards into one report",
                       description="Combine shards' report.json (files, or run directories "
                       "holding one) into OUT_DIR: report.txt, report.json, junit.xml, "
                       "kcidb.json. Refused if two shards overlap or a shard is missing. "
                       "Exit 0 all passed, 1 a test failed, 2 usage.")
    m.add_argument("out_dir", metavar="OUT_DIR", help="directory to write (created)")
    m.add_argument("shards", nargs="+", metavar="SHARD",
                   help="a shard's report.json, or its run directory")
    _origin_option(m)
    m.set_defaults(func=_deferred("workflows.merge.command", "cmd_merge"))


class _Version(argparse.Action):
    """--version: the package's version and the harness checkout's git describe
    (stages/version.py, imported only when asked: it runs git)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the harness's version "
                         "(package and git describe of its checkout) and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        print(importlib.import_module("harness.stages.version").version_line(), flush=True)
        parser.exit(0)


def parser() -> HarnessParser:
    p = HarnessParser(prog="highmem", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, parser_class=HarnessParser)
    r = sub.add_parser("run", help="build, boot the i386 highmem guest, run modules with "
                       "live PTE checks, print the report",
                       description="The main job. Exit 0 only if every check passed.")
    r.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE_FILE),
                   help="YAML suite file (default: suites/default.yaml)")
    _suite_options(r)
    _ci_options(r)
    r.set_defaults(func=cmd_run)
    _merge_command(sub)
    _mutate_command(sub)
    _coverage_command(sub)
    _matrix_command(sub)
    _bisect_commands(sub)
    _stage_commands(sub)
    _warm_commands(sub)
    _inspect_commands(sub)
    _watch_kernel_command(sub)
    c = sub.add_parser("clean", help="remove the run directories in the artifacts directory "
                       "(and with --builds, kernel builds)",
                       description="Removes only what the harness made: the directories in "
                       "$HIGHMEM_ARTIFACTS that carry its .highmem-run marker and are not in "
                       "use (and $HIGHMEM_CACHE/build).")
    c.add_argument("--builds", action="store_true", help="also remove cached kernel builds")
    c.set_defaults(func=cmd_clean)
    p.commands = dict(sub.choices)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported by the subcommand's parser (its --help)."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra:
        p.commands.get(args.command, p).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While inside: SIGTERM raises Terminated (a KeyboardInterrupt), so `finally` blocks
    stop QEMU and gdb as they do for Ctrl-C."""
    try:
        old = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _dispatch(args: argparse.Namespace) -> int:
    """Preflight for the subcommands that build or boot (cmd_run does its own), then run."""
    if hasattr(args, "memory") and args.func is not cmd_run:
        _check_lab_options(args)
        _check_host(BUILD_TOOLS if args.command in ("build", "image") else RUN_TOOLS)
    elif args.command in ("status", "down"):
        check_writable_dir(artifacts_root(), "HIGHMEM_ARTIFACTS")
    elif args.command in ("qemu", "dump"):
        check_timeout(args.timeout)
    return int(args.func(args))


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # for reproduce.txt
    except SystemExit as e:  # usage error (2) or --help (0); argparse printed it
        return e.code if isinstance(e.code, int) else 2
    with _sigterm_interrupts():
        try:
            return _dispatch(args)
        except HarnessError as e:
            print(str(e), file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            print("interrupted: QEMU and gdb were stopped", file=sys.stderr)
            return 143 if isinstance(e, Terminated) else 130
        except BrokenPipeError:  # `highmem ssh -- dmesg | head`
            sys.stderr.close()
            return 141


if __name__ == "__main__":
    sys.exit(main())
