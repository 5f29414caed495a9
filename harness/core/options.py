"""Every knob of a run, with its default, written once. `highmem`'s options (argparse, in
frontends/cli.py) and the pytest plugin's (`--highmem-NAME` and the `highmem_NAME` ini keys,
in frontends/pytest_plugin.py) are generated from the fields of `RunOptions`; the Lab, QEMU
and the checks read the values. Pure.
"""

from collections.abc import Callable, Iterator
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from .suite import MODULE_TIMEOUT_S

DEFAULT_SOURCE = Path("/usr/src/linux-source-6.12.tar.xz")


def yes_no(text: str) -> bool:
    """A switch's text (pytest option or ini value): yes/no, true/false, on/off, 1/0."""
    t = text.strip().lower()
    if t in ("1", "yes", "true", "on"):
        return True
    if t in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"not yes or no: {text!r}")
ACCELS = ("auto", "kvm", "tcg")


@dataclass(frozen=True)
class Knob:
    """How one field of RunOptions is offered: `--NAME` to `highmem`, `--highmem-NAME` and
    the ini key `highmem_NAME` to pytest. `repeat`: a list, given by repeating the option
    (argparse) or comma-separated (pytest)."""

    name: str
    help: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    repeat: bool = False
    off: str = ""   # a switch: what `--no-NAME` does instead


def _knob(default: Any, name: str, help: str, **kw: Any) -> Any:
    meta = {"knob": Knob(name, help, **kw)}
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunOptions:
    """What to build, how to boot it, how long a module may take."""

    source: Path = _knob(DEFAULT_SOURCE, "source", "kernel tree or tarball, Linux 6.1 or newer "
                         "(a bare linux-source-X.Y.tar.xz is looked for in /usr/src and in "
                         "the cache, where `make deps KERNEL=newest` puts it)",
                         parse=Path, metavar="DIR_OR_TARBALL")
    configs: list[str] = _knob([], "config", "extra Kconfig fragment: a path or a name in "
                               "kernel-configs/, merged after the profile's (highmem64g."
                               "config; from 6.15 on also pae4g.config)",
                               metavar="FRAGMENT", repeat=True)
    accel: str = _knob("auto", "accel", "QEMU acceleration; auto uses KVM only if the guest "
                       "prints under it", choices=ACCELS)
    memory: str = _knob("auto", "memory", "guest RAM; auto: the kernel profile's, 8G for "
                        "6.1-6.14, 4G from 6.15 (core/profile.py)")
    smp: int = _knob(2, "smp", "guest CPUs", parse=int)
    timeout: float | None = _knob(None, "timeout", "seconds per module before the run fails "
                                  "(default: the suite file's `timeout:`, 60 in "
                                  f"suites/default.yaml; {MODULE_TIMEOUT_S:g} in a file that "
                                  "sets none)", parse=float)
    append: str = _knob("", "append", "extra kernel command line")
    # switches: `highmem --no-NAME`, pytest `--highmem-NAME=no`
    snapshot: bool = _knob(True, "snapshot", "restore the guest from the snapshot of this "
                           "kernel and image instead of booting it, and save one after a "
                           "boot (stages/snapshot.py)", parse=yes_no,
                           off="boot every guest: no restore from a snapshot, none saved")
    reset: bool = _knob(True, "reset", "a clean kernel for each module: each module starts "
                        "from the snapshot; off: one kernel for all modules (rebooted "
                        "only after a crash)", parse=yes_no,
                        off="one kernel for all modules: booted or restored again only after "
                        "a crash, a hang or a module expected to crash")
    # not a knob: the user module directories a suite file names (module name -> directory)
    module_dirs: dict[str, Path] = field(default_factory=dict)


DEFAULTS = RunOptions()


def knobs(names: tuple[str, ...] | None = None) -> Iterator[tuple[Field[Any], Knob]]:
    """(field, knob) of RunOptions, in declaration order; only `names` (knob names) if given."""
    for f in fields(RunOptions):
        knob = f.metadata.get("knob")
        if knob is not None and (names is None or knob.name in names):
            yield f, knob


def default_text(f: Field[Any]) -> str:
    """A field's default as an option's text: "" for none (None or an empty list)."""
    value = getattr(DEFAULTS, f.name)
    return "" if value is None or value == [] else str(value)


def parse_text(f: Field[Any], knob: Knob, text: str) -> Any:
    """An option's text (a pytest option or ini value) as the field's value."""
    if knob.repeat:
        return [x for x in text.split(",") if x]
    if text == "" and getattr(DEFAULTS, f.name) is None:
        return None
    return knob.parse(text)
