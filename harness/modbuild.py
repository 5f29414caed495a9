"""Stage 5, modules: build our test modules (modules/) or a user's out of tree, against the
kernel under test. Sources are copied into the build directory first, so the repository (or
the user's directory) gets no build litter and each kernel has its own objects.
"""

import hashlib
import shutil
import subprocess
from pathlib import Path

from .build import KernelBuild, build_lock, compiler
from .errors import BuildError
from .paths import MODULES_DIR
from .progress import say


def _sync(src: Path, dst: Path) -> None:
    """Copy the sources that changed (mtime kept, so kbuild rebuilds only those)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix in (".c", ".h") or f.name in ("Kbuild", "Makefile"):
            t = dst / f.name
            if not t.exists() or t.stat().st_mtime != f.stat().st_mtime or \
                    t.stat().st_size != f.stat().st_size:
                shutil.copy2(f, t)


def build_modules(kb: KernelBuild, src: Path = MODULES_DIR,
                  extra_symbols: Path | None = None) -> list[Path]:
    """Run `make M=` for one module directory; returns the .ko files it produced.

    A user's directory gets `-I modules/` (for hm_checkpoint.h) and our Module.symvers (for
    hm_checkpoint()) so it can call the checkpoint API without copying anything.
    """
    if not (src / "Kbuild").exists() and not (src / "Makefile").exists():
        raise BuildError(f"{src} has no Kbuild or Makefile",
                         "add a Kbuild file with 'obj-m += your_module.o'")
    work = _work_dir(kb, src)
    with build_lock(kb.build_dir):
        _sync(src, work)
        return _make_modules(kb, src, work, extra_symbols)


def _make_modules(kb: KernelBuild, src: Path, work: Path,
                  extra_symbols: Path | None) -> list[Path]:
    argv = ["make", "-C", str(kb.build_dir), f"M={work}", "ARCH=i386", f"CC={compiler()}",
            f"KCFLAGS=-I{MODULES_DIR}", "modules"]
    if extra_symbols is not None:
        argv.append(f"KBUILD_EXTRA_SYMBOLS={extra_symbols}")
    log = work / "build.log"
    with log.open("w") as f:
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        say(log.read_text(errors="replace")[-2000:])
        raise BuildError(f"building the modules in {src} failed", f"read {log}")
    kos = sorted(work.glob("*.ko"))
    say(f"  modules: {', '.join(k.name for k in kos)}")
    return kos


def _work_dir(kb: KernelBuild, src: Path) -> Path:
    """Per kernel build and per source directory (two clones must not share objects)."""
    real = src.resolve()
    tag = hashlib.sha256(str(real).encode()).hexdigest()[:8]
    return kb.build_dir / "hm-modules" / f"{real.name}-{tag}"


def symvers(kb: KernelBuild) -> Path:
    return _work_dir(kb, MODULES_DIR) / "Module.symvers"
