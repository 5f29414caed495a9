"""Coverage I/O (`highmem coverage`): the guest's .gcda files read over SSH after the suite,
put beside their .gcno copies, turned into JSON by gcov, and the reports written: a text
summary per function (workflows/coverage/model.py) and, when gcovr is installed, HTML with
every line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from . import model as cov
from ...core.errors import HarnessError
from ...stages.progress import say

GCOV_TIMEOUT_S = 120


def collect(run: Callable[[str, float], tuple[int, str, str]], out: Path) -> list[Path]:
    """The .gcda files of the running guest, each written under `out` at its host path
    (out/<absolute object directory>/x.gcda), with the .gcno copied beside it."""
    rc, text, err = run(cov.DUMP_COMMAND, 120.0)
    if rc != 0:
        raise HarnessError(f"reading the guest's gcov data failed ({rc}): {err.strip()[-200:]}",
                           "the kernel needs CONFIG_GCOV_KERNEL and debugfs (kernel-configs/"
                           "gcov.config)")
    try:
        data = cov.parse_dump(text)
    except cov.DumpError as e:
        raise HarnessError(f"the guest's gcov listing is malformed: {e}",
                           "rerun; if it persists, look at the guest with `highmem ssh`") from None
    written = []
    for guest_path, blob in sorted(data.items()):
        host = Path(cov.host_path(guest_path))
        dest = out / host.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob)
        gcno = host.with_suffix(".gcno")
        if gcno.exists():
            shutil.copy2(gcno, dest.with_suffix(".gcno"))
        written.append(dest)
    return written


def gcov_json(gcda: Path) -> dict:
    """gcov's JSON of one object (its .gcno beside it), run in the object's directory."""
    p = subprocess.run(["gcov", "--json-format", "--stdout", "--branch-probabilities",
                        "--object-directory", str(gcda.parent), str(gcda.with_suffix(".c").name)],
                       cwd=gcda.parent, capture_output=True, text=True, timeout=GCOV_TIMEOUT_S)
    if p.returncode != 0:
        raise HarnessError(f"gcov failed on {gcda}: {p.stderr.strip()[-300:]}",
                           "gcov must be the one of the compiler that built the kernel")
    return json.loads(p.stdout.splitlines()[0]) if p.stdout.strip() else {}


def report(gcdas: list[Path], out: Path, source: Path, keep: tuple[str, ...]) -> str:
    """coverage.txt (and coverage.json, html/ with gcovr) in `out`, from every part's
    .gcda (`out`/part-N/…); the text summary."""
    docs = [gcov_json(g) for g in gcdas if g.with_suffix(".gcno").exists()]
    files = cov.summarize(cov.merge_gcov(docs), keep)
    text = cov.format_text(files)
    (out / "coverage.txt").write_text(text)
    (out / "coverage.json").write_text(json.dumps(
        [{"file": f.file, "lines": f.lines, "lines_hit": f.lines_hit,
          "branches": f.branches, "branches_hit": f.branches_hit, "missed": f.missed,
          "functions": [{"name": fn.name, "lines": fn.lines, "lines_hit": fn.lines_hit,
                         "calls": fn.calls, "missed": fn.missed} for fn in f.functions]}
         for f in files], indent=1) + "\n")
    gcovr = shutil.which("gcovr") or str(Path(__file__).resolve().parents[2] / ".venv/bin/gcovr")
    if Path(gcovr).exists():
        html = out / "html"
        html.mkdir(exist_ok=True)
        p = subprocess.run([gcovr, "--root", str(source), "--html-details",
                            str(html / "index.html"), "--txt", str(out / "gcovr.txt"),
                            "--gcov-ignore-errors=all", "--gcov-ignore-parse-errors=all",
                            *(f"--filter={re.escape(str(source / k))}$" for k in keep),
                            *sorted({str(part) for part in out.glob("part-*")})],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            say(f"  gcovr failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return text
