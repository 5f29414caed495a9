"""`highmem mutate` without a VM: patch descriptions and listing, the verdict read from
hand-built and recorded report.json dicts, the matrix text, the git copy on a tiny tree,
one mutant's apply/run/revert with the run replaced, and every shipped mutant applying to
the files it patches of its tree (6.12, or the one its `# kernel: X.Y` line names)."""

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.workflows.mutate import model as mu
from harness.core.errors import BuildError, HarnessError
from harness.frontends import cli
from harness.stages import host

REPO = Path(__file__).resolve().parents[2]
MUTANTS = REPO / "mutants"
DATA = Path(__file__).parent / "data" / "mutation"
KERNEL_FILES = ("mm/highmem.c", "mm/vmalloc.c", "include/linux/highmem-internal.h",
                "include/linux/highmem.h", "arch/x86/kernel/e820.c")
MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 7\nEXTRAVERSION =\n"
HIGHMEM_C = "int kmap_local(int pfn)\n{\n\treturn pfn;\n}\n"
PFN_PATCH = """pfn + 1 in kmap_local

--- a/mm/highmem.c
+++ b/mm/highmem.c
@@ -1,4 +1,4 @@
 int kmap_local(int pfn)
 {
-\treturn pfn;
+\treturn pfn + 1;
 }
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo),
                           *args], check=True, capture_output=True, text=True).stdout


def mutant(name: str = "01-m", desc: str = "a mutant") -> mu.Mutant:
    return mu.Mutant(Path(f"/m/{name}.patch"), name, desc)


# --- descriptions and patch lists ---

@pytest.mark.parametrize("text,want", [
    ("kmap_local maps pfn + 1\n\ndiff --git a/mm/highmem.c b/mm/highmem.c\n",
     "kmap_local maps pfn + 1"),
    ("# description: no global bit\n# catches: kmap_suite\n--- a/x\n", "no global bit"),
    ("From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\n"
     "Subject: [PATCH 3/7] mm: enforce that vmap can't map pages executable\n\n---\n",
     "mm: enforce that vmap can't map pages executable"),
    ("\n\n# drop the flush\ndiff --git a/x b/x\n", "drop the flush"),
    ("diff --git a/x b/x\n# description: too late\n", mu.NO_DESCRIPTION),
    ("", mu.NO_DESCRIPTION),
])
def test_description_is_the_header_the_subject_or_the_first_line(text, want):
    assert mu.description(text) == want


def test_split_arguments_expands_directories_and_finds_the_suite(tmp_path):
    d = tmp_path / "mutants"
    d.mkdir()
    for name in ("02-b.patch", "01-a.patch", "README.md", "03-c.diff"):
        (d / name).write_text("x\n")
    one = tmp_path / "one.patch"
    one.write_text("x\n")
    suite, patches = mu.split_arguments([str(one), "my.yaml", str(d)])
    assert suite == Path("my.yaml")
    assert [p.name for p in patches] == ["one.patch", "01-a.patch", "02-b.patch", "03-c.diff"]
    assert mu.load_mutant(d / "03-c.diff").name == "03-c"


@pytest.mark.parametrize("items,what", [
    ([], "no patch given"),
    (["missing.patch"], "patch missing.patch does not exist"),
    (["a.yaml", "b.yml"], "two suite files: a.yaml and b.yml"),
])
def test_split_arguments_errors(items, what):
    with pytest.raises(HarnessError) as e:
        mu.split_arguments(items)
    assert e.value.what == what and e.value.fix


def test_copy_name_keeps_the_tarball_cache_name_and_hashes_other_paths():
    tar_tree = Path("/c/src/linux-source-6.12-151931384-1794660961/linux-source-6.12")
    assert mu.copy_name(tar_tree, "tar:x") == "linux-source-6.12-151931384-1794660961"
    a = mu.copy_name(Path("/home/me/linux"), "git:/home/me/linux:abc:def")
    assert re.fullmatch(r"linux-[0-9a-f]{10}", a)
    assert a != mu.copy_name(Path("/home/you/linux"), "dir:/home/you/linux:unversioned")


def test_first_build_error_of_a_kernel_build_log():
    log = ("  CC      mm/highmem.o\n"
           "/c/linux/mm/highmem.c: In function '__kmap_local_pfn_prot':\n"
           "/c/linux/mm/highmem.c:566:18: error: 'pfnx' undeclared (first use in this function)\n"
           "make[3]: *** [scripts/Makefile.build:229: mm/highmem.o] Error 1\n")
    assert mu.first_build_error(log).startswith("/c/linux/mm/highmem.c:566:18: error: 'pfnx'")
    assert mu.first_build_error("make: *** [Makefile:224: __sub-make] Error 2\n") == \
        "make: *** [Makefile:224: __sub-make] Error 2"
    assert mu.first_build_error("") == "(empty build log)"


# --- classification ---

def module(name: str, **kw) -> dict:
    base = {"name": name, "params": "", "passed": True, "reasons": [], "status": "PASS",
            "failure": None, "checkpoints": [], "ktap": [{"name": f"{name}_a", "status": "PASS",
                                                          "directive": ""}]}
    return {**base, **kw}


def report(*modules: dict, boots: list | None = None, **kw) -> dict:
    passed = all(m["passed"] for m in modules) and not any(b.get("failure")
                                                           for b in boots or [])
    return {"passed": passed, "interrupted": "", "modules": list(modules),
            "boots": boots or [{"number": 1, "passed": True, "reasons": [], "failure": None,
                                "console_tail": []}], **kw}


def failure(kind: str, cause: str) -> dict:
    return {"kind": kind, "cause": cause, "line": f"{kind}: {cause}"}


def test_recorded_pte_mismatch_is_caught_by_check():
    data = json.loads((DATA / "check_pfn.json").read_text())
    verdict, evidence, _ = mu.classify(data)
    assert verdict == mu.CHECK
    assert evidence == ("kmap_local_basic mutate=pfn/kmap_local_above_4g: mapped: "
                        "PFN: expected 0x23e401, got 0x23e400")


def test_recorded_boot_panic_is_caught_by_crash_with_its_oops_and_frame():
    data = json.loads((DATA / "boot_panic.json").read_text())
    verdict, evidence, detail = mu.classify(data)
    assert verdict == mu.CRASH
    assert evidence == ("boot 1 failed: the kernel panicked while booting: Kernel panic - not "
                        "syncing: Attempted to kill init! exitcode=0x00000009; BUG: unable to "
                        "handle page fault for address: fffbb000; at __kmap_local_page_prot+0x44")
    assert detail.startswith("boot 1 failed: the kernel panicked")


def test_recorded_mutant_runs():
    """Two runs of `highmem mutate --module kmap_local_basic` on the 6.12 tree."""
    no_global = json.loads((DATA / "check_no_global.json").read_text())
    assert mu.classify(no_global)[:2] == (
        mu.CHECK, "kmap_local_basic/kmap_local_above_4g: mapped: G: expected set, got clear")
    pfn_plus_one = json.loads((DATA / "boot_init_segfault.json").read_text())
    assert mu.classify(pfn_plus_one)[:2] == (
        mu.CRASH, "boot 1 failed: the kernel panicked while booting: Kernel panic - not "
        "syncing: Attempted to kill init! exitcode=0x0000000b; init[1]: segfault at 0 ip "
        "08049b00 sp bfb769e0 error 4 in busybox[1b00,8049000+184000] likely on CPU 1 "
        "(core 1, socket 0)")


def test_a_pte_mismatch_wins_over_a_crash_in_a_later_module():
    bad = {"label": "kmap_local_nested: mapped", "checks": [
        {"label": "kmap_local_nested: mapped[1]", "mismatches": ["G: expected set, got clear"]}]}
    crashed = module("kmap_suite", passed=False, status="FAIL", failure=failure(
        "crash", "oops in kmap_suite: kernel BUG at mm/highmem.c:321!"))
    data = report(module("kmap_local_suite", passed=False, status="FAIL", checkpoints=[bad]),
                  crashed)
    assert mu.classify(data)[:2] == (
        mu.CHECK, "kmap_local_suite/kmap_local_nested: mapped[1]: G: expected set, got clear")


def test_a_failed_ktap_case_is_a_check_with_the_modules_own_words():
    m = module("kmap_atomic_suite", passed=False, status="FAIL", ktap=[
        {"name": "kmap_atomic_no_sched", "status": "FAIL", "directive": "",
         "diagnostics": ["# kmap_atomic_no_sched: expected preemption off, preemptible() is 1"]}])
    assert mu.classify(report(m))[:2] == (
        mu.CHECK, "kmap_atomic_suite/kmap_atomic_no_sched: KTAP FAIL: kmap_atomic_no_sched: "
        "expected preemption off, preemptible() is 1")


def test_an_expected_bug_that_did_not_come_is_a_check():
    text = "expected in the kernel log, not found: kernel BUG at x\\.c:\\d+!"
    m = module("kmap_local_misuse", params="which=overflow", passed=False, status="FAIL",
               reasons=[text], why=[{"kind": "expected-log", "text": text}])
    verdict, evidence, _ = mu.classify(report(m))
    assert verdict == mu.CHECK
    assert evidence.startswith("kmap_local_misuse which=overflow: expected in the kernel log")


def test_a_module_crash_is_a_crash_with_the_decoded_frame_kept():
    cause = ("oops in kmap_suite: kernel BUG at mm/highmem.c:321!; Oops: invalid opcode: 0000 "
             "[#1] PREEMPT SMP; EIP kmap_high+0x8c/0xa0; at kmap_high+0x8c mm/highmem.c:321 <- "
             "case_twice+0x40 [kmap_suite]")
    m = module("kmap_suite", passed=False, status="FAIL", failure=failure("crash", cause),
               reasons=[f"crash: {cause}", "KTAP case kmap_twice: CRASHED"],
               ktap=[{"name": "kmap_twice", "status": "CRASHED", "directive": ""}])
    verdict, evidence, detail = mu.classify(report(module("kmap_local_basic"), m))
    assert verdict == mu.CRASH
    assert evidence == ("kmap_suite: crash: oops in kmap_suite: kernel BUG at mm/highmem.c:321!; "
                        "at kmap_high+0x8c mm/highmem.c:321 <- case_twice+0x40 [kmap_suite]")
    assert "Oops: invalid opcode" in detail


def test_a_hang_a_warning_and_a_warning_at_boot_are_crashes():
    hang = module("kmap_suite", passed=False, status="FAIL", failure=failure(
        "hang", "insmod kmap_suite did not return within 300 s; CPU0 at map_new_virtual+0x50"))
    assert mu.classify(report(hang))[1] == ("kmap_suite: hang: insmod kmap_suite did not return "
                                            "within 300 s")
    warn = module("vmap_suite", passed=False, status="FAIL", reasons=[
        "unexpected kernel message: WARNING: CPU: 0 PID: 70 at mm/vmalloc.c:549"])
    assert mu.classify(report(warn))[:2] == (
        mu.CRASH, "vmap_suite: unexpected kernel message: WARNING: CPU: 0 PID: 70 at "
        "mm/vmalloc.c:549")
    boot = {"number": 1, "passed": False, "failure": None, "console_tail": [],
            "reasons": ["kernel message while booting: WARNING: CPU: 1 PID: 1 at mm/highmem.c:623"]}
    data = report(module("kmap_local_basic"), boots=[boot])
    data["passed"] = False
    assert mu.classify(data)[:2] == (mu.CRASH, "boot 1: kernel message while booting: WARNING: "
                                     "CPU: 1 PID: 1 at mm/highmem.c:623")


def test_a_passing_suite_is_not_caught_and_says_what_ran():
    m = module("kmap_local_basic", checkpoints=[{"label": "x", "checks": [{}, {}]}])
    assert mu.classify(report(m)) == (mu.NOT_CAUGHT, "suite passed: 1 modules, 1 KTAP cases, "
                                      "2 PTE assertions", "suite passed: 1 modules, 1 KTAP "
                                      "cases, 2 PTE assertions")


def test_our_own_failure_and_a_module_that_does_not_compile_are_not_catches():
    ours = module("kmap_suite", passed=False, status="FAIL",
                  failure=failure("harness", "internal error of the harness: KeyError: 'x'"))
    assert mu.classify(report(ours))[0] == mu.ERROR
    nob = module("kmap_suite", passed=False, status="NO BUILD",
                 failure=failure("build", "kmap_suite did not compile: kmap_suite.c:3:1: error: x"))
    assert mu.classify(report(nob))[0] == mu.NO_BUILD


# --- matrix, summary, exit status ---

def outcomes() -> list[mu.Outcome]:
    return [
        mu.Outcome(mutant("01-kmap-local-pfn", "kmap_local maps pfn + 1"), mu.CHECK,
                   "kmap_local_basic/kmap_local_above_4g: mapped: PFN: expected 0x23f401, "
                   "got 0x23f400", seconds=95.2),
        mu.Outcome(mutant("02-pkmap-slot", "a long description " * 5), mu.CRASH,
                   "kmap_suite: crash: oops in kmap_suite: BUG: unable to handle page fault; "
                   "at kmap_high+0x3c mm/highmem.c:320", seconds=130),
        mu.Outcome(mutant("03-vmap-exec", "vmap() maps executable"), mu.NOT_CAUGHT,
                   "suite passed: 1 modules, 2 KTAP cases, 4 PTE assertions", seconds=80.6),
        mu.Outcome(mutant("04-stale", "does not apply"), mu.NO_APPLY,
                   "error: patch failed: mm/highmem.c:562"),
    ]


def test_matrix_table_text():
    assert mu.matrix_table(outcomes(), desc_width=30).splitlines() == [
        "  mutant             description                     verdict          time s  evidence",
        "  01-kmap-local-pfn  kmap_local maps pfn + 1         caught by check      95  "
        "kmap_local_basic/kmap_local_above_4g: mapped: PFN: expected 0x23f401, got 0x23f400",
        "  02-pkmap-slot      a long description a long d...  caught by crash     130  "
        "kmap_suite: crash: oops in kmap_suite: BUG: unable to handle page fault; "
        "at kmap_high+0x3c mm/highmem.c:320",
        "  03-vmap-exec       vmap() maps executable          NOT CAUGHT           81  "
        "suite passed: 1 modules, 2 KTAP cases, 4 PTE assertions",
        "  04-stale           does not apply                  does not apply        0  "
        "error: patch failed: mm/highmem.c:562",
    ]


def test_summary_line_and_json():
    out = outcomes()
    assert mu.summary_line(out) == ("4 mutants: 1 caught by check, 1 caught by crash, 1 not "
                                    "caught, 1 do not apply, 0 do not build")
    doc = mu.matrix_json(out, {"source": "/usr/src/linux-source-6.12.tar.xz"})
    assert doc["summary"]["check"] == 1 and doc["summary"]["total"] == 4
    assert doc["mutants"][1]["verdict"] == "crash" and doc["mutants"][1]["caught"] is True
    json.dumps(doc)


def test_exit_status_every_mutant_caught_and_with_expect_fail_by_a_check():
    out = outcomes()
    assert mu.exit_status(out, False) == 1
    assert mu.exit_status(out[:2], False) == 0
    assert mu.exit_status(out[:2], True) == 1
    assert mu.exit_status(out[:1], True) == 0
    assert mu.exit_status([], False) == 1


# --- the command line ---

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")
    return tmp_path


@pytest.mark.parametrize("argv,what", [
    (["mutate", "nonexistent.patch"], "patch nonexistent.patch does not exist"),
    (["mutate", "a.yaml", "b.yaml", "x.patch"], "two suite files: a.yaml and b.yaml"),
    (["mutate", "--module", "no_such_module", str(MUTANTS / "01-kmap-local-pfn-plus-one.patch")],
     "no_such_module"),
])
def test_usage_errors_end_in_two_lines_and_exit_2(isolated, capsys, argv, what):
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-2].startswith("error: ") and what in lines[-2]
    assert lines[-1].startswith("fix: ")
    assert not (isolated / "cache" / "mutate").exists()


def test_no_patch_at_all_is_an_argparse_error(capsys):
    assert cli.main(["mutate"]) == 2
    assert "the following arguments are required: PATCH" in capsys.readouterr().err


# --- the git copy and one mutant, on a tiny tree ---

@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny "kernel tree" (a plain directory) and the cache in tmp_path."""
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    (tree / "mm").mkdir(parents=True)
    (tree / "Makefile").write_text(MAKEFILE)
    (tree / "mm" / "highmem.c").write_text(HIGHMEM_C)
    patch = tmp_path / "01-pfn.patch"
    patch.write_text(PFN_PATCH)
    return tree, patch


