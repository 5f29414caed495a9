"""core/result_json.py: a ModuleResult goes to JSON and comes back equal, every field of
it and of what it holds. The sample is made from the dataclasses' own fields, each given a
value that is not its default, so a field added later is in it (and a field of a type the
codec cannot write fails here, not on a warm guest)."""

import json
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.core import report
from harness.core.phases import Phases
from harness.core.result_json import from_data, results_data, results_from_data, to_data
from harness.core.results import ModuleResult, RunResult

BIG = 0x800000023EC02163    # a PAE PTE with NX: beyond 53 bits


def sample(tp: Any, n: int, depth: int = 0) -> Any:
    """A value of type `tp` unlike any default (n varies it; depth stops recursion)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        return sample(next(a for a in args if a is not type(None)), n, depth)
    if origin is list:
        return [] if depth > 2 else [sample(args[0], n + i, depth + 1) for i in range(2)]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(sample(args[0], n + i, depth + 1) for i in range(2))
        return tuple(sample(a, n + i, depth + 1) for i, a in enumerate(args))
    if origin is dict:
        return {f"k{n}": sample(args[1], n, depth + 1)}
    if isinstance(tp, type) and is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: sample(hints[f.name], n + i, depth)
                     for i, f in enumerate(fields(tp)) if f.init})
    return {int: BIG + n, float: 1.25 + n, str: f"text\x1b[{n}]", bool: True,
            Path: Path(f"/artifacts/run-{n}")}[tp]


def dataclasses_in(tp: Any, seen: dict[type, None]) -> dict[type, None]:
    """Every dataclass reachable from `tp` through field types."""
    if isinstance(tp, type) and is_dataclass(tp):
        if tp not in seen:
            seen[tp] = None
            for t in typing.get_type_hints(tp).values():
                dataclasses_in(t, seen)
    for a in typing.get_args(tp):
        dataclasses_in(a, seen)
    return seen


def test_every_field_round_trips():
    r = sample(ModuleResult, 3)
    text = json.dumps(results_data([r, sample(ModuleResult, 7)]))
    back = results_from_data(json.loads(text))
    assert back == [r, sample(ModuleResult, 7)]
    assert back[0].spec.cases and back[0].spec.params and back[0].suites[0].cases[0].seconds
    assert back[0].stops[0].checks[0].actual == r.stops[0].checks[0].actual


def test_the_sample_sets_every_field_of_every_dataclass_it_holds():
    """A field added with a default still is in the sample, unlike its default (so the
    round trip above would lose it if the codec did)."""
    classes = dataclasses_in(ModuleResult, {})
    assert {c.__name__ for c in classes} >= {"ModuleResult", "ModuleSpec", "Stop", "Expect",
                                             "PteCheck", "Suite", "Case", "Failure"}
    for cls in classes:
        obj = sample(cls, 1)
        for f in fields(cls):
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else MISSING)
            assert getattr(obj, f.name) != default, f"{cls.__name__}.{f.name}"


def test_a_field_lost_on_the_way_is_caught():
    """The red side of the round trip: drop any one field from the JSON and the result
    that comes back is not the one that went out."""
    r = sample(ModuleResult, 3)
    data = to_data(r)
    for name in data:
        cut = {"format": 1, "results": [{k: v for k, v in data.items() if k != name}]}
        try:
            assert results_from_data(cut) != [r], name
        except ValueError:
            pass            # a required field: refused
    assert from_data(ModuleResult, data) == r


def test_the_json_has_no_number_beyond_53_bits_and_no_pickle():
    from harness.core.hexjson import unsafe_numbers
    r = sample(ModuleResult, 3)
    data = json.loads(json.dumps(results_data([r])))
    assert not unsafe_numbers(data)
    assert data["results"][0]["stops"][0]["checks"][0]["actual"] == hex(
        r.stops[0].checks[0].actual)


def test_the_report_of_a_round_tripped_result_is_the_same(tmp_path: Path):
    """The derived parts (verdict, reasons, cases as judged) come out the same."""
    r = sample(ModuleResult, 3)
    back = results_from_data(json.loads(json.dumps(results_data([r]))))[0]
    run = RunResult(run_dir=tmp_path, modules=[r], meminfo={}, phases=Phases())
    run2 = RunResult(run_dir=tmp_path, modules=[back], meminfo={}, phases=Phases())
    assert report.format_report(run) == report.format_report(run2)
    assert back.reasons() == r.reasons()


@pytest.mark.parametrize("bad", [None, [], {"format": 2, "results": []}, {"format": 1},
                                 {"format": 1, "results": [{"spec": 3}]}])
def test_what_is_not_results_is_a_value_error(bad):
    with pytest.raises(ValueError):
        results_from_data(bad)


def test_a_type_it_cannot_write_is_a_type_error():
    with pytest.raises(TypeError):
        to_data({"x": {1, 2}})
