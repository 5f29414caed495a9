"""`highmem merge OUT_DIR SHARD...`: read the shards' report.json (files, or run directories
holding one), combine them (workflows/merge/model.py checks that they neither overlap nor miss a
module), write OUT_DIR/report.txt, report.json, junit.xml and kcidb.json, print the report.
Exit 0 if every test passed, 1 if one failed, 2 for unreadable or incomplete input.
"""

import argparse
import json
from pathlib import Path

from ...core.errors import HarnessError
from ...core.junit import junit_xml
from ...core.kcidb import check_origin, kcidb_report
from .model import MergeError, ShardReport, format_merged, merged_json, ordered
from ...stages.atomic_file import write_atomic


def read_shard(arg: str) -> ShardReport:
    """A shard's report.json from `arg` (the file, or a directory holding it)."""
    path = Path(arg)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise MergeError(f"cannot read {path}: {e.strerror or e}",
                         "give a shard's report.json or its run directory") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise MergeError(f"{path} is not JSON ({e})",
                         "give the report.json `highmem run` wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("modules"), list):
        raise MergeError(f"{path} is not a report.json of `highmem run`",
                         "give the report.json `highmem run` wrote")
    return ShardReport(str(path), data)


def cmd_merge(args: argparse.Namespace) -> int:
    origin = check_origin(args.kcidb_origin)
    reports = ordered([read_shard(a) for a in args.shards])
    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"cannot create {out}: {e.strerror or e}",
                           "give a directory that can be created") from None
    merged = merged_json(reports)
    text = format_merged(merged)
    write_atomic(out / "report.txt", text + "\n")
    write_atomic(out / "report.json", json.dumps(merged, indent=2) + "\n")
    write_atomic(out / "junit.xml", junit_xml(merged["runs"]))
    kcidb = kcidb_report(merged["runs"], origin)
    write_atomic(out / "kcidb.json", json.dumps(kcidb, indent=1) + "\n")
    print(text)
    print(f"(written: {out}/report.txt, report.json, junit.xml, kcidb.json)")
    return 0 if merged["passed"] else 1