def make_copy(tree: Path):
    from harness.workflows.mutate import command as mutate
    from harness.workflows import gitcopy
    from harness.stages.source import resolve_source
    src = resolve_source(tree)
    top = gitcopy.copy_top(src)
    assert top == Path(gitcopy.cache_dir()) / "mutate" / mu.copy_name(src.tree, src.identity)
    with gitcopy.copy_lock(top):
        return mutate, src, gitcopy.kernel_copy(src, top)


def test_the_copy_is_a_pristine_commit_and_the_tree_is_untouched(tiny):
    tree, patch = tiny
    mutate, src, kc = make_copy(tree)
    assert kc.tree.parent.parent.name == "mutate"
    assert git(kc.tree, "log", "--format=%s").strip() == f"pristine: {tree.resolve()}"
    assert git(kc.tree, "status", "--porcelain") == ""
    assert not (tree / ".git").exists()
    assert kc.apply_error(patch) is None
    kc.apply(patch)
    assert "pfn + 1" in (kc.tree / "mm" / "highmem.c").read_text()
    (kc.tree / "mm" / "new.c").write_text("x\n")
    kc.revert()
    assert (kc.tree / "mm" / "highmem.c").read_text() == HIGHMEM_C
    assert not (kc.tree / "mm" / "new.c").exists()
    assert (tree / "mm" / "highmem.c").read_text() == HIGHMEM_C
    assert make_copy(tree)[2].tree == kc.tree  # made once


