"""Check that requested Kconfig options survived ``olddefconfig`` (pure logic).

Mirrors kunit_tool's check (tools/testing/kunit/kunit_kernel.py,
``validate_config``: "Not all Kconfig options selected in kunitconfig were in
the generated .config. ... Missing: ..."), Linux 6.1 and later.  Both fragments and
the final ``.config`` use the format written by scripts/kconfig/confdata.c:
``CONFIG_FOO=y``, ``CONFIG_BAR="string"``, ``CONFIG_N=4``, and
``# CONFIG_BAZ is not set`` for a visible bool/tristate that is n.  A symbol
whose dependencies are unmet is not written at all, which counts as n.
"""

from __future__ import annotations

import re

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$")

ABSENT = "(absent)"


def parse_config(text: str) -> dict[str, str]:
    """``{"CONFIG_X": value}``; ``# CONFIG_X is not set`` gives ``"n"``.

    Values are kept verbatim (string values keep their double quotes); other
    comments and blank lines are ignored; a later line overrides an earlier one,
    as in ``merge_config.sh``.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _SET.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
            continue
        m = _UNSET.match(line)
        if m:
            out[m.group(1)] = "n"
    return out


def missing_options(requested: dict[str, str],
                    final: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(name, wanted, got)`` for each requested option the final config lacks.

    Wanted ``"n"`` is satisfied by ``"n"`` or by absence; any other value must
    match exactly (quoted strings included).  ``got`` is :data:`ABSENT` when the
    option is not in the final config.  Order follows ``requested``.
    """
    out: list[tuple[str, str, str]] = []
    for name, wanted in requested.items():
        got = final.get(name)
        if wanted == "n":
            if got is None or got == "n":
                continue
        elif got == wanted:
            continue
        out.append((name, wanted, ABSENT if got is None else got))
    return out


def _describe(name: str, value: str) -> str:
    return f"# {name} is not set" if value == "n" else f"{name}={value}"


def format_missing(missing: list[tuple[str, str, str]]) -> str:
    """One line per option, e.g. ``CONFIG_HIGHMEM64G=y (got: is not set)``."""
    lines = []
    for name, wanted, got in missing:
        if got == ABSENT:
            shown = "absent"
        elif got == "n":
            shown = "is not set"
        else:
            shown = got
        lines.append(f"{_describe(name, wanted)} (got: {shown})")
    return "\n".join(lines)
