"""Where the repository's own inputs are: the test modules, the Kconfig fragments, the
image's /init, the suites. Constants only (the cache and the run directories are
harness/stages/paths.py's)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "modules"
CONFIGS_DIR = REPO / "kernel-configs"
IMAGES_DIR = REPO / "images"
SUITES_DIR = REPO / "suites"