def test_a_git_tree_is_cloned_with_its_uncommitted_changes(tiny):
    tree, _ = tiny
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "base")
    (tree / "mm" / "highmem.c").write_text(HIGHMEM_C + "/* local edit */\n")
    _, _, kc = make_copy(tree)
    assert (kc.tree / "mm" / "highmem.c").read_text().endswith("/* local edit */\n")
    assert git(kc.tree, "status", "--porcelain") == ""
    assert git(tree, "status", "--porcelain").strip() == "M mm/highmem.c"
    git(tree, "commit", "-qam", "second")  # the tree moves on: the copy follows
    (tree / "mm" / "highmem.c").write_text(HIGHMEM_C)
    _, _, kc2 = make_copy(tree)
    assert kc2.tree == kc.tree
    assert (kc.tree / "mm" / "highmem.c").read_text() == HIGHMEM_C


def test_run_mutant_verdicts_and_the_revert_whatever_happens(tiny, monkeypatch, tmp_path):
    tree, patch = tiny
    mutate, _, kc = make_copy(tree)
    m = mu.load_mutant(patch)
    assert m.description == "pfn + 1 in kmap_local"
    log = tmp_path / "build.log"
    log.write_text(f"{kc.tree}/mm/highmem.c:3:9: error: 'pfnx' undeclared\nmake: *** Error 2\n")

    def no_build(*args):
        assert "pfn + 1" in (kc.tree / "mm" / "highmem.c").read_text()
        raise BuildError("the kernel build failed (make exit 2)", f"read {log}")
    monkeypatch.setattr(mutate, "run", no_build)
    o = mutate.run_mutant(kc, m, None, (), tmp_path / "run1")
    assert (o.verdict, o.evidence) == (mu.NO_BUILD, "mm/highmem.c:3:9: error: 'pfnx' undeclared")
    assert (kc.tree / "mm" / "highmem.c").read_text() == HIGHMEM_C

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(mutate, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mutate.run_mutant(kc, m, None, (), tmp_path / "run2")
    assert git(kc.tree, "status", "--porcelain") == ""

    stale = tmp_path / "02-stale.patch"
    stale.write_text(PFN_PATCH.replace("return pfn;", "return pfn * 2;"))
    o = mutate.run_mutant(kc, mu.load_mutant(stale), None, (), tmp_path / "run3")
    assert o.verdict == mu.NO_APPLY and "patch failed" in o.evidence

    for_72 = tmp_path / "03-for-7.2.patch"
    for_72.write_text("# kernel: 7.2\n" + PFN_PATCH)
    o = mutate.run_mutant(kc, mu.load_mutant(for_72), None, (), tmp_path / "run4", (6, 12, 7))
    assert (o.verdict, o.evidence) == (mu.NO_APPLY, "a mutant for Linux 7.2 (its '# kernel: "
                                       "7.2' line); this tree is Linux 6.12.7")
    assert (kc.tree / "mm" / "highmem.c").read_text() == HIGHMEM_C  # nothing applied


@pytest.mark.parametrize("text,kernel", [
    ("# description: x\n# kernel: 7.2\n\ndiff --git a/x b/x\n", "7.2"),
    ("# Kernel:  6.15 \n--- a/x\n", "6.15"),
    ("x\n\ndiff --git a/x b/x\n# kernel: 7.2\n", None),   # inside the diff: not a header
    ("# description: x\n--- a/x\n", None),
])
def test_the_kernel_header_says_which_tree_a_mutant_is_for(text, kernel):
    assert mu.kernel_of(text) == kernel
    m = mu.Mutant(Path("/m/x.patch"), "x", "x", kernel)
    assert (m.wrong_kernel((7, 2, 13)) is None) == (kernel in (None, "7.2"))


def fake_run(verdicts: list[str]):
    """A stand-in for run.run: one RunResult per call, from `verdicts` ("crash", "pass",
    "interrupt" as SIGINT arriving during the run)."""
    from harness.core.failure import Failure
    from harness.core.ktap import Case, Suite
    from harness.core.phases import Phases
    from harness.core.results import ModuleResult, RunResult

    def run(opts, suite, run_dir, ops):
        assert opts.source.name == "linux" and opts.source.parent.parent.name == "mutate"
        what = verdicts.pop(0)
        m = ModuleResult(spec=suite[0], insmod_rc=0,
                         suites=[Suite("s", 1, [Case("kmap_local_above_4g", 1, "PASS")], False)])
        if what == "crash":
            m.failure = Failure("crash", "oops in kmap_local_basic: BUG: x; at f+0x3c a.c:1")
        r = RunResult(run_dir=run_dir, modules=[m], meminfo={}, phases=Phases())
        r.interrupted = "SIGINT" if what == "interrupt" else ""
        return r
    return run


def test_cmd_mutate_prints_the_matrix_writes_json_and_stops_on_ctrl_c(tiny, isolated,
                                                                      monkeypatch, capsys):
    from harness.workflows.mutate import command as mutate
    tree, patch = tiny
    second = patch.with_name("02-again.patch")
    second.write_text(PFN_PATCH)
    third = patch.with_name("03-third.patch")
    third.write_text(PFN_PATCH)
    argv = ["mutate", "--source", str(tree), "--module", "kmap_local_basic", "--json",
            str(isolated / "m.json"), str(patch), str(second)]
    monkeypatch.setattr(mutate, "run", fake_run(["crash", "pass"]))
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    assert re.search(r"\n  01-pfn +pfn \+ 1 in kmap_local +caught by crash", out)
    assert "caught by crash" in out and "kmap_local_basic: crash: oops in kmap_local_basic: " \
        "BUG: x; at f+0x3c a.c:1" in out
    assert "Summary: 2 mutants: 0 caught by check, 1 caught by crash, 1 not caught" in out
    doc = json.loads((isolated / "m.json").read_text())
    assert [m["verdict"] for m in doc["mutants"]] == [mu.CRASH, mu.NOT_CAUGHT]
    assert doc["exit_status"] == 1 and doc["modules"] == ["kmap_local_basic"]

    monkeypatch.setattr(mutate, "run", fake_run(["crash", "interrupt"]))
    assert cli.main(argv[:-1] + [str(second), str(third)]) == 130
    out = capsys.readouterr().out
    assert "3 mutants: 0 caught by check, 1 caught by crash, 0 not caught" in out
    assert "2 not run" in out
    copy = next((isolated / "cache" / "mutate").glob("*/linux"))
    assert git(copy, "status", "--porcelain") == ""


# --- the shipped mutants ---

def shipped() -> list[Path]:
    return sorted(MUTANTS.glob("*.patch"))


def test_at_least_25_mutants_each_named_described_and_listed_in_the_readme():
    patches = shipped()
    assert len(patches) >= 25
    readme = (MUTANTS / "README.md").read_text()
    for p in patches:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+\.patch", p.name), p.name
        m = mu.load_mutant(p)
        assert m.description != mu.NO_DESCRIPTION and len(m.description) < 160, p.name
        assert f"`{m.name}`" in readme, f"{m.name} is not in mutants/README.md"
        touched = re.findall(r"^diff --git a/(\S+) ", p.read_text(), re.M)
        assert touched and set(touched) <= set(KERNEL_FILES), (p.name, touched)


def kernel_tree(version: str = "6.12") -> Path | None:
    cache = Path.home() / ".cache" / "highmem-harness" / "src"
    return next(iter(sorted(cache.glob(f"*/linux-source-{version}"))), None)


@pytest.fixture(scope="module")
def kernel_files(tmp_path_factory):
    """kernel_files(version): the files the mutants patch, from the cached tree of that
    version, in a fresh git repo (once per version)."""
    repos: dict[str, Path] = {}

    def files(version: str) -> Path:
        if version in repos:
            return repos[version]
        tree = kernel_tree(version)
        if tree is None:
            pytest.skip(f"the {version} tree is not unpacked in ~/.cache/highmem-harness/src "
                        f"(make deps KERNEL={version}, then a highmem build of it)")
        repo = tmp_path_factory.mktemp(f"kernel-files-{version}")
        for rel in KERNEL_FILES:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tree / rel, repo / rel)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "pristine")
        repos[version] = repo
        return repo
    return files


