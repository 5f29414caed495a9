"""Shard selection (core/shard.py): every work item in exactly one shard, balanced,
contiguous, the same for the same list; --shard usage errors end as error/fix, exit 2."""

import pytest

from harness.core.shard import (
    Shard,
    ShardError,
    WorkItem,
    cell_id,
    check_not_empty,
    parse_shard,
    select,
    shard_of,
)
from harness.frontends import cli

CELL = "6.12.117-highmem64g-8G-smp2"


def items(n: int, cells: tuple[str, ...] = (CELL,)) -> list[WorkItem]:
    return [WorkItem(c, f"m{i}") for c in cells for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("total", [5, 6, 7, 11, 12, 31])
def test_every_item_in_exactly_one_shard_balanced_and_contiguous(count: int,
                                                                 total: int) -> None:
    work = items(total)
    shards = [select(work, Shard(i, count)) for i in range(1, count + 1)]
    assert sorted(p for s in shards for p in s) == list(range(total))   # once each
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1              # balanced
    assert [p for s in shards for p in s] == list(range(total))         # contiguous, in order
    for i, s in enumerate(shards, start=1):
        assert all(shard_of(p, total, count) == i for p in s)


def test_the_rule_on_an_example_is_stable() -> None:
    """7 modules in 3 shards: [0, 1], [2, 3], [4, 5, 6]; the same list, the same answer
    (it reads positions only: no hash, no dict or set order)."""
    work = items(7)
    assert [select(work, Shard(i, 3)) for i in (1, 2, 3)] == [[0, 1], [2, 3], [4, 5, 6]]
    assert select(list(work), Shard(2, 3)) == select(work, Shard(2, 3))
    renamed = [WorkItem("other-cell", f"x{i}") for i in range(7)]
    assert select(renamed, Shard(2, 3)) == [2, 3]


def test_a_shard_touches_few_cells() -> None:
    """Two cells of 5 modules in 2 shards: each shard builds and boots one kernel."""
    work = items(5, cells=("a", "b"))
    assert [{work[p].cell for p in select(work, Shard(i, 2))} for i in (1, 2)] == [{"a"}, {"b"}]


@pytest.mark.parametrize("text, index, count", [("1/1", 1, 1), ("2/4", 2, 4), (" 3 / 3 ", 3, 3)])
def test_parse_shard(text: str, index: int, count: int) -> None:
    assert parse_shard(text) == Shard(index, count)
    assert str(Shard(index, count)) == f"{index}/{count}"


@pytest.mark.parametrize("text, what", [
    ("0/2", "I must be between 1 and N"), ("3/2", "I must be between 1 and N"),
    ("1/0", "N must be between 1 and"), ("x", "is not I/N"), ("1/2/3", "is not I/N"),
    ("-1/2", "is not I/N"), ("", "is not I/N")])
def test_bad_shards_are_refused(text: str, what: str) -> None:
    with pytest.raises(ShardError, match=what) as e:
        parse_shard(text)
    assert str(e.value).startswith("error: ") and "\nfix: write --shard I/N" in str(e.value)


def test_an_empty_shard_is_refused() -> None:
    check_not_empty(Shard(2, 2), 2)
    with pytest.raises(ShardError, match="selects no module: the run has 2 work items"):
        check_not_empty(Shard(1, 3), 2)


def test_cell_id() -> None:
    assert cell_id("6.12.117", ["highmem64g"], "8G", 2) == CELL
    assert cell_id("6.12.117", ["highmem64g", "debug-kmap-local"], "5632M", 4) == \
        "6.12.117-highmem64g+debug-kmap-local-5632M-smp4"
    assert cell_id("6.12.0 rc1/x", [], "8G", 1) == "6.12.0_rc1_x-defconfig-8G-smp1"


@pytest.mark.parametrize("argv, what", [
    (["--shard", "0/2"], "error: --shard 0/2: I must be between 1 and N (2)"),
    (["--shard", "two"], "error: --shard 'two' is not I/N"),
    (["--shard", "9/9", "--module", "kmap_local_basic"],
     "error: --shard 9/9 selects no module: the run has 1 work item"),
    (["--junit", "/nonexistent/dir/j.xml"], "error: --junit /nonexistent/dir/j.xml: "
     "directory /nonexistent/dir does not exist"),
    (["--kcidb", "/"], "error: --kcidb /: is a directory"),
    (["--kcidb-origin", "My-Lab"], "error: --kcidb-origin 'My-Lab' is not a KCIDB origin")])
def test_cli_usage_errors(argv: list[str], what: str, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(cli, "_check_host", lambda tools: None)
    monkeypatch.setattr(cli, "load", lambda *a: pytest.fail("nothing may run"))
    assert cli.main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert what in err and "\nfix: " in err, err
