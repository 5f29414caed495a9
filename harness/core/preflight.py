"""Checks made before anything is built or booted (pure): option values and the module
names. Each failure is a `HarnessError` with one line saying what is wrong and one saying what
to do. The host's checks (tools on PATH, writable directories) are harness/stages/host.py's.
"""

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .options import ACCELS, DEFAULTS, RunOptions, default_text, knobs, parse_text, yes_no
from .profile import AUTO_MEMORY
from .repo import MODULES_DIR
from .suite import ModuleSpec

# QEMU's pc machine keeps RAM above 3 GiB at 4 GiB and up: with 4 GiB, 1 GiB lies above
# 4 GiB physical, which the suite needs on 6.1-6.14. PAE (CONFIG_HIGHMEM64G) addresses
# 64 GiB at most; from 6.15 a kernel keeps at most the 3 GiB below 4 GiB (core/profile.py),
# and 4 GiB is still the least, so both profiles' guests see the same highmem.
MIN_MEMORY_MIB = 4 * 1024
MAX_MEMORY_MIB = 64 * 1024
_SIZE = re.compile(r"(?P<num>\d+(?:\.\d*)?|\.\d+)(?P<unit>[kmgtKMGT]?)")
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "": 1, "g": 1024, "t": 1024 * 1024}
_NR_CPUS = re.compile(r"^CONFIG_NR_CPUS=(\d+)\s*$", re.M)
_NOT_SMP = re.compile(r"^# CONFIG_SMP is not set\s*$", re.M)
_HELPER_MODULES = {"hm_checkpoint"}  # built for the others, not a test of its own


class UsageError(HarnessError):
    """A command-line option (or suite selection) the run cannot use."""


def parse_memory(text: str) -> int:
    """A QEMU `-m` size in MiB: "8G", "8192M", "8192" (MiB), "6g", "5.5G", "4194304K".

    Raises UsageError for anything else, zero, or a size that is not whole MiB.
    """
    m = _SIZE.fullmatch(text.strip())
    mib = float(m["num"]) * _UNIT_MIB[m["unit"].lower()] if m else 0.0
    if not m or mib <= 0 or mib != math.floor(mib):
        raise UsageError(f"--memory {text!r} is not a positive memory size",
                         "write a positive size like QEMU's -m: 8G, 8192M, 8192 (MiB) or 5.5G")
    return int(mib)


def format_memory(mib: int) -> str:
    """MiB as QEMU's -m takes it and meminfo.memory_gib reads it: "8G", or "5000M"."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def check_memory(text: str) -> int:
    """The guest RAM of `--memory text` in MiB, if the suite can run with it (4-64 GiB).
    ("auto" is checked_memory()'s.)"""
    mib = parse_memory(text)
    if not MIN_MEMORY_MIB <= mib <= MAX_MEMORY_MIB:
        size = format_memory(mib)
        shown = text if text.strip() == size else f"{text} (= {size})"
        why = ("is less than 4 GiB: the suite needs RAM above 4 GiB physical on 6.1-6.14, "
               "and the 3 GiB below it on every kernel (QEMU's pc machine puts RAM beyond "
               "3 GiB at 4 GiB and up)" if mib < MIN_MEMORY_MIB
               else "is more than 64 GiB, the most PAE (CONFIG_HIGHMEM64G) can address")
        raise UsageError(f"--memory {shown} {why}",
                         f"give --memory between {format_memory(MIN_MEMORY_MIB)} and "
                         f"{format_memory(MAX_MEMORY_MIB)} (default {DEFAULTS.memory})")
    return mib


def checked_memory(text: str) -> str:
    """--memory in the one form QEMU and meminfo both read ("8G", "5632M"), or "auto" (the
    kernel profile's guest RAM, resolved once the tree's version is known: Lab.prepare)."""
    if text.strip().lower() == AUTO_MEMORY:
        return AUTO_MEMORY
    return format_memory(check_memory(text))


def check_smp_value(smp: int) -> None:
    """`--smp` must be a positive CPU count."""
    if smp < 1:
        raise UsageError(f"--smp {smp} is not a number of CPUs",
                         f"give --smp 1 or more (default {DEFAULTS.smp})")


def check_smp(smp: int, kernel_config_text: str) -> None:
    """`--smp` against the built kernel: more CPUs than CONFIG_NR_CPUS (1 without CONFIG_SMP)
    would leave the extra ones offline and the per-CPU slot checks wrong.

    :param kernel_config_text: the text of the build's .config
    """
    check_smp_value(smp)
    m = _NR_CPUS.search(kernel_config_text)
    nr = int(m[1]) if m else 1 if _NOT_SMP.search(kernel_config_text) else None
    if nr is not None and smp > nr:
        raise UsageError(f"--smp {smp} is more than the kernel's CONFIG_NR_CPUS={nr}",
                         f"give --smp {nr} or less, or raise CONFIG_NR_CPUS with --config "
                         "FRAGMENT")


def check_timeout(seconds: float | None, option: str = "--timeout") -> None:
    """A timeout option, when given, must be a positive finite number of seconds."""
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{option} {seconds:g} is not a positive number of seconds",
                         f"give e.g. {option} 300")


