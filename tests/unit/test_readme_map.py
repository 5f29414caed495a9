"""The code map is complete: docs/layout.md (linked from the README) names every
harness/**.py file, and every harness file it names exists; every docs/ link of the README
and of the docs resolves."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def layout_section() -> str:
    return (REPO / "docs" / "layout.md").read_text()


def test_every_harness_file_is_on_the_map():
    readme = (REPO / "README.md").read_text()
    section = layout_section()
    assert not [f for f in sorted(p.relative_to(REPO).as_posix()
                                  for p in (REPO / "harness").rglob("*.py"))
                if f"`{f}`" not in readme[readme.index("\n## Layout\n"):]], \
        "not in README.md's Layout section"
    files = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "harness").rglob("*.py"))
    missing = [f for f in files if f"`{f}`" not in section]
    assert not missing, f"not in docs/layout.md: {missing}"


def test_every_file_on_the_map_exists():
    named = set(re.findall(r"`(harness/[\w/]+\.py)`", layout_section()))
    assert named and not [f for f in sorted(named) if not (REPO / f).is_file()]


def test_every_docs_link_resolves():
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(((?:docs/)?[\w.-]+\.md)\)", doc.read_text()):
            base = REPO if target.startswith("docs/") else doc.parent
            assert (base / target).is_file(), f"{doc.name} links to {target}, which is not there"
