"""The CI definitions in ci/ (not run here: no GitLab or GitHub): their shard lists match
their shard count, and the commands they run are `highmem run --shard ... --junit ...
--kcidb ...` and `highmem merge` as the CLI parses them, over the directories the shards
write."""

import shlex
from pathlib import Path
from typing import Any

import yaml

from harness.core.shard import parse_shard
from harness.frontends import cli

CI = Path(__file__).resolve().parents[2] / "ci"


def highmem_args(command: str, subst: dict[str, str]) -> Any:
    """The argparse Namespace of a `.venv/bin/highmem ...` line, CI variables substituted."""
    for k, v in subst.items():
        command = command.replace(k, v)
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/highmem", argv
    return cli.parser().parse_args(argv[1:])


def test_gitlab() -> None:
    d = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    shard = d["highmem-shard"]
    count = int(d["variables"]["SHARD_COUNT"])
    (matrix,) = shard["parallel"]["matrix"]
    assert matrix["SHARD_INDEX"] == [str(i) for i in range(1, count + 1)]
    assert shard["script"][0] == "make deps"
    for i in matrix["SHARD_INDEX"]:
        a = highmem_args(shard["script"][-1], {"$SHARD_INDEX": i, "$SHARD_COUNT": str(count)})
        assert a.command == "run" and parse_shard(a.shard).index == int(i)
        assert a.junit == f"results/junit-{i}.xml" and a.kcidb == f"results/kcidb-{i}.json"
    assert shard["variables"]["HIGHMEM_ARTIFACTS"].endswith("artifacts/shard-$SHARD_INDEX")
    assert shard["artifacts"]["when"] == "always"
    merge = d["highmem-merge"]
    assert merge["needs"] == ["highmem-shard"] and merge["when"] == "always"
    m = highmem_args(merge["script"][-1], {})
    assert (m.command, m.out_dir, m.shards) == ("merge", "merged", ["artifacts/shard-*/run-*"])


def test_github() -> None:
    d = yaml.safe_load((CI / "github" / "highmem.yml").read_text())
    shard = d["jobs"]["shard"]
    (count,) = shard["strategy"]["matrix"]["count"]
    assert shard["strategy"]["matrix"]["index"] == list(range(1, count + 1))
    assert "--shm-size" in shard["container"]["options"]
    runs = [s["run"] for s in shard["steps"] if "run" in s]
    assert "make deps" in runs
    command = next(r for r in runs if "highmem run" in r)
    for i in range(1, count + 1):
        a = highmem_args(command, {"${{ matrix.index }}": str(i),
                                   "${{ matrix.count }}": str(count)})
        assert parse_shard(a.shard).index == i
        assert a.junit == f"results/junit-{i}.xml" and a.kcidb == f"results/kcidb-{i}.json"
    assert shard["env"]["HIGHMEM_ARTIFACTS"].endswith("artifacts/shard-${{ matrix.index }}")
    merge = d["jobs"]["merge"]
    assert merge["needs"] == "shard" and merge["if"] == "always()"
    m = highmem_args(next(s["run"] for s in merge["steps"] if "highmem merge" in
                          s.get("run", "")), {})
    assert (m.out_dir, m.shards) == ("merged", ["artifacts/shard-*/run-*"])
