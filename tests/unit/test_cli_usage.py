"""`highmem` usage and environment errors: caught before anything is built or booted, shown
as one `error:` and one `fix:` line (after argparse's usage text for its own errors), exit 2.
No VM: every test stops before a run directory would be made."""

import os
import signal
import time

import pytest

from harness.core.errors import HarnessError
from harness.frontends import cli
from harness.stages import host

REACHED = "reached new_run_dir"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Artifacts and cache in tmp_path; all tools present; a run stops at new_run_dir()."""
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(host.shutil, "which", lambda name: f"/usr/bin/{name}")

    def stop(*args, **kwargs):
        raise HarnessError(REACHED, "(test)")
    monkeypatch.setattr(cli, "new_run_dir", stop)
    # the subcommands that build or boot: never imported here, stopped where they would start
    monkeypatch.setattr(cli, "load", lambda module, name: stop)


def house_form(capsys, argv: list[str]) -> tuple[str, str]:
    """Run cli.main(argv), check exit 2 and the two-line ending; return (what, fix)."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-2].startswith("error: ") and lines[-1].startswith("fix: "), err
    return lines[-2][len("error: "):], lines[-1][len("fix: "):]


def test_a_good_run_gets_past_every_check(capsys):
    assert house_form(capsys, ["run", "--memory", "5.5G", "--module", "kmap_suite"])[0] == REACHED


@pytest.mark.parametrize("argv,what,fix", [
    (["run", "--frobnicate"], "unrecognized arguments: --frobnicate", "run 'highmem run --help'"),
    (["run", "--smp", "two"], "argument --smp: invalid int value: 'two'", "highmem run --help"),
    (["run", "--accel", "xen"], "argument --accel: invalid choice: 'xen'", "highmem run --help"),
    (["run", "--timeout", "soon"], "invalid float value: 'soon'", "highmem run --help"),
    ([], "the following arguments are required: command", "run 'highmem --help'"),
    (["frobnicate"], "argument command: invalid choice: 'frobnicate'", "run 'highmem --help'"),
    (["pte"], "the following arguments are required: va", "run 'highmem pte --help'"),
    (["clean", "--all"], "unrecognized arguments: --all", "run 'highmem clean --help'"),
])
def test_argparse_errors_end_in_house_form(capsys, argv, what, fix):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: highmem")
    assert lines[-2].startswith(f"error: {what}") and lines[-1] == f"fix: {fix}" or \
        fix in lines[-1], err
    assert not any(": error: " in line for line in lines)


def test_help_still_exits_0(capsys):
    assert cli.main(["run", "--help"]) == 0
    assert "usage: highmem run" in capsys.readouterr().out


@pytest.mark.parametrize("argv,what", [
    (["run", "--memory", "lots"], "--memory 'lots' is not a positive memory size"),
    (["run", "--memory", "0"], "--memory '0' is not a positive memory size"),
    (["run", "--memory=-8G"], "--memory '-8G' is not a positive memory size"),
    (["run", "--memory", "-8G"], "argument --memory: expected one argument"),
    (["run", "--memory", "3G"], "--memory 3G is less than 4 GiB"),
    (["run", "--memory", "2048"], "--memory 2048 (= 2G) is less than 4 GiB"),
    (["run", "--memory", "65G"], "--memory 65G is more than 64 GiB"),
    (["run", "--smp", "0"], "--smp 0 is not a number of CPUs"),
    (["run", "--smp", "-2"], "--smp -2 is not a number of CPUs"),
    (["run", "--timeout", "0"], "--timeout 0 is not a positive number of seconds"),
    (["run", "--timeout", "-5"], "--timeout -5 is not a positive number of seconds"),
    (["build", "--memory", "1G"], "--memory 1G is less than 4 GiB"),
    (["boot", "--smp", "0"], "--smp 0 is not a number of CPUs"),
    (["ssh", "--timeout", "0", "--", "true"], "--timeout 0 is not a positive"),
    (["kmaps", "--memory", "big"], "--memory 'big' is not a positive memory size"),
])
def test_option_values(capsys, argv, what):
    assert house_form(capsys, argv)[0].startswith(what)


def test_memory_is_passed_on_in_one_form(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "load", lambda module, name: (
        lambda a: seen.setdefault("m", a.memory) and 0) if name == "cmd_build" else None)
    assert cli.main(["build", "--memory", "6144"]) == 0
    assert seen["m"] == "6G"


def test_unknown_module_lists_modules(capsys):
    what, fix = house_form(capsys, ["run", "--module", "kmap_local_basic", "--module", "kmapsuite"])
    assert what.startswith("unknown --module 'kmapsuite': not an entry of default.yaml")
    assert fix.startswith("did you mean kmap_suite? use one of: kmap_local_basic, ")


def test_param_for_module_not_in_run(capsys):
    what, fix = house_form(capsys, ["run", "--module", "kmap_suite",
                                    "--param", "kmap_local_basic:mutate=pfn"])
    assert what == ("--param for kmap_local_basic, which is not in this run "
                    "(the run has: kmap_suite)")
    assert fix.startswith("add --module kmap_local_basic")


