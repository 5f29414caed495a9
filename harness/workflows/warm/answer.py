"""The warm guest's answer to a `run`, as files: the server writes report.txt, report.json
and (for the pytest plugin) results.json (core/result_json.py: no pickle) in the run's
directory, and its socket answer names them; the client reads them. So an answer of any
size goes through (a range of a million PTEs makes a report.json of hundreds of MiB), while
the socket line stays a few hundred bytes, far below MAX_LINE.

A request without a run directory (the pytest plugin's) gets one of the server's own:
answers/NNNNN in its run directory, the oldest beyond ANSWERS_KEPT removed (only those it
made).
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.result_json import results_data, results_from_data
from ...core.results import ModuleResult
from ...stages.atomic_file import write_atomic
from .channel import WarmError

REPORT_TXT, REPORT_JSON, RESULTS_JSON = "report.txt", "report.json", "results.json"
ANSWERS_DIR = "answers"
ANSWERS_KEPT = 8


def next_answer_dir(server_run_dir: Path, made: list[Path]) -> Path:
    """A new answers/NNNNN directory of the server; `made` (the ones it made before, oldest
    first) is updated, and those beyond ANSWERS_KEPT are removed."""
    root = server_run_dir / ANSWERS_DIR
    root.mkdir(exist_ok=True)
    n = int(made[-1].name) + 1 if made else 1
    d = root / f"{n:05d}"
    d.mkdir()
    made.append(d)
    while len(made) > ANSWERS_KEPT:
        shutil.rmtree(made.pop(0), ignore_errors=True)
    return d


def write_answer(out: Path, results: list[ModuleResult] | None) -> dict[str, Any]:
    """The answer's `files` (name -> path) for a run whose report.txt and report.json are in
    `out`; with `results`, results.json written there too."""
    files = {REPORT_TXT: str(out / REPORT_TXT), REPORT_JSON: str(out / REPORT_JSON)}
    if results is not None:
        write_atomic(out / RESULTS_JSON, json.dumps(results_data(results)) + "\n")
        files[RESULTS_JSON] = str(out / RESULTS_JSON)
    return {"files": files}


@dataclass
class Answer:
    """What a `run` answer's files hold."""

    report: str                     # report.txt's text
    report_json: dict[str, Any]
    results: list[ModuleResult] | None = None   # when asked for (results: json)


def _read(files: dict[str, str], name: str) -> str:
    path = files.get(name)
    if not path:
        raise WarmError(f"the warm guest's answer names no {name}",
                        "restart it (highmem down; highmem up): it is of another version")
    try:
        return Path(path).read_text()
    except OSError as e:
        raise WarmError(f"cannot read the warm guest's {name} ({path}): {e.strerror or e}",
                        "look at warm.log in its run directory (`highmem status`)") from None


def read_answer(resp: dict[str, Any], with_results: bool = False) -> Answer:
    """The files of a `run` answer read back; WarmError if one is missing or malformed."""
    files = resp.get("files")
    if not isinstance(files, dict):
        raise WarmError("the warm guest's answer names no files",
                        "restart it (highmem down; highmem up): it is of another version")
    try:
        data = json.loads(_read(files, REPORT_JSON))
        results = results_from_data(json.loads(_read(files, RESULTS_JSON))) \
            if with_results else None
    except ValueError as e:
        raise WarmError(f"the warm guest's answer files are malformed: {e}",
                        "look at warm.log in its run directory and report this") from None
    return Answer(_read(files, REPORT_TXT).removesuffix("\n"), data, results)
