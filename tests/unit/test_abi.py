"""The checkpoint ABI: modules/hm_checkpoint.h against its Python mirror, harness.checkpoint.

The harness reads `struct hm_expect` and `struct hm_range_entry` as raw bytes with the
`struct` formats `cp.EXPECT` and `cp.RANGE_ENTRY`. Here every field's offset, size and type
is derived from those formats and checked against the header's own declarations, twice:
compiled (`_Static_assert(offsetof(...) == N)`, gcc -m32 as the i386 kernel builds, native
gcc if -m32 is not available; the structs hold no pointers, so only u64 alignment differs)
and by a small i386 layout parser, which runs without a compiler.
"""

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.core import checkpoint as cp

HEADER = Path(__file__).resolve().parents[2] / "modules" / "hm_checkpoint.h"

# The field names, in the order of the mirror's formats (what parse_expect/parse_range
# unpack); test_field_order_is_the_mirrors ties these names to the mirror's meaning.
EXPECT_FIELDS = ("magic", "version", "kind", "prot", "va", "pfn", "count", "entries",
                 "verdict", "where", "content", "flags", "aux", "label")
RANGE_FIELDS = ("va", "pad", "pfn")

C_TYPES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64"}


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    ctype: str          # u8/u16/u32/u64, or "char" for an "Ns" string


def mirror_fields(fmt: struct.Struct, names: tuple[str, ...]) -> list[Field]:
    """Each field of a little-endian, unpadded `struct` format, named in order."""
    assert fmt.format[0] == "<", "the mirror is little endian, standard sizes, no padding"
    codes: list[str] = []
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt.format[1:]):
        codes += [count + code] if code == "s" else [code] * int(count or 1)
    assert len(codes) == len(names), f"{fmt.format} has {len(codes)} fields, {names}"
    fields, offset = [], 0
    for name, code in zip(names, codes):
        size = struct.calcsize("<" + code)
        fields.append(Field(name, offset, size, "char" if code.endswith("s") else C_TYPES[code]))
        offset += size
    assert offset == fmt.size
    return fields


EXPECT = mirror_fields(cp.EXPECT, EXPECT_FIELDS)
RANGE = mirror_fields(cp.RANGE_ENTRY, RANGE_FIELDS)


def header_text() -> str:
    return HEADER.read_text()


def struct_decl(name: str, text: str) -> str:
    """`struct name { ... };` (attributes included) as the header declares it."""
    m = re.search(rf"^struct {name} \{{\n.*?^\}}[^;]*;", text, re.S | re.M)
    assert m, f"struct {name} not found in {HEADER}"
    return m.group(0)


def header_defines(text: str) -> dict[str, int]:
    return {m[1]: int(m[2], 0) for m in
            re.finditer(r"^#define\s+(HM_CP_MAGIC|HM_CP_VERSION|HM_LABEL_LEN)\s+(\w+)", text,
                        re.M)}


# --- the mirror's own field order -------------------------------------------------------

def test_field_order_is_the_mirrors():
    """Distinct values packed in EXPECT_FIELDS order come out of parse_expect by name."""
    values = {"magic": cp.MAGIC, "version": cp.VERSION, "kind": 3, "prot": 2,
              "va": 0xF1234000, "pfn": 0x123456789, "count": 7, "entries": 0xC0FFEE00,
              "verdict": 0, "where": 0x30000000, "content": 0x1122334455667788,
              "flags": 0x3, "aux": 9, "label": b"a label"}
    e = cp.parse_expect(cp.EXPECT.pack(*(values[n] for n in EXPECT_FIELDS)))
    for name in ("va", "pfn", "count", "entries", "where", "content", "flags", "aux", "prot"):
        assert getattr(e, name) == values[name], name
    assert (e.kind, e.label) == ("range", "a label")
    assert cp.VERDICT_OFFSET == next(f.offset for f in EXPECT if f.name == "verdict") == 32
    raw = cp.RANGE_ENTRY.pack(0xF8001000, 0xDEAD, 0x100001)
    assert cp.parse_range(raw, 1) == [(0xF8001000, 0x100001)]


def test_mirror_sizes():
    assert cp.EXPECT.size == 112 and cp.RANGE_ENTRY.size == 16
    assert struct.calcsize("<IHHIIQIIIIQII56s") == 112


# --- the header, compiled ---------------------------------------------------------------

