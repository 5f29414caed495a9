"""`highmem bisect` for real: a synthetic history on the cache's git copy of the 6.12 tree
(the one `highmem mutate` keeps, whose build directory is warm), five commits on top of its
pristine commit, one of which drops the global bit of kmap_local PTEs (mutant 03, caught by
a check of kmap_local_basic). Each step builds incrementally and runs one module (~30 s).

The commits are made with git plumbing and a private index (no checkout, HEAD untouched);
the bisect must find the breaking one, name its case and PTE field, and leave the copy where
it was (HEAD, a clean work tree, no bisect in progress).

Run only with HIGHMEM_BISECT_TESTS=1 (`make bisect-test`): each step is a kernel build (on a
new machine the copy's first build is cold), so it is a campaign of its own, not `make test`.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import HIGHMEM, REPO

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    not os.environ.get("HIGHMEM_BISECT_TESTS"),
    reason="bisect steps are kernel builds: HIGHMEM_BISECT_TESTS=1 (make bisect-test)")]

BROKEN = REPO / "mutants" / "03-kmap-local-no-global.patch"
IDENTITY = {"GIT_AUTHOR_NAME": "bisect test", "GIT_AUTHOR_EMAIL": "bisect@localhost",
            "GIT_COMMITTER_NAME": "bisect test", "GIT_COMMITTER_EMAIL": "bisect@localhost",
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
            "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def git(tree: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
        ) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True,
                          text=True, input=stdin, env={**os.environ, **(env or {})},
                          timeout=600).stdout.strip()


def the_copy() -> Path:
    """The cache's git copy of the default tarball (made here if no mutate session made it;
    its first build is then cold)."""
    from harness.core.options import DEFAULTS
    from harness.workflows import gitcopy
    from harness.stages.source import resolve_source
    src = resolve_source(DEFAULTS.source)
    top = gitcopy.copy_top(src)
    if not (top / "linux" / ".git").is_dir():
        with gitcopy.copy_lock(top):
            gitcopy.kernel_copy(src, top)
    return top / "linux"


def synthetic_history(tree: Path, index: Path) -> list[tuple[str, str]]:
    """(sha, subject) of five commits on HEAD: comments in mm/highmem.c, the third one also
    applies the mutant. Nothing in the work tree, the index or HEAD changes."""
    env = {**IDENTITY, "GIT_INDEX_FILE": str(index)}
    parent = git(tree, "rev-parse", "HEAD")
    git(tree, "read-tree", parent, env=env)
    text = git(tree, "show", f"{parent}:mm/highmem.c") + "\n"
    out = []
    for n in range(1, 6):
        text += f"/* bisect test: harmless change {n} */\n"
        blob = git(tree, "hash-object", "-w", "--stdin", stdin=text)
        git(tree, "update-index", "--cacheinfo", f"100644,{blob},mm/highmem.c", env=env)
        subject = f"mm/highmem: comment {n}"
        if n == 3:
            git(tree, "apply", "--cached", str(BROKEN), env=env)
            text = git(tree, "show", ":mm/highmem.c", env=env) + "\n"
            subject = "mm/highmem: kmap_local maps without _PAGE_GLOBAL"
        tree_id = git(tree, "write-tree", env=env)
        parent = git(tree, "commit-tree", tree_id, "-p", parent, "-m", subject, env=env)
        out.append((parent, subject))
    return out


def test_bisect_finds_the_commit_that_breaks_a_kmap_pte(tmp_path):
    tree = the_copy()
    head = git(tree, "rev-parse", "HEAD")
    assert git(tree, "status", "--porcelain", "--untracked-files=no") == ""
    commits = synthetic_history(tree, tmp_path / "index")
    broken_sha, broken_subject = commits[2]
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(tmp_path / "artifacts"))
    t0 = time.monotonic()
    p = subprocess.run([*HIGHMEM, "bisect", "--good", head, "--bad", commits[-1][0], "--",
                        "--module", "kmap_local_basic", "--timeout", "60"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - t0
    print(p.stderr[-3000:] + p.stdout[-3000:] + f"\n(bisect took {seconds:.0f} s)")
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"First bad commit: {broken_sha} {broken_subject}" in p.stdout
    assert "failing case: kmap_local_basic/kmap_local_above_4g (checkpoint: mapped)" in p.stdout
    assert "PTE field: G (G: expected set, got clear)" in p.stdout
    assert "bisect: step 1, 5 suspect commits" in p.stderr
    assert f"git bisect reset: {tree} is back at" in p.stderr
    # the copy is where it was
    assert git(tree, "rev-parse", "HEAD") == head
    assert git(tree, "status", "--porcelain", "--untracked-files=no") == ""
    gitdir = Path(git(tree, "rev-parse", "--absolute-git-dir"))
    assert not (gitdir / "BISECT_START").exists()
    assert "Traceback" not in p.stderr


def _pgrep(text: str) -> str:
    p = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True)
    return "\n".join(line for line in p.stdout.splitlines() if "pgrep" not in line)


def test_ctrl_c_while_a_step_boots_stops_everything_and_resets_the_copy(tmp_path):
    """SIGINT to `highmem bisect` once the first step's guest is up: the step stops QEMU and
    gdb, no process of the session is left, the copy is back at its HEAD, exit 130. (SIGINT
    is set back to its default for the command: a shell's background job ignores it.)"""
    import signal
    tree = the_copy()
    head = git(tree, "rev-parse", "HEAD")
    commits = synthetic_history(tree, tmp_path / "index")
    art = tmp_path / "artifacts"
    env = dict(os.environ, HIGHMEM_ARTIFACTS=str(art))
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        p = subprocess.Popen([*HIGHMEM, "bisect", "--good", head, "--bad", commits[-1][0],
                              "--", "--module", "kmap_local_basic"], cwd=REPO, env=env,
                             stdout=out, stderr=err, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 1800
            while not list(art.glob("bisect-*/step-01-*/qemu-cmdline.txt")):
                assert p.poll() is None and time.monotonic() < deadline, "no guest started"
                time.sleep(1)
            step_dir = next(art.glob("bisect-*/step-01-*"))
            time.sleep(3)
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=300)
        finally:
            if p.poll() is None:
                p.kill()
    text = (tmp_path / "err").read_text() + (tmp_path / "out").read_text()
    print(text[-3000:])
    assert rc == 130, text[-2000:]
    assert "bisect: interrupted: stopping the step under test" in text
    assert "No first bad commit found: interrupted" in text
    assert f"git bisect reset: {tree} is back at" in text
    sock = (step_dir / "sockets").resolve()
    assert not sock.exists() and not _pgrep(str(sock)), "QEMU or gdb outlived the step"
    assert not _pgrep(str(step_dir.parent / "steps.jsonl")), "the step outlived the bisect"
    assert git(tree, "rev-parse", "HEAD") == head
    assert git(tree, "status", "--porcelain", "--untracked-files=no") == ""
    assert not (Path(git(tree, "rev-parse", "--absolute-git-dir")) / "BISECT_START").exists()
