"""Module results as JSON and back, pure: how the warm guest's server hands its
ModuleResults to the pytest plugin (no pickle: a socket answer is data, never code).

The mapping is read from the dataclasses themselves (their fields and type hints), so every
field of ModuleResult and of what it holds (ModuleSpec with its cases and params, Stop,
Expect, PteCheck, ktap.Suite and Case with its seconds and subtests, Failure) goes out and
comes back, and a field added later too; a field of a type this module does not know is a
TypeError at once (tests/unit/test_result_json.py round-trips every field). Integers beyond
53 bits (PTEs) are "0x..." strings (core/hexjson.py); a Path is its text.
"""

import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from .hexjson import MAX_SAFE, hex64, read_int
from .results import ModuleResult

FORMAT = 1          # the "format" of results_json(): a reader refuses another


def to_data(obj: Any) -> Any:
    """`obj` (a dataclass, list, tuple, dict with str keys, Path, or a JSON scalar) as JSON
    data."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, float)):
        return obj
    if isinstance(obj, int):
        return obj if abs(obj) <= MAX_SAFE else hex64(obj)
    raise TypeError(f"result_json cannot write a {type(obj).__name__}")


def _union(args: tuple[Any, ...], data: Any) -> Any:
    if data is None and type(None) in args:
        return None
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) == 1:
        return from_data(kinds[0], data)
    for a in kinds:             # int | str and the like: the first that takes it as it is
        if isinstance(a, type) and isinstance(data, a) and not isinstance(data, bool):
            return data
    raise TypeError(f"result_json cannot read {data!r} as one of {args}")


def from_data(tp: Any, data: Any) -> Any:
    """The value of type `tp` that to_data() wrote as `data`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(args, data)
    if origin is list:
        return [from_data(args[0], v) for v in data]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v) for v in data)
        return tuple(from_data(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        return {str(k): from_data(args[1], v) for k, v in data.items()}
    if isinstance(tp, type) and is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: from_data(hints[f.name], data[f.name])
                     for f in fields(tp) if f.init and f.name in data})
    if tp is Path:
        return Path(data)
    if tp is bool:
        return bool(data)
    if tp is int:
        return read_int(data)
    if tp is float:
        return float(data)
    if tp is str:
        return str(data)
    raise TypeError(f"result_json cannot read a {tp!r}")


def results_data(results: list[ModuleResult]) -> dict[str, Any]:
    """The JSON data of a list of module results (a warm guest's answer)."""
    return {"format": FORMAT, "results": [to_data(r) for r in results]}


def results_from_data(data: Any) -> list[ModuleResult]:
    """The module results of results_data(); ValueError if `data` is not that."""
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("results"), list):
        raise ValueError("not the module results of this harness (format "
                         f"{data.get('format') if isinstance(data, dict) else '?'})")
    try:
        return [from_data(ModuleResult, r) for r in data["results"]]
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"malformed module results: {e}") from None
