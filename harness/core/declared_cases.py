"""The KTAP cases a test module declares in its source, before it ever ran: the names of
its `struct hm_suite_case` table (modules/hm_ktap.h: hm_run_suite() reports every case of
the table, in order, whatever happens to it). The pytest plugin collects them as items on a
first run, when its cache has no case of the module yet, so `pytest -k CASE` selects a case
from the start. A module without such a table declares nothing (its cases are known once
it ran). Pure: the C text in, names out."""

import re

TABLE = re.compile(r"struct\s+hm_suite_case\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\}\s*;", re.S)
ENTRY = re.compile(r"\{\s*\"((?:[^\"\\]|\\.)*)\"\s*,")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def declared_cases(c_source: str) -> list[str]:
    """The case names of the source's (first) hm_suite_case table, in table order; [] when
    it has none, or two (which one runs would depend on parameters)."""
    tables = TABLE.findall(COMMENT.sub("", c_source))
    if len(tables) != 1:
        return []
    return list(dict.fromkeys(ENTRY.findall(tables[0])))
