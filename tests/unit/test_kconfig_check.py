"""Tests for harness.kconfig_check (fragment options surviving olddefconfig)."""

from harness.core.kconfig_check import ABSENT, format_missing, missing_options, parse_config

FRAGMENT = """\
# highmem64g.config
CONFIG_HIGHMEM64G=y
CONFIG_SMP=y
CONFIG_NR_CPUS=4
# CONFIG_PAGE_TABLE_ISOLATION is not set
# CONFIG_RANDOMIZE_BASE is not set
CONFIG_CMDLINE="console=ttyS0 nokaslr"
CONFIG_DEBUG_KMAP_LOCAL=y
"""

FINAL = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.12.117 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_X86_32=y
# CONFIG_NOHIGHMEM is not set
# CONFIG_HIGHMEM4G is not set
CONFIG_HIGHMEM64G=y
CONFIG_HIGHMEM=y
CONFIG_X86_PAE=y
CONFIG_SMP=y
CONFIG_NR_CPUS=4
CONFIG_CMDLINE="console=ttyS0 nokaslr"
# CONFIG_DEBUG_KMAP_LOCAL is not set

"""


def test_parse_config():
    cfg = parse_config(FINAL)
    assert cfg["CONFIG_HIGHMEM64G"] == "y"
    assert cfg["CONFIG_HIGHMEM4G"] == "n"
    assert cfg["CONFIG_NR_CPUS"] == "4"
    assert cfg["CONFIG_CMDLINE"] == '"console=ttyS0 nokaslr"'
    assert "CONFIG_RANDOMIZE_BASE" not in cfg
    assert not any(k.startswith("#") or not k.startswith("CONFIG_") for k in cfg)
    assert len(cfg) == 11


def test_parse_config_later_line_wins_and_ignores_junk():
    cfg = parse_config("CONFIG_A=y\n  \n# random comment\nnot a line\nCONFIG_A=m\r\n")
    assert cfg == {"CONFIG_A": "m"}


def test_all_survived():
    req = parse_config("CONFIG_HIGHMEM64G=y\nCONFIG_SMP=y\n# CONFIG_HIGHMEM4G is not set\n")
    assert missing_options(req, parse_config(FINAL)) == []
    assert format_missing([]) == ""


def test_dropped_and_not_set_semantics():
    missing = missing_options(parse_config(FRAGMENT), parse_config(FINAL))
    # PAGE_TABLE_ISOLATION / RANDOMIZE_BASE: wanted n, absent -> satisfied.
    assert missing == [("CONFIG_DEBUG_KMAP_LOCAL", "y", "n")]


def test_absent_option():
    missing = missing_options({"CONFIG_GDB_SCRIPTS": "y"}, parse_config(FINAL))
    assert missing == [("CONFIG_GDB_SCRIPTS", "y", ABSENT)]
    assert ABSENT == "(absent)"
    assert format_missing(missing) == "CONFIG_GDB_SCRIPTS=y (got: absent)"


def test_wanted_n_but_set():
    missing = missing_options({"CONFIG_X86_PAE": "n"}, parse_config(FINAL))
    assert missing == [("CONFIG_X86_PAE", "n", "y")]
    assert format_missing(missing) == "# CONFIG_X86_PAE is not set (got: y)"


def test_string_and_int_values_compared_exactly():
    final = parse_config(FINAL)
    assert missing_options({"CONFIG_CMDLINE": '"console=ttyS0 nokaslr"'}, final) == []
    assert missing_options({"CONFIG_CMDLINE": "console=ttyS0 nokaslr"}, final) == [
        ("CONFIG_CMDLINE", "console=ttyS0 nokaslr", '"console=ttyS0 nokaslr"')]
    assert missing_options({"CONFIG_NR_CPUS": "8"}, final) == [("CONFIG_NR_CPUS", "8", "4")]


def test_format_missing_lines():
    text = format_missing([("CONFIG_HIGHMEM64G", "y", "n"), ("CONFIG_NR_CPUS", "4", "8"),
                           ("CONFIG_CMDLINE", '"a"', ABSENT)])
    assert text.splitlines() == ["CONFIG_HIGHMEM64G=y (got: is not set)",
                                 "CONFIG_NR_CPUS=4 (got: 8)",
                                 'CONFIG_CMDLINE="a" (got: absent)']
