"""The `highmem` command line. `highmem run` is the main job (what `make run` calls)."""

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from . import commands, inspect_cli
from .errors import HarnessError
from .paths import artifacts_root, cache_dir, new_run_dir
from .run import RunOptions, print_report, run
from .suite import select
from .suitefile import DEFAULT_SUITE_FILE, load_suite


def _params(items: list[str]) -> dict[str, str]:
    """--param MODULE:key=value (repeatable) -> {module: "key=value key2=value2"}."""
    out: dict[str, str] = {}
    for item in items:
        mod, sep, kv = item.partition(":")
        if not sep or "=" not in kv:
            raise HarnessError(f"--param {item!r} is not MODULE:key=value",
                               "write e.g. --param kmap_local_basic:mutate=pfn")
        out[mod] = (out.get(mod, "") + " " + kv).strip()
    return out


def cmd_run(args: argparse.Namespace) -> int:
    specs, configs, dirs = load_suite(Path(args.suite))
    suite = select(specs, args.module, _params(args.param), args.timeout)
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
    return 0 if result.passed else 1


def cmd_clean(args: argparse.Namespace) -> int:
    targets = [artifacts_root()] + ([cache_dir() / "build"] if args.builds else [])
    for t in targets:
        if t.exists():
            print(f"removing {t}")
            shutil.rmtree(t)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="highmem", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build, boot the 8 GiB i386 guest, run modules with "
                       "live PTE checks, print the report",
                       description="The main job. Exit 0 only if every check passed.")
    r.add_argument("suite", nargs="?", default=str(DEFAULT_SUITE_FILE),
                   help="YAML suite file (default: suites/default.yaml)")
    commands.add_lab_args(r)
    r.add_argument("--module", action="append", default=[],
                   help="run only this module: its suite entries, or a plain module from "
                   "modules/ (repeatable)")
    r.add_argument("--param", action="append", default=[], metavar="MODULE:KEY=VALUE",
                   help="module parameter, e.g. kmap_local_basic:mutate=pfn")
    r.add_argument("--timeout", type=float, default=None,
                   help="seconds per module before the run fails (default: the suite's, 300)")
    r.add_argument("--append", default="", help="extra kernel command line")
    r.set_defaults(func=cmd_run)
    commands.register(sub)
    inspect_cli.register(sub)
    c = sub.add_parser("clean", help="remove run artifacts (and with --builds, kernel builds)")
    c.add_argument("--builds", action="store_true", help="also remove cached kernel builds")
    c.set_defaults(func=cmd_clean)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except HarnessError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: QEMU and gdb were stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `highmem ssh -- dmesg | head`
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
