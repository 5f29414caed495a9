"""Config stage: tinyconfig + our fragments, merged by the kernel's own merge_config.sh.

After `olddefconfig`, every option a fragment asked for must have survived (like
kunit_tool's "Not all Kconfig options selected in kunitconfig were in the generated
.config"); a dropped option fails the run, named. TuxMake only syntax-checks; we check.
"""

import hashlib
import os
import subprocess
from pathlib import Path

from ..core import kconfig_check
from ..core.errors import ConfigError
from ..core.profile import profile_for
from ..core.repo import CONFIGS_DIR
from .buildlock import build_lock
from .paths import cache_dir
from .progress import say
from .source import KernelSource

DEFAULT_FRAGMENTS = (CONFIGS_DIR / "highmem64g.config",)


def base_fragments(version: tuple[int, ...] | None) -> list[Path]:
    """The profile's fragments for a kernel version (core/profile.py): highmem64g.config,
    and from 6.15 on pae4g.config after it; highmem64g.config alone when unknown."""
    if version is None:
        return list(DEFAULT_FRAGMENTS)
    return [CONFIGS_DIR / f"{n}.config" for n in profile_for(version).fragments]


def resolve_fragments(names: list[str],
                      version: tuple[int, ...] | None = None) -> list[Path]:
    """The profile's fragments for `version`, then `names`: each a path, or a file name in
    kernel-configs/ (".config" optional)."""
    out = base_fragments(version)
    for name in names:
        cands = [Path(name), CONFIGS_DIR / name, CONFIGS_DIR / f"{name}.config"]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.config")))
            raise ConfigError(f"Kconfig fragment '{name}' not found",
                              f"pass a file path, or one of kernel-configs/: {known}")
        if found.resolve() not in [p.resolve() for p in out]:
            out.append(found)
    return out


def build_dir_for(source: KernelSource, fragments: list[Path]) -> Path:
    """The build directory is keyed by the source and the fragments that make the config.

    The merged .config is a function of exactly these (tinyconfig is fixed per tree), so
    keying on them lets a second run skip the kernel's make entirely.
    """
    h = hashlib.sha256()
    h.update(f"{source.tree}|{source.version_str}\n".encode())
    for frag in fragments:
        h.update(frag.name.encode() + b"\0" + frag.read_bytes() + b"\0")
    return cache_dir() / "build" / f"linux-{source.version_str}-{h.hexdigest()[:12]}"


def requested_options(fragments: list[Path]) -> dict[str, str]:
    req: dict[str, str] = {}
    for frag in fragments:
        req.update(kconfig_check.parse_config(frag.read_text()))
    return req


def _make(source: KernelSource, build: Path, *targets: str, log: Path) -> None:
    argv = ["make", "-C", str(source.tree), f"O={build}", "ARCH=i386", *targets]
    with log.open("a") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        raise ConfigError(f"'make {' '.join(targets)}' failed in {build}",
                          f"read {log}")


def configure(source: KernelSource, fragments: list[Path]) -> Path:
    """Produce (or reuse) build/.config; returns the build directory."""
    build = build_dir_for(source, fragments)
    with build_lock(build):  # tinyconfig rewrites .config: no concurrent build may see it
        return _configure(source, fragments, build)


def _configure(source: KernelSource, fragments: list[Path], build: Path) -> Path:
    stamp = build / ".hm-configured"
    if stamp.exists() and (build / ".config").exists():
        say(f"  config unchanged: {build}/.config")
        return build
    build.mkdir(parents=True, exist_ok=True)
    log = build / "configure.log"
    log.write_text("")
    say(f"  tinyconfig + {', '.join(f.name for f in fragments)} -> {build}")
    _make(source, build, "tinyconfig", log=log)
    merge = source.tree / "scripts" / "kconfig" / "merge_config.sh"
    env = dict(os.environ, ARCH="i386", KCONFIG_CONFIG=str(build / ".config"))
    with log.open("a") as f:
        r = subprocess.run(["sh", str(merge), "-m", "-O", str(build), str(build / ".config"),
                            *map(str, fragments)], stdout=f, stderr=subprocess.STDOUT,
                           env=env, cwd=source.tree, timeout=120)
    if r.returncode != 0:
        raise ConfigError("merge_config.sh failed", f"read {log}")
    _make(source, build, "olddefconfig", log=log)
    final = kconfig_check.parse_config((build / ".config").read_text())
    missing = kconfig_check.missing_options(requested_options(fragments), final)
    if missing:
        raise ConfigError(
            "not all Kconfig options of the fragments survived olddefconfig: "
            + "; ".join(kconfig_check.format_missing(missing).splitlines()),
            "fix the fragment (a dependency is probably off), or drop the option",
        )
    stamp.touch()
    return build
