"""Stage 1, source: find or unpack the kernel tree and check its version.

A source is a directory holding a kernel tree, or a tarball (Debian's
/usr/src/linux-source-6.12.tar.xz by default) unpacked once into the cache.
"""

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError
from .paths import cache_dir
from .progress import say

# CONFIG_HIGHMEM64G exists from long before 6.1 until 6.14; bbeb69ce3013 removed it in 6.15
# (shared/highmem-facts.md section 7), after which a 32-bit kernel sees at most 4 GiB.
MIN_VERSION = (6, 1)
FIRST_WITHOUT_HIGHMEM64G = (6, 15)


@dataclass(frozen=True)
class KernelSource:
    tree: Path
    version: tuple[int, int, int]
    identity: str  # what the build cache keys on: tarball name+size+mtime, or git state

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))


def parse_makefile_version(makefile_text: str) -> tuple[int, int, int]:
    """VERSION, PATCHLEVEL, SUBLEVEL from the top of a kernel Makefile."""
    vals = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(rf"^{key}\s*=\s*(\d+)\s*$", makefile_text, re.M)
        if not m:
            raise ValueError(f"no {key} line")
        vals[key] = int(m.group(1))
    return vals["VERSION"], vals["PATCHLEVEL"], vals["SUBLEVEL"]


def check_version(version: tuple[int, int, int], where: str) -> None:
    """Refuse kernels outside 6.1-6.14: the 8 GiB PAE configuration needs HIGHMEM64G."""
    v = version[:2]
    shown = ".".join(map(str, version))
    if v >= FIRST_WITHOUT_HIGHMEM64G:
        raise SourceError(
            f"{where} is Linux {shown}: CONFIG_HIGHMEM64G was removed in 6.15, so an i386 "
            "kernel there uses at most 4 GiB and the 8 GiB highmem tests cannot run",
            "use a 6.1-6.14 tree (the default is Debian's linux-source-6.12): "
            "make run RUN_ARGS='--source /usr/src/linux-source-6.12.tar.xz'",
        )
    if v < MIN_VERSION:
        raise SourceError(
            f"{where} is Linux {shown}, older than the 6.1 this harness supports",
            "use a 6.1-6.14 tree, e.g. Debian's linux-source-6.1 or linux-source-6.12",
        )


def _tree_identity(tree: Path) -> str:
    """A git tree is identified by HEAD and a hash of its diff; other trees by path only."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True, timeout=30).stdout.strip()
        diff = subprocess.run(["git", "-C", str(tree), "diff", "HEAD"], check=True,
                              capture_output=True, timeout=120).stdout
        return f"git:{tree}:{head}:{hashlib.sha256(diff).hexdigest()[:16]}"
    except (subprocess.SubprocessError, OSError):
        return f"dir:{tree}:unversioned"


def _unpack(tarball: Path) -> Path:
    st = tarball.stat()
    dest = cache_dir() / "src" / f"{tarball.name.split('.tar')[0]}-{st.st_size}-{int(st.st_mtime)}"
    done = dest / ".unpacked"
    if done.exists():
        return _single_subdir(dest)
    say(f"  unpacking {tarball} into {dest} (once)")
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["tar", "-xf", str(tarball), "-C", str(dest)], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise SourceError(f"cannot unpack {tarball}: {r.stderr.strip()[:200]}",
                          f"check the file, or remove {dest} and run again")
    done.touch()
    return _single_subdir(dest)


def _single_subdir(dest: Path) -> Path:
    subs = [p for p in dest.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / "Makefile").exists():
        return subs[0]
    if (dest / "Makefile").exists():
        return dest
    raise SourceError(f"{dest} does not hold one kernel tree",
                      f"remove {dest} and run again")


def resolve_source(spec: Path) -> KernelSource:
    """Turn --source (a tree or a tarball) into an unpacked, version-checked tree."""
    if not spec.exists():
        hint = ("run 'make deps' to install linux-source-6.12" if spec.name.startswith(
            "linux-source") else "pass --source DIR_OR_TARBALL pointing at a 6.1-6.14 kernel")
        raise SourceError(f"kernel source {spec} does not exist", hint)
    if spec.is_dir():
        tree, st = spec.resolve(), None
    else:
        tree, st = _unpack(spec.resolve()), spec.stat()
    makefile = tree / "Makefile"
    try:
        version = parse_makefile_version(makefile.read_text(errors="replace")[:2000])
    except (OSError, ValueError) as e:
        raise SourceError(f"{spec} is not a kernel tree ({makefile}: {e})",
                          "pass --source with the top directory of a Linux tree") from e
    check_version(version, str(spec))
    if st is not None:
        identity = f"tar:{spec.name}:{st.st_size}:{int(st.st_mtime)}"
    else:
        identity = _tree_identity(tree)
    return KernelSource(tree=tree, version=version, identity=identity)
