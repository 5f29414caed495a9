"""Source stage: find or unpack the kernel tree and check its version.

A source is a directory holding a kernel tree, or a tarball (Debian's
/usr/src/linux-source-6.12.tar.xz by default) unpacked once into the cache.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SourceError
from ..core.options import DEFAULT_SOURCE
from .paths import cache_dir
from .progress import say

# 6.1 and later; from 6.15 on (bbeb69ce3013 removed CONFIG_HIGHMEM64G) a tree gets the
# 4 GiB PAE profile instead of the 8 GiB one (harness/core/profile.py).
MIN_VERSION = (6, 1)


@dataclass(frozen=True)
class KernelSource:
    tree: Path
    version: tuple[int, int, int]
    identity: str  # what the build cache keys on: "tar:", "git:" (own repo) or "dir:"

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
    """Refuse kernels older than 6.1. 6.1-6.14 get the HIGHMEM64G profile, 6.15 and later
    the HIGHMEM4G + PAE one (core/profile.py)."""
    if version[:2] < MIN_VERSION:
        shown = ".".join(map(str, version))
        raise SourceError(
            f"{where} is Linux {shown}, older than the 6.1 this harness supports",
            "use a 6.1 or newer tree, e.g. Debian's linux-source-6.1, linux-source-6.12, "
            "or linux-source-7.2 (make deps KERNEL=newest)",
        )


def _git(tree: Path, *args: str, timeout: float = 120) -> bytes:
    """stdout of `git -C tree ARGS`; raises CalledProcessError, TimeoutExpired or OSError."""
    return subprocess.run(["git", "--no-optional-locks", "-C", str(tree), *args], check=True,
                          capture_output=True, timeout=timeout).stdout


def _own_git_head(tree: Path) -> str | None:
    """HEAD of the git repository whose top directory is `tree` itself, else None.

    A plain directory inside another repository (say a kernel unpacked into a project) is
    not versioned by that repository's HEAD, so it has no git identity of its own.
    """
    try:
        top = _git(tree, "rev-parse", "--show-toplevel", timeout=30).decode().strip()
        if Path(top).resolve() != tree.resolve():
            return None
        return _git(tree, "rev-parse", "HEAD", timeout=30).decode().strip()
    except (subprocess.SubprocessError, OSError, UnicodeDecodeError):
        return None


def _untracked(status_z: bytes) -> list[str]:
    """Paths of untracked files in `git status --porcelain=v1 -z` output.

    Entries are "XY path"; a rename or copy (X or Y in "RC") is followed by its old path,
    which is skipped."""
    fields = status_z.split(b"\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        if entry[:2] == b"??":
            paths.append(entry[3:].decode(errors="surrogateescape"))
        elif entry[0:1] in b"RC" or entry[1:2] in b"RC":
            i += 1
    return paths


def _content_hash(path: Path) -> bytes:
    """sha256 of a file's bytes (of the link text for a symlink); b"" when unreadable."""
    try:
        if path.is_symlink():
            return hashlib.sha256(os.readlink(path).encode(errors="surrogateescape")).digest()
        if not path.is_file():
            return b""
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except OSError:
        return b""


def _tree_identity(tree: Path) -> str:
    """What the build cache keys a source directory on.

    A tree that is the top of its own git repository: "git:TREE:HEAD:HASH", HASH over
    `git status` (untracked files included), the contents of untracked files and the binary
    `git diff HEAD`, so any edit, staged or not, tracked or not, changes it.
    Any other directory: "dir:TREE:unversioned", for which the build always runs make
    (build.up_to_date) and make decides what is stale.
    """
    tree = tree.resolve()
    head = _own_git_head(tree)
    unversioned = f"dir:{tree}:unversioned"
    if head is None:
        return unversioned
    try:
        status = _git(tree, "status", "--porcelain=v1", "-z", "--untracked-files=all")
        diff = _git(tree, "diff", "HEAD", "--binary")
    except (subprocess.SubprocessError, OSError):
        return unversioned
    h = hashlib.sha256(status)
    h.update(hashlib.sha256(diff).digest())
    for rel in sorted(_untracked(status)):
        h.update(rel.encode(errors="surrogateescape") + b"\0" + _content_hash(tree / rel))
    return f"git:{tree}:{head}:{h.hexdigest()[:16]}"


# How the archives `tar -xf` unpacks begin (GNU tar picks the decompressor from the bytes).
COMPRESSED_MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
                    b"\x28\xb5\x2f\xfd": "zstd"}
USTAR_MAGIC = (257, b"ustar")  # offset and magic of a POSIX or GNU tar's first header


def tar_format(path: Path) -> str | None:
    """"xz", "gzip", "bzip2", "zstd" or "tar" when the file starts like one, else None.

    Reads the first 512 bytes only; a compressed file is trusted to hold a tar until tar
    says otherwise."""
    with path.open("rb") as f:
        head = f.read(512)
    for magic, name in COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            return name
    offset, magic = USTAR_MAGIC
    return "tar" if head[offset:offset + len(magic)] == magic else None


def one_line(text: str, limit: int = 200) -> str:
    """Non-empty lines of a tool's stderr joined by "; " (repeats dropped), at most `limit`
    characters: an error message stays one line."""
    lines = list(dict.fromkeys(ln.strip() for ln in text.splitlines() if ln.strip()))
    joined = "; ".join(lines)
    return joined if len(joined) <= limit else joined[:limit - 3] + "..."


