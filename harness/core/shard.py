"""Which work items a CI shard runs (`highmem run --shard I/N`), pure.

A *work item* is one module run on one kernel *cell* (a kernel source x Kconfig fragments x
guest memory x CPUs, named like `6.12.57-highmem64g-8G-smp2`). The items of a run are an
ordered list: the cells in order, each cell's modules in the suite file's order (a run of
today has one cell). The rule, the same on every machine because it reads only that order
(no hashing, no dict or set order, no clock):

    shard I of N (1-based) runs the items at positions [floor((I-1)*L/N), floor(I*L/N))

of the L items: N contiguous blocks whose sizes differ by at most one. Contiguous, so a
shard builds and boots as few kernels as a balanced split allows (with N >= cells, one or
two each) and keeps the suite's order (a module that is expected to crash still comes where
the suite puts it). Every item is in exactly one shard; N > L (an empty shard) is refused.
"""

import re
from dataclasses import dataclass

from .errors import HarnessError

SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_SHARDS = 1000


class ShardError(HarnessError):
    """A --shard value that does not name one shard of a run."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, 1 <= index <= count."""

    index: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class WorkItem:
    """One module run (`module`: the suite entry's title, parameters included) on one
    kernel cell."""

    cell: str
    module: str


def parse_shard(text: str) -> Shard:
    """`I/N` as a Shard; ShardError (exit 2) unless 1 <= I <= N <= MAX_SHARDS."""
    m = SHARD.fullmatch(text)
    fix = "write --shard I/N with 1 <= I <= N, e.g. --shard 2/4 (the second of four shards)"
    if not m:
        raise ShardError(f"--shard {text!r} is not I/N", fix)
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or count > MAX_SHARDS:
        raise ShardError(f"--shard {text}: N must be between 1 and {MAX_SHARDS}", fix)
    if not 1 <= index <= count:
        raise ShardError(f"--shard {text}: I must be between 1 and N ({count})", fix)
    return Shard(index, count)


def block(total: int, shard: Shard) -> range:
    """The positions shard `shard` takes of `total` items (the rule in this file's doc)."""
    return range((shard.index - 1) * total // shard.count, shard.index * total // shard.count)


def select(items: list[WorkItem], shard: Shard) -> list[int]:
    """The positions in `items` that `shard` runs, in order."""
    return list(block(len(items), shard))


def shard_of(position: int, total: int, count: int) -> int:
    """The 1-based shard of `count` that runs the item at `position` of `total`."""
    return next(i for i in range(1, count + 1) if position in block(total, Shard(i, count)))


def check_not_empty(shard: Shard, total: int) -> None:
    """ShardError if some shard of `shard.count` would get no item of `total` (more shards
    than items; refused on every shard alike): a shard that runs nothing cannot pass, and a
    CI matrix larger than the run is a mistake of its configuration."""
    if shard.count > total:
        raise ShardError(f"--shard {shard} selects no module: the run has {total} work "
                         f"item{'s' if total != 1 else ''} (modules x kernels), fewer than "
                         f"{shard.count} shards",
                         f"use at most {total} shards (--shard I/{total}), or add modules")


def cell_id(release: str, fragments: list[str], memory: str, smp: int) -> str:
    """The name of the kernel cell a run tested, e.g. `6.12.57-highmem64g+debug-kmap-local-
    8G-smp2`: kernel release, Kconfig fragments (file stems, in merge order), guest memory
    and CPUs. Only letters, digits and `._+-` are kept (it is a path part in KCIDB ids)."""
    parts = [release or "unknown", "+".join(fragments) or "defconfig", memory, f"smp{smp}"]
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "-".join(parts))
