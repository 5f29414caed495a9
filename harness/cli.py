"""The `highmem` command line. `highmem run` is the main job (what `make run` calls)."""

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from . import commands, inspect_cli
from .errors import HarnessError, Terminated
from .paths import artifacts_root, cache_dir, new_run_dir, run_dirs
from .preflight import (BUILD_TOOLS, RUN_TOOLS, check_memory, check_modules, check_smp_value,
                        check_timeout, check_tools, check_writable_dir, format_memory)
from .run import RunOptions, print_report, run
from .suite import select
from .suitefile import DEFAULT_SUITE_FILE, load_suite


def _params(items: list[str]) -> dict[str, str]:
    """--param MODULE:key=value (repeatable) -> {module: "key=value key2=value2"}."""
    out: dict[str, str] = {}
    for item in items:
        mod, sep, kv = item.partition(":")
        if not mod or not sep or "=" not in kv:
            raise HarnessError(f"--param {item!r} is not MODULE:key=value",
                               "write e.g. --param kmap_local_basic:mutate=pfn")
        out[mod] = (out.get(mod, "") + " " + kv).strip()
    return out


class HarnessParser(argparse.ArgumentParser):
    """argparse that ends a usage error the house way: the usage text, then one `error:` and
    one `fix:` line, exit 2 (also for each subcommand's parser, which share this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {' '.join(message.split())}\nfix: run '{self.prog} --help'\n")


def _check_lab_options(args: argparse.Namespace) -> None:
    """Usage errors in the options every building or booting subcommand has. --memory is
    rewritten to one form ("8G", "5632M") that QEMU and meminfo both read."""
    args.memory = format_memory(check_memory(args.memory))
    check_smp_value(args.smp)
    check_timeout(getattr(args, "timeout", None))


def _check_host(tools: Sequence[str]) -> None:
    """The tools on PATH, and the cache and artifacts directories writable."""
    check_tools(tools)
    check_writable_dir(cache_dir(), "HIGHMEM_CACHE")
    check_writable_dir(artifacts_root(), "HIGHMEM_ARTIFACTS")


def cmd_run(args: argparse.Namespace) -> int:
    """`highmem run`: every usage and host check first, then a run directory and the run."""
    _check_lab_options(args)
    params = _params(args.param)
    specs, configs, dirs = load_suite(Path(args.suite))
    check_modules(args.module, specs, dirs, Path(args.suite))
    suite = select(specs, args.module, params, args.timeout)
    _check_host(RUN_TOOLS)
    lab = commands.lab_options(args)
    lab.configs = configs + lab.configs
    lab.module_dirs = dirs
    lab.append = args.append
    opts = RunOptions(lab=lab, suite=suite)
    run_dir = new_run_dir()
    (run_dir / "reproduce.txt").write_text(
        f"cd {shlex.quote(os.getcwd())} && {shlex.join(['highmem', *sys.argv[1:]])}\n")
    try:
        result = run(opts, run_dir)
    except (HarnessError, KeyboardInterrupt):
        print(f"artifacts kept in {run_dir}", file=sys.stderr)
        raise
    print_report(result)
    if result.interrupted:
        return 143 if result.interrupted == "SIGTERM" else 130
    return 0 if result.passed else 1


def _remove(d: Path) -> None:
    try:
        shutil.rmtree(d)
    except OSError as e:
        raise HarnessError(f"cannot remove {d}: {e.strerror or e}",
                           "check the permissions of that directory, or remove it by hand") \
            from None


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove the run directories in $HIGHMEM_ARTIFACTS (never the directory itself nor
    anything else in it) and, with --builds, $HIGHMEM_CACHE/build."""
    root = artifacts_root()
    runs = run_dirs(root)
    print(f"removing {len(runs)} run directories from {root}")
    for d in runs:
        _remove(d)
    builds = cache_dir() / "build"
    if args.builds and builds.is_symlink():
        print(f"leaving {builds} alone: it is a symlink")
    elif args.builds and builds.is_dir():
        print(f"removing {builds}")
        _remove(builds)
    return 0


def parser() -> HarnessParser:
    p = HarnessParser(prog="highmem", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, parser_class=HarnessParser)
    r = sub.add_parser("run", help="build, boot the 8 GiB i386 guest, run modules with "
                       "live PTE checks, print the report",
                       description="The main job. Exit 0 only if every check passed.")
    r.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE_FILE),
                   help="YAML suite file (default: suites/default.yaml)")
    commands.add_lab_args(r)
    r.add_argument("--module", action="append", default=[],
                   help="run only this module: its suite entries, or a plain module from "
                   "modules/ (repeatable; they run in the order given)")
    r.add_argument("--param", action="append", default=[], metavar="MODULE:KEY=VALUE",
                   help="module parameter, e.g. kmap_local_basic:mutate=pfn")
    r.add_argument("--timeout", type=float, default=None,
                   help="seconds per module before the run fails (default: the suite's, 300)")
    r.add_argument("--append", default="", help="extra kernel command line")
    r.set_defaults(func=cmd_run)
    commands.register(sub)
    inspect_cli.register(sub)
    c = sub.add_parser("clean", help="remove the run directories in the artifacts directory "
                       "(and with --builds, kernel builds)",
                       description="Removes only what the harness made: the TAG-DATE-TIME-N "
                       "directories in $HIGHMEM_ARTIFACTS (and $HIGHMEM_CACHE/build).")
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
    return int(args.func(args))


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parse(argv)
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
