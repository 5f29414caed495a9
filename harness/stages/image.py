"""Image stage: the guest initramfs (busybox-static:i386 + images/init + test modules).

Written by the kernel's own usr/gen_init_cpio from a spec (so /dev/console exists without
root), then gzip-compressed (the fragment enables CONFIG_RD_GZIP). The image is named by a
hash of its inputs, made under the build directory's lock (two concurrent runs, e.g. the
workers of `pytest -n 2`, make it once) and renamed into place whole.
"""

import gzip
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ..core.errors import BuildError
from ..core.repo import IMAGES_DIR
from .buildlock import build_lock
from .paths import cache_dir
from .progress import say

GUEST_DEBS = ("busybox-static", "dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1",
              "libtommath1", "libgmp10", "zlib1g", "libgcc-s1")
# what the guest needs of those packages: busybox, dropbear and the libraries they load
KEEP = ("bin/busybox", "usr/sbin/dropbear", "usr/bin/dropbearkey", "lib/ld-linux.so.2")
KEEP_LIB_DIRS = ("lib/i386-linux-gnu", "usr/lib/i386-linux-gnu")
MODULE_DIR_IN_GUEST = "/lib/modules/highmem"


def find_deb(name: str) -> Path:
    debs = sorted((cache_dir() / "debs").glob(f"{name}_*_i386.deb"))
    if not debs:
        raise BuildError(f"the guest package {name}:i386 is not in {cache_dir() / 'debs'}",
                         "run 'make deps' (it downloads the guest's Debian i386 packages)")
    return debs[-1]


def _slim(root: Path, slim: Path) -> Path:
    """Keep only the binaries and shared libraries (no docs, locales, gconv)."""
    for rel in KEEP:
        src = root / rel
        if src.exists() or src.is_symlink():
            (slim / rel).parent.mkdir(parents=True, exist_ok=True)
            src.rename(slim / rel)
    for d in KEEP_LIB_DIRS:
        for lib in (root / d).glob("*.so*"):
            (slim / d).mkdir(parents=True, exist_ok=True)
            lib.rename(slim / d / lib.name)
    (slim / "sbin").mkdir(exist_ok=True)
    etc = slim / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shells").write_text("/bin/sh\n")
    return slim


def cpio_spec(root: Path, extra: dict[str, Path]) -> str:
    """gen_init_cpio spec: the unpacked tree under `root` plus `extra` (guest path -> file)."""
    lines = ["dir /dev 0755 0 0", "nod /dev/console 0600 0 0 c 5 1",
             "nod /dev/null 0666 0 0 c 1 3", "dir /proc 0755 0 0", "dir /sys 0755 0 0",
             "dir /tmp 1777 0 0", "dir /root 0700 0 0"]
    seen = {"/dev", "/proc", "/sys", "/tmp", "/root"}
    for p in sorted(root.rglob("*")):
        g = "/" + str(p.relative_to(root))
        if g in seen:
            continue
        seen.add(g)
        if p.is_symlink():
            lines.append(f"slink {g} {p.readlink()} 0777 0 0")
        elif p.is_dir():
            lines.append(f"dir {g} 0755 0 0")
        elif p.is_file():
            lines.append(f"file {g} {p} {oct(p.stat().st_mode & 0o7777)[2:]} 0 0")
    for g, src in sorted(extra.items()):
        parent = str(Path(g).parent)
        for i in range(2, len(parent.split("/")) + 1):
            d = "/".join(parent.split("/")[:i])
            if d and d not in seen:
                seen.add(d)
                lines.append(f"dir {d} 0755 0 0")
        mode = "0755" if g == "/init" else "0644"
        lines.append(f"file {g} {src} {mode} 0 0")
    return "\n".join(lines) + "\n"


def build_image(build_dir: Path, module_files: list[Path]) -> Path:
    """Returns the path of initramfs.cpio.gz, rebuilt only when an input changed."""
    gen = build_dir / "usr" / "gen_init_cpio"
    if not gen.exists():
        raise BuildError(f"{gen} is missing", "rebuild the kernel: highmem clean && make run")
    debs = [find_deb(n) for n in GUEST_DEBS]
    extra = {"/init": IMAGES_DIR / "init"}
    extra.update({f"{MODULE_DIR_IN_GUEST}/{m.name}": m for m in module_files})
    with build_lock(build_dir):  # the .ko files are hashed as no concurrent make writes them
        h = hashlib.sha256()  # names and bytes, not host paths: clones share an image
        for name, f in [*((d.name, d) for d in debs), *extra.items()]:
            h.update(name.encode() + b"\0" + f.read_bytes())
        out = build_dir / "hm-image" / f"initramfs-{h.hexdigest()[:12]}.cpio.gz"
        return _write_image(gen, debs, extra, out, len(module_files))


def _write_atomically(out: Path, data: bytes) -> None:
    """`out` appears whole or not at all: written beside it under a name the image glob
    does not match, then renamed. A run killed while writing leaves no truncated image that
    the next run would take as up to date."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _write_image(gen: Path, debs: list[Path], extra: dict[str, Path], out: Path,
                 nmodules: int) -> Path:
    if out.exists():
        say(f"  image up to date: {out.name}")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    _prune(out.parent)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        root = Path(tmp) / "root"
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
        slim = _slim(root, Path(tmp) / "slim")
        spec = Path(tmp) / "spec"
        spec.write_text(cpio_spec(slim, extra))
        r = subprocess.run([str(gen), str(spec)], capture_output=True, timeout=120)
        if r.returncode != 0:
            raise BuildError(f"gen_init_cpio failed: {r.stderr.decode(errors='replace')[:200]}",
                             f"check the spec in {spec}")
        _write_atomically(out, gzip.compress(r.stdout, compresslevel=1))
    say(f"  image: {out} ({out.stat().st_size // 1024} KiB, {nmodules} modules)")
    return out


IMAGES_KEPT = 8
IMAGE_MAX_AGE_S = 24 * 3600


def _prune(d: Path) -> None:
    """Old images go, but not one a concurrent run may still boot from: only beyond the
    IMAGES_KEPT newest, and only those made more than IMAGE_MAX_AGE_S ago (an image is
    never touched after it is written: its mtime is part of the snapshot key)."""
    now = time.time()
    images = sorted(d.glob("initramfs-*.cpio.gz"), key=lambda p: p.stat().st_mtime)
    for old in images[:-IMAGES_KEPT]:
        try:
            if now - old.stat().st_mtime > IMAGE_MAX_AGE_S:
                old.unlink()
        except OSError:
            pass  # removed by another run meanwhile