def c_checks(text: str) -> str:
    """A userspace C file: the header's structs and constants, asserted against the mirror."""
    defines = "\n".join(m.group(0) for m in re.finditer(
        r"^#define\s+(HM_CP_MAGIC|HM_CP_VERSION|HM_LABEL_LEN)\b.*$", text, re.M))
    lines = [
        "typedef unsigned char u8;", "typedef unsigned short u16;",
        "typedef unsigned int u32;", "typedef unsigned long long u64;",
        "#define __packed __attribute__((packed))",
        "#define offsetof(t, m) __builtin_offsetof(t, m)",
        "#define member(t, m) (((t *)0)->m)",
        defines,
        struct_decl("hm_range_entry", text),
        struct_decl("hm_expect", text),
        f'_Static_assert(HM_CP_MAGIC == {cp.MAGIC:#x}u, '
        f'"HM_CP_MAGIC: the mirror has {cp.MAGIC:#x}");',
        f'_Static_assert(HM_CP_VERSION == {cp.VERSION}, '
        f'"HM_CP_VERSION: the mirror reads version {cp.VERSION}");',
    ]
    for tag, fields, fmt in (("hm_expect", EXPECT, cp.EXPECT),
                             ("hm_range_entry", RANGE, cp.RANGE_ENTRY)):
        t = f"struct {tag}"
        lines.append(f'_Static_assert(sizeof({t}) == {fmt.size}, '
                     f'"sizeof({t}): {fmt.size} in the mirror");')
        for f in fields:
            where = f"{tag}.{f.name}: at {f.offset}, {f.size} bytes, {f.ctype} in the mirror"
            lines.append(f'_Static_assert(offsetof({t}, {f.name}) == {f.offset}, "{where}");')
            lines.append(f'_Static_assert(sizeof(member({t}, {f.name})) == {f.size}, '
                         f'"{where}");')
            ctype = "char *" if f.ctype == "char" else f.ctype
            lines.append(f'_Static_assert(_Generic(member({t}, {f.name}), {ctype}: 1, '
                         f'default: 0), "{where}");')
    lines.append('_Static_assert(HM_LABEL_LEN == sizeof(member(struct hm_expect, label)), '
                 '"HM_LABEL_LEN is the label field");')
    return "\n".join(lines) + "\n"


def compile_argv() -> list[str]:
    """gcc -m32 (the i386 ABI) when it works (no libc is needed), else native gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc: test_header_layout_parsed checks the layout without one")
    base = [gcc, "-std=gnu11", "-Werror", "-fsyntax-only", "-x", "c", "-"]
    probe = subprocess.run([gcc, "-m32", "-x", "c", "-fsyntax-only", "-"], input="int x;",
                           capture_output=True, text=True, timeout=60)
    return base[:1] + ["-m32"] + base[1:] if probe.returncode == 0 else base


def compile_c(source: str) -> subprocess.CompletedProcess:
    return subprocess.run(compile_argv(), input=source, capture_output=True, text=True,
                          timeout=60)


def test_header_layout_compiled():
    r = compile_c(c_checks(header_text()))
    assert r.returncode == 0, r.stderr


def test_compiled_check_fails_when_a_field_moves():
    """Swap two u32 fields of the same size: the check must name the moved one."""
    text = header_text()
    decl = struct_decl("hm_expect", text)
    verdict = re.search(r"^\tu32 verdict;.*\n", decl, re.M).group(0)
    where = re.search(r"^\tu32 where;.*\n", decl, re.M).group(0)
    swapped = decl.replace(verdict + where, where + verdict)
    assert swapped != decl
    r = compile_c(c_checks(text.replace(decl, swapped)))
    assert r.returncode != 0 and "hm_expect.verdict: at 32" in r.stderr, r.stderr


# --- the header, parsed (no compiler) ---------------------------------------------------

# i386 System V sizes and alignments inside a struct: u64 is 4-aligned.
I386 = {"u8": (1, 1), "u16": (2, 2), "u32": (4, 4), "u64": (8, 4), "char": (1, 1)}


def parse_layout(decl: str, defines: dict[str, int]) -> dict[str, Field]:
    """The i386 layout of a struct of u8..u64 and char arrays (packed or not)."""
    packed = decl.rstrip(";").rstrip().endswith("__packed")
    body = decl[decl.index("{") + 1:decl.rindex("}")]
    layout: dict[str, Field] = {}
    offset, max_align = 0, 1
    for m in re.finditer(r"^\s*(\w+)\s+(\w+)(?:\[(\w+)\])?;", body, re.M):
        ctype, name, dim = m.groups()
        assert ctype in I386, f"{name}: type {ctype} unknown to this parser: add it to I386"
        size, align = I386[ctype]
        count = 1 if dim is None else defines.get(dim) or int(dim, 0)
        align = 1 if packed else align
        offset = -(-offset // align) * align
        layout[name] = Field(name, offset, size * count, ctype)
        offset += size * count
        max_align = max(max_align, align)
    layout["sizeof"] = Field("sizeof", 0, -(-offset // max_align) * max_align, "")
    return layout


@pytest.mark.parametrize("tag,fields,fmt", [("hm_expect", EXPECT, cp.EXPECT),
                                             ("hm_range_entry", RANGE, cp.RANGE_ENTRY)])
def test_header_layout_parsed(tag, fields, fmt):
    text = header_text()
    layout = parse_layout(struct_decl(tag, text), header_defines(text))
    assert [n for n in layout if n != "sizeof"] == [f.name for f in fields]
    for f in fields:
        assert layout[f.name] == f, f"{tag}.{f.name}: header {layout[f.name]}, mirror {f}"
    assert layout["sizeof"].size == fmt.size


def test_header_constants():
    d = header_defines(header_text())
    assert (d["HM_CP_MAGIC"], d["HM_CP_VERSION"], d["HM_LABEL_LEN"]) == \
        (cp.MAGIC, cp.VERSION, EXPECT[-1].size)


def test_header_offset_comments():
    """The header documents each field's offset (`u32 verdict; /*  32: ...`): keep them true."""
    text = header_text()
    decl = struct_decl("hm_expect", text)
    field_comment = r"^\s*\w+\s+(\w+)(?:\[\w+\])?;\s*/\*\s*(\d+)(?::| \*/)"
    documented = {m[1]: int(m[2]) for m in re.finditer(field_comment, decl, re.M)}
    assert documented == {f.name: f.offset for f in EXPECT}
    assert re.search(rf"^}} __packed;\s*/\* {cp.EXPECT.size} bytes \*/", text, re.M)