def available_modules(specs: Sequence[ModuleSpec], dirs: dict[str, Path],
                      modules_dir: Path = MODULES_DIR) -> list[str]:
    """What `--module` accepts: the suite's names, then the .c files in modules/ (less
    helpers) and in the suite's `dir:` directories."""
    names = list(dict.fromkeys(s.name for s in specs))
    files: set[str] = set()
    for d in {modules_dir, *dirs.values()}:
        files.update(p.stem for p in d.glob("*.c"))
    return names + sorted(files - _HELPER_MODULES - set(names))


def _exists(name: str, specs: Sequence[ModuleSpec], dirs: dict[str, Path],
            modules_dir: Path) -> bool:
    return (any(s.name == name for s in specs)
            or any((d / f"{name}.c").is_file() for d in {modules_dir, *dirs.values()}))


def check_modules(names: Sequence[str], specs: Sequence[ModuleSpec], dirs: dict[str, Path],
                  suite_file: Path, modules_dir: Path = MODULES_DIR) -> None:
    """Every `--module` name is a suite entry or a .c in modules/ or a suite `dir:`."""
    unknown = [n for n in dict.fromkeys(names) if not _exists(n, specs, dirs, modules_dir)]
    if not unknown:
        return
    known = available_modules(specs, dirs, modules_dir)
    close = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    listed = ", ".join(f"'{n}'" for n in unknown)
    where = " or in the suite's dir: directories" if dirs else ""
    raise UsageError(f"unknown --module {listed}: not an entry of {suite_file.name}, and no "
                     f"such .c file in {modules_dir.name}/{where}",
                     f"{hint}use one of: {', '.join(known)}")


def checked_options(opts: RunOptions, prefix: str = "--") -> RunOptions:
    """The run knobs' checks, the same for every way in (`highmem` and its subcommands,
    the pytest plugin, a matrix cell, the warm client): --memory rewritten to the one form
    QEMU and meminfo both read ("8G", "5632M"), --smp and --timeout in range, --accel one of
    ACCELS. `prefix`: how the caller's options are spelled (`--highmem-` under pytest)."""
    try:
        opts.memory = checked_memory(opts.memory)
        check_smp_value(opts.smp)
        check_timeout(opts.timeout)
    except UsageError as e:
        raise UsageError(e.what.replace("--", prefix, 1), e.fix.replace("--", prefix)) from None
    if opts.accel not in ACCELS:
        raise UsageError(f"{prefix}accel {opts.accel!r} is not one of {', '.join(ACCELS)}",
                         f"give {prefix}accel auto (KVM if it works, else TCG)")
    return opts


def options_from_texts(texts: Mapping[str, str], prefix: str) -> RunOptions:
    """RunOptions from option texts by knob name (pytest's --highmem-NAME or ini values; a
    name not given keeps its default), checked as checked_options() does; a text that does
    not parse is a UsageError naming the option, never a ValueError."""
    values: dict[str, Any] = {}
    for f, k in knobs():
        if k.name not in texts:
            continue
        try:
            values[f.name] = parse_text(f, k, texts[k.name])
        except ValueError:
            switch = k.parse is yes_no
            example = ("yes" if getattr(DEFAULTS, f.name) else "no") if switch else \
                default_text(f) or "..."
            raise UsageError(f"{prefix}{k.name} {texts[k.name]!r} is not "
                             f"{'yes or no' if switch else 'a valid value'}",
                             f"give {prefix}{k.name}={example} ({k.help})") from None
    return checked_options(RunOptions(**values), prefix)