def _unpack(tarball: Path) -> Path:
    """The kernel tree of a tarball, unpacked once into the cache.

    A cache entry is trusted only with its ".unpacked" marker, and it only ever appears by
    renaming a finished unpack into place: an interrupted or failed unpack leaves nothing.
    """
    st = tarball.stat()
    dest = cache_dir() / "src" / f"{tarball.name.split('.tar')[0]}-{st.st_size}-{int(st.st_mtime)}"
    if (dest / ".unpacked").exists():
        return _cached_top(dest)
    _check_tarball(tarball)
    say(f"  unpacking {tarball} into {dest} (once)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        _untar(tarball, part)
        if _kernel_top(part) is None:
            raise SourceError(f"{tarball} does not hold one kernel tree (no top Makefile)",
                              "pass --source with a Linux 6.1-6.14 source tarball or tree")
        (part / ".unpacked").touch()
        _move_into_place(part, dest)
    finally:
        shutil.rmtree(part, ignore_errors=True)  # already gone after a successful rename
    return _cached_top(dest)


def _check_tarball(path: Path) -> None:
    """Refuse, before anything is written, a file that is not a tar archive."""
    try:
        fmt = tar_format(path)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}",
                          "check the file's permissions, or pass another --source") from e
    if fmt is None:
        raise SourceError(f"{path} is neither a kernel tree (a directory) nor a tar archive",
                          "pass --source with a kernel source directory or tarball, "
                          f"e.g. {DEFAULT_SOURCE}")


def _untar(tarball: Path, into: Path) -> None:
    try:
        r = subprocess.run(["tar", "-xf", str(tarball), "-C", str(into)], capture_output=True,
                           text=True, errors="replace", timeout=600)
    except (subprocess.TimeoutExpired, OSError) as e:
        raise SourceError(f"cannot unpack {tarball}: {one_line(str(e))}",
                          "check that tar works and the disk is not full, then run again") from e
    if r.returncode != 0:
        raise SourceError(f"cannot unpack {tarball}: {one_line(r.stderr) or 'tar failed'}",
                          "check the file (a complete download?) and free disk space, "
                          "then run again")


def _move_into_place(part: Path, dest: Path) -> None:
    """Rename a finished unpack to `dest`; an unmarked `dest` (left by an older harness) is
    replaced, a marked one (another run finished first) is kept."""
    if dest.exists() and not (dest / ".unpacked").exists():
        shutil.rmtree(dest)
    try:
        os.rename(part, dest)
    except OSError as e:
        if (dest / ".unpacked").exists():
            return
        raise SourceError(f"cannot move the unpacked tree to {dest}: {e.strerror}",
                          f"check that {dest.parent} is writable") from e


def _kernel_top(d: Path) -> Path | None:
    """The kernel tree in an unpacked directory: its one subdirectory, or itself."""
    subs = [p for p in d.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / "Makefile").exists():
        return subs[0]
    return d if (d / "Makefile").exists() else None


def _cached_top(dest: Path) -> Path:
    top = _kernel_top(dest)
    if top is None:
        raise SourceError(f"{dest} does not hold one kernel tree",
                          f"remove {dest} and run again")
    return top


def tarball_dirs() -> list[Path]:
    """Where a bare tarball name (`--source linux-source-7.2.tar.xz`) is looked for: Debian's
    /usr/src (installed linux-source packages), then the cache's kernels/ (what
    `make deps KERNEL=newest` unpacks from Debian unstable, scripts/deps.sh)."""
    return [Path("/usr/src"), cache_dir() / "kernels"]


def find_named(spec: Path) -> Path:
    """`spec` itself when it exists or is a path; a bare file name that does not exist
    here is looked up in tarball_dirs()."""
    if spec.exists() or len(spec.parts) != 1:
        return spec
    return next((d / spec.name for d in tarball_dirs() if (d / spec.name).is_file()), spec)


def _missing_hint(spec: Path) -> str:
    if spec.name == "linux-source-newest.tar.xz":
        return ("run 'make deps KERNEL=newest' (or 'make mainline') to fetch Debian "
                "unstable's newest linux-source")
    m = re.fullmatch(r"linux-source-(\d+\.\d+)(?:\.tar\.xz)?", spec.name)
    if not m:
        return "pass --source DIR_OR_TARBALL pointing at a 6.1 or newer kernel"
    if m[1] in ("6.1", "6.12"):
        return f"run 'make deps' (or 'make deps MATRIX=...') to install linux-source-{m[1]}"
    return (f"run 'make deps KERNEL={m[1]}' to fetch linux-source-{m[1]} from Debian "
            f"unstable into {cache_dir() / 'kernels'}")


def resolve_source(spec: Path) -> KernelSource:
    """Turn --source (a tree, a tarball, or a bare tarball name found in tarball_dirs())
    into an unpacked, version-checked tree."""
    spec = find_named(spec)
    if spec.is_symlink() and spec.is_file():  # linux-source-newest.tar.xz -> the real one
        spec = spec.resolve()
    if not spec.exists():
        raise SourceError(f"kernel source {spec} does not exist", _missing_hint(spec))
    if spec.is_dir():
        tree, st = spec.resolve(), None
    elif not spec.is_file():
        raise SourceError(f"{spec} is neither a directory nor a regular file",
                          "pass --source with a kernel source directory or tarball")
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
