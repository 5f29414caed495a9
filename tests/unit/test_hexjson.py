"""core/hexjson.py: 64-bit values as "0x..." strings in the JSON the harness writes, and
readers that take both forms (reports written before)."""

import json

import pytest

from harness.core.checkpoint import PteCheck
from harness.core.hexjson import MAX_SAFE, hex64, hex_keys, read_int, unsafe_numbers

NX_PTE = 0x800000023EC02163     # a highmem page above 4 GiB, NX set: bit 63


def as_jq16(text: str) -> object:
    """JSON as jq 1.6 reads it: every number a double."""
    return json.loads(text, parse_int=float)


def test_a_pae_pte_as_a_number_reads_back_as_another_pte():
    """What the strings are for: jq 1.6 rounds the number to 9223372046497489000."""
    assert int(as_jq16(json.dumps({"pte": NX_PTE}))["pte"]) != NX_PTE  # type: ignore[index]
    back = as_jq16(json.dumps({"pte": hex64(NX_PTE)}))["pte"]  # type: ignore[index]
    assert read_int(back) == NX_PTE


@pytest.mark.parametrize("value, text", [(0, "0x0"), (NX_PTE, "0x800000023ec02163"),
                                         ((1 << 64) - 1, "0xffffffffffffffff"), (None, None)])
def test_hex64_round_trips(value, text):
    assert hex64(value) == text
    assert read_int(text) == value


@pytest.mark.parametrize("old", [0, 0x23EC02163, NX_PTE])
def test_read_int_takes_the_numbers_of_an_older_report(old):
    assert read_int(old) == old
    assert read_int(json.loads(json.dumps(old))) == old


@pytest.mark.parametrize("bad", [True, 1.5, "123", "pte", [], {}])
def test_read_int_refuses_what_is_neither(bad):
    with pytest.raises(ValueError):
        read_int(bad)


def test_hex_keys_converts_the_named_keys_at_any_depth_only():
    data = {"pte": NX_PTE, "va": 0xFF601000, "levels": [{"value": 7, "index": 3}],
            "pae": True, "flags": "P", "phys": None}
    out = hex_keys(data, ("pte", "value", "phys", "pae"))
    assert out == {"pte": "0x800000023ec02163", "va": 0xFF601000,
                   "levels": [{"value": "0x7", "index": 3}], "pae": True, "flags": "P",
                   "phys": None}
    assert data["pte"] == NX_PTE      # a copy: the input is left alone


def test_unsafe_numbers_names_every_path_beyond_53_bits():
    """The checker the report and inspect tests use: it finds the numbers (red), and
    passes the strings (green)."""
    data = {"a": [{"pte": NX_PTE}, MAX_SAFE], "b": -(MAX_SAFE + 1), "ok": True}
    assert unsafe_numbers(data) == ["$.a[0].pte", "$.b"]
    assert unsafe_numbers(hex_keys(data, ("pte",))) == ["$.b"]


def test_a_pte_check_writes_its_ptes_and_physical_addresses_as_strings():
    c = PteCheck("case: mapped", "mapped", 0xFF601000, NX_PTE, NX_PTE, "P RW NX", 0x23EC02,
                 [], 0x23EC02000, 0x23EC02000)
    d = as_jq16(json.dumps(c.to_json()))
    assert d == {"label": "case: mapped", "kind": "mapped", "va": 0xFF601000,
                 "expected": "0x800000023ec02163", "actual": "0x800000023ec02163",
                 "flags": "P RW NX", "pfn": 0x23EC02, "mismatches": [],
                 "qemu_phys": "0x23ec02000", "walk_phys": "0x23ec02000", "passed": True}
    none = PteCheck("x", "unmapped", 0xF8000000, 0, None, "(no PTE)", None)
    assert none.to_json()["actual"] is None and none.to_json()["expected"] == "0x0"


def test_the_golden_reports_hold_no_number_beyond_53_bits():
    from pathlib import Path
    golden = Path(__file__).parent / "data" / "orchestration" / "golden"
    files = sorted(golden.glob("*.json"))
    assert files
    for f in files:
        assert not unsafe_numbers(json.loads(f.read_text())), f.name
