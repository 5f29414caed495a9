"""The case names a module's source declares (core/declared_cases.py), on the shipped
modules and on hand-made text."""

from harness.core.declared_cases import declared_cases
from harness.core.repo import MODULES_DIR


def test_the_shipped_suites_declare_their_tables():
    helpers = declared_cases((MODULES_DIR / "helpers_suite.c").read_text())
    assert helpers[:2] == ["memcpy_to_page", "memcpy_from_page"] and len(helpers) == 12
    basic = declared_cases((MODULES_DIR / "kmap_local_basic.c").read_text())
    assert basic == ["kmap_local_above_4g", "kmap_local_below_4g"]


def test_no_table_or_two_tables_declare_nothing():
    assert declared_cases("int x;") == []
    two = ('static const struct hm_suite_case a[] = {\n\t{ "x", f },\n};\n'
           'static const struct hm_suite_case b[] = {\n\t{ "y", g },\n};\n')
    assert declared_cases(two) == []


def test_comments_and_formatting():
    text = ('static const struct hm_suite_case cases[] = {\n'
            '\t/* { "old", f }, */\n\t{"a_1", f},\n\t{ "b",\n\t  g },\n};\n')
    assert declared_cases(text) == ["a_1", "b"]
