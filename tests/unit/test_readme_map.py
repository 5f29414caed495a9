"""The README's map is complete: its "Layout" section names every harness/**.py file, and
every harness file it names exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layout_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Layout\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_every_harness_file_is_on_the_map():
    section = layout_section()
    files = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "harness").rglob("*.py"))
    missing = [f for f in files if f"`{f}`" not in section]
    assert not missing, f"not in README.md's Layout section: {missing}"


def test_every_file_on_the_map_exists():
    named = set(re.findall(r"`(harness/[\w/]+\.py)`", layout_section()))
    assert named and not [f for f in sorted(named) if not (REPO / f).is_file()]
