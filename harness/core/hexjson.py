"""64-bit values in the JSON the harness writes, pure (docs/json-values.md).

A PAE PTE (pteval_t is u64: bit 63 is NX) does not fit in the 53 bits of a JSON number as
most readers parse it: `0x800000023ec02163` written as an integer reads back in jq 1.6 as
9223372046497489000, a different PTE. So every PTE value (expected, actual, a table
entry, a saved pteval, a kernel PTE mask) and every physical address is written as a
"0x..." string; the values that always fit in 53 bits (a 32-bit virtual address, a PFN:
at most 40 bits with PAE, a count) stay numbers. Readers take both forms, so a report
written before this change still reads.
"""

from collections.abc import Iterable
from typing import Any

MAX_SAFE = (1 << 53) - 1     # the largest integer every JSON reader keeps exactly


def hex64(value: int | None) -> str | None:
    """`value` as a "0x..." string (lower-case, no padding); None stays None."""
    return None if value is None else f"{value:#x}"


def read_int(value: object) -> int | None:
    """An integer written by hex64() or as a JSON number (an older report); None stays
    None. ValueError for anything else (a bool, a float, a string that is not hex)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"not an integer or a 0x string: {value!r}")
    if isinstance(value, int):
        return value
    if not value.lower().startswith(("0x", "-0x")):
        raise ValueError(f"not a 0x string: {value!r}")
    return int(value, 16)


def hex_keys(data: Any, keys: Iterable[str]) -> Any:
    """A copy of the JSON-ready `data` (dicts, lists, scalars) with the integer value of
    every dict key in `keys`, at any depth, as a hex64() string."""
    names = frozenset(keys)

    def conv(d: Any) -> Any:
        if isinstance(d, dict):
            return {k: (hex64(v) if k in names and isinstance(v, int)
                        and not isinstance(v, bool) else conv(v)) for k, v in d.items()}
        if isinstance(d, list):
            return [conv(v) for v in d]
        return d
    return conv(data)


def unsafe_numbers(data: Any, path: str = "$") -> list[str]:
    """The JSON paths of every integer in `data` beyond MAX_SAFE (what a checker of a
    written file looks for: there must be none)."""
    if isinstance(data, bool):
        return []
    if isinstance(data, int):
        return [path] if abs(data) > MAX_SAFE else []
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in unsafe_numbers(v, f"{path}.{k}")]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in unsafe_numbers(v, f"{path}[{i}]")]
    return []