@pytest.mark.parametrize("param,what", [
    ("kmap_suite:x=1;reboot", "--param kmap_suite:x=1;reboot: ';' in"),
    ("kmap_suite:x=$(reboot)", "holds $ or `"),
    ("kmap_suite", "--param 'kmap_suite' is not MODULE:key=value"),
    (":x=1", "--param ':x=1' is not MODULE:key=value"),
])
def test_bad_params(capsys, param, what):
    assert what in house_form(capsys, ["run", "--param", param])[0]


def test_bad_suite_files(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"modules:\n  - name: kmap_suite\n    params: \xff\n")
    assert house_form(capsys, ["run", str(bad)])[0] == f"{bad}:3: not UTF-8 text (byte 0xff)"
    dup = tmp_path / "dup.yaml"
    dup.write_text("modules:\n  - name: kmap_suite\n    name: vmap_suite\n")
    assert house_form(capsys, ["run", str(dup)])[0].startswith(f"{dup}:3: duplicate key 'name'")
    assert house_form(capsys, ["run", str(tmp_path)])[0] == f"suite file {tmp_path} is a directory"


def test_missing_tools(capsys, monkeypatch):
    monkeypatch.setattr(host.shutil, "which",
                        lambda n: None if n in ("qemu-system-i386", "cpio") else f"/bin/{n}")
    what, fix = house_form(capsys, ["run"])
    assert what == "not found on PATH: qemu-system-i386, cpio"
    assert fix.startswith("run `make deps`")
    assert house_form(capsys, ["boot"])[0] == what
    assert house_form(capsys, ["build"])[0] == "not found on PATH: cpio"


@pytest.mark.parametrize("var", ["HIGHMEM_ARTIFACTS", "HIGHMEM_CACHE"])
@pytest.mark.parametrize("cmd", [["run"], ["build"], ["gdb"], ["ssh", "--", "true"]])
def test_unusable_directories(capsys, monkeypatch, tmp_path, var, cmd):
    f = tmp_path / "file"
    f.write_text("")
    monkeypatch.setenv(var, str(f))
    assert house_form(capsys, cmd)[0] == f"{var} directory {f} is a file, not a directory"
    monkeypatch.setenv(var, str(f / "sub"))
    assert house_form(capsys, cmd)[0] == f"{var} directory {f / 'sub'} cannot be created: " \
                                         f"{f} is a file"


def test_read_only_directory(capsys, monkeypatch, tmp_path):
    def refuse(path):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(host, "_probe", refuse)
    what, fix = house_form(capsys, ["run"])
    assert what == f"HIGHMEM_CACHE directory {tmp_path / 'cache'} is not writable: " \
                   "Read-only file system"
    assert "HIGHMEM_CACHE" in fix


def test_clean_removes_only_run_directories(capsys, tmp_path, monkeypatch):
    """Only the directories new_run_dir made (their marker), once their run has ended;
    look-alike names are left alone (and said)."""
    from tests.unit.test_ownership import made_by_a_finished_run
    art, cache, outside = tmp_path / "artifacts", tmp_path / "cache", tmp_path / "outside"
    made = made_by_a_finished_run(art, ["run", "build", "pytest-gw0", "pte"])
    for d in ["run-20240101-120000-0/sock", "build-20240101-120000-3", "run-notes", "photos"]:
        (art / d).mkdir(parents=True)
    (outside / "keep").mkdir(parents=True)
    os.symlink(outside, art / "boot-20240101-120000-0")
    (art / "notes.txt").write_text("mine")
    (art / "gdb-20240101-120000-0").write_text("a file, not a run directory")
    (cache / "build" / "linux-6.12").mkdir(parents=True)
    (cache / "src").mkdir()
    assert cli.main(["clean"]) == 0
    left = sorted(p.name for p in art.iterdir())
    assert left == ["boot-20240101-120000-0", "build-20240101-120000-3", "gdb-20240101-120000-0",
                    "notes.txt", "photos", "run-20240101-120000-0", "run-notes"]
    assert not any(d.exists() for d in made)
    assert (outside / "keep").is_dir() and (cache / "build").is_dir()
    out = capsys.readouterr().out
    assert "removed 4 run directories" in out
    assert "2 directories named like run directories but without a .highmem-run marker" in out
    assert cli.main(["clean", "--builds"]) == 0
    assert not (cache / "build").exists() and (cache / "src").is_dir() and art.is_dir()


def test_clean_leaves_a_symlinked_build_dir(tmp_path):
    real = tmp_path / "elsewhere"
    (real / "linux").mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    os.symlink(real, tmp_path / "cache" / "build")
    assert cli.main(["clean", "--builds"]) == 0
    assert (real / "linux").is_dir()


def test_sigterm_is_an_interrupt(capsys, monkeypatch):
    def wait_for_term(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "cmd_clean", wait_for_term)
    t0 = time.monotonic()
    assert cli.main(["clean"]) == 143
    assert time.monotonic() - t0 < 4
    assert "interrupted: QEMU and gdb were stopped" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