@pytest.mark.parametrize("patch", shipped(), ids=lambda p: p.stem)
def test_every_mutant_applies_to_its_tree(kernel_files, patch):
    """6.12's, or the tree of the version its `# kernel:` line names (the revert of
    83b2d345e178 is for 7.2: 6.12 has no such code)."""
    version = mu.load_mutant(patch).kernel or "6.12"
    r = subprocess.run(["git", "-C", str(kernel_files(version)), "apply", "--check",
                        str(patch)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_e820_revert_is_for_7_2_and_does_not_apply_to_6_12(kernel_files):
    patch = MUTANTS / "49-e820-keeps-ram-above-max-pfn.patch"
    assert mu.load_mutant(patch).kernel == "7.2"
    r = subprocess.run(["git", "-C", str(kernel_files("6.12")), "apply", "--check",
                        str(patch)], capture_output=True, text=True)
    assert r.returncode != 0


def test_no_two_mutants_are_the_same_change():
    bodies = [re.sub(r"^index .*\n", "", p.read_text().split("\ndiff --git", 1)[1], flags=re.M)
              for p in shipped()]
    assert len(set(bodies)) == len(bodies)


def test_copies_of_reports_are_not_changed_by_classify():
    data = json.loads((DATA / "check_pfn.json").read_text())
    before = copy.deepcopy(data)
    mu.classify(data)
    assert data == before
