"""The pure parts of `highmem qemu`, `highmem dump` and `highmem pte --cpu` (inspect_args.py),
and their usage errors through the real cli.main: one `error:` and one `fix:` line, exit 2,
before any guest is asked."""

from argparse import Namespace
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.layout import LayoutInputs, compute_layout
from harness.frontends import cli, inspect_args
from harness.frontends.inspect_args import (
    check_cpu,
    held_va,
    hold_kind,
    hold_params,
    pick_sockets,
    sockets_text,
    walk_cpu,
)

HOLD_DMESG = """[   12.1] hm_hold: kmap above_4g va=0xff601000 pfn=0x200400
[   12.1] hm_hold: vmap[3] va=0xf8003000 pfn=0x200403
[   12.2] hm_hold: kmap_local va=0xfff6b000 pfn=0x200402 cpu=1 pid=91
"""


def args(**kw) -> Namespace:
    return Namespace(**{"hold": False, "hold_param": [], "cpu": None, **kw})


def test_hold_params_bind_the_holder_to_the_cpu_asked_for():
    assert hold_params(args()) is None
    assert hold_params(args(hold=True)) == []
    assert hold_params(args(hold=True, cpu=1)) == ["cpu=1"]
    assert hold_params(args(hold_param=["spin=1"], cpu=0)) == ["spin=1", "cpu=0"]
    assert hold_params(args(hold_param=["cpu=1"], cpu=0)) == ["cpu=1"]   # said explicitly
    assert hold_params(args(cpu=1)) is None                             # no hold: no param


def test_cpu_must_be_one_of_the_guests():
    check_cpu(None, 2)
    check_cpu(1, 2)
    with pytest.raises(HarnessError, match=r"--cpu 2: the guest has CPUs 0-1 \(--smp 2\)"):
        check_cpu(2, 2)
    with pytest.raises(HarnessError):
        check_cpu(-1, 2)


def test_hold_addresses_name_what_hm_hold_printed():
    assert hold_kind("hold:kmap_local") == "kmap_local" and hold_kind("0xff601000") is None
    assert held_va("kmap_local", HOLD_DMESG) == 0xFFF6B000
    assert held_va("kmap_above_4g", HOLD_DMESG) == 0xFF601000
    assert held_va("vmap[3]", HOLD_DMESG) == 0xF8003000
    with pytest.raises(HarnessError) as e:
        held_va("kmap_stale", HOLD_DMESG)
    assert "hold:kmap_local" in e.value.fix and "hold:vmap[3]" in e.value.fix


def test_a_kmap_local_va_is_walked_on_the_cpu_whose_slot_it_is():
    lay = compute_layout(LayoutInputs(
        page_offset=0xC0000000, high_memory=0xF75FE000, fixaddr_top=0xFFFFF000,
        fix_kmap_begin=68, fix_kmap_end=131, end_of_fixed_addresses=1025, km_max_idx=16,
        nr_cpus=2, cpu_entry_area_size=176128, last_pkmap=512))
    cpu1_slot0 = lay.kmap_local_va(1, 0)
    assert lay.kmap_local_slot(cpu1_slot0) == (1, 0)
    assert walk_cpu(None, lay.kmap_local_slot(cpu1_slot0)) == 1
    assert walk_cpu(None, lay.kmap_local_slot(lay.kmap_local_va(0, 0))) == 0
    assert walk_cpu(0, lay.kmap_local_slot(cpu1_slot0)) == 0           # asked: as asked
    assert walk_cpu(None, lay.kmap_local_slot(0xFF601000)) is None     # PKMAP: the stopped CPU


def test_the_guest_to_talk_to(tmp_path):
    a, b = tmp_path / "hm-a", tmp_path / "hm-b"
    for d in (a, b):
        d.mkdir()
        (d / "qmp-tools.sock").touch()
    assert pick_sockets(None, a, []) == a and pick_sockets(None, None, [b]) == b
    assert pick_sockets(str(b), a, []) == b
    with pytest.raises(HarnessError, match="no running guest"):
        pick_sockets(None, None, [])
    with pytest.raises(HarnessError, match="2 guests are up") as e:
        pick_sockets(None, a, [b])
    assert "--sockets DIR" in e.value.fix
    with pytest.raises(HarnessError, match="no qmp-tools.sock in it"):
        pick_sockets(str(tmp_path), None, [])


def test_the_banner_names_the_users_socket_and_the_harness_keeps_its_own():
    text = sockets_text(Path("/tmp/hm-x"))
    assert text.startswith("QMP for your own client: /tmp/hm-x/qmp-user.sock")
    assert "qmp.sock" in text and "qmp-tools.sock" in text


def test_gdb_gets_the_tools_socket():
    env = inspect_args.gdb_env({"PATH": "/bin"}, Path("/tmp/hm-x/qmp-tools.sock"))
    assert env["HIGHMEM_QMP"] == "/tmp/hm-x/qmp-tools.sock" and env["PATH"] == "/bin"
    assert Path(env["HIGHMEM_REPO"]).is_dir()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("argv,what", [
    (["qemu", "info", "tlb"], "`info tlb` is refused here"),
    (["qemu", "--", "stop"], "`stop` is refused here"),
    (["qemu"], "no monitor command given"),
    (["qemu", "info", "registers"], "no running guest to talk to"),
    (["qemu", "--timeout", "0", "info", "registers"], "--timeout 0 is not a positive"),
    (["dump", "/etc/passwd"], "/etc/passwd exists"),
    (["dump", "/nonexistent-dir/core"], "/nonexistent-dir is not a directory"),
    (["pte", "--cpu", "2", "0xff601000"], "--cpu 2: the guest has CPUs 0-1"),
    (["pte", "hold:kmap_local"], "hold:kmap_local names a mapping of hm_hold"),
])
def test_usage_errors_are_two_lines_and_exit_2(isolated, capsys, monkeypatch, argv, what):
    monkeypatch.setattr("harness.stages.host.shutil.which", lambda name: f"/usr/bin/{name}")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-2].startswith(f"error: {what}") and lines[-1].startswith("fix: "), err


def test_a_warm_guest_is_asked_but_never_dumped(tmp_path, monkeypatch):
    from harness.frontends import monitor_cli
    warm = tmp_path / "hm-warm"
    warm.mkdir()
    (warm / "qmp-tools.sock").touch()
    monkeypatch.setattr(monitor_cli, "_warm_sockdirs", lambda: [warm])
    monkeypatch.setattr(monitor_cli, "running_guest", lambda: None)
    assert monitor_cli.guest_sockdir(Namespace(sockets=None)) == warm
    with pytest.raises(HarnessError, match="a dump of the warm guest is refused"):
        monitor_cli.guest_sockdir(Namespace(sockets=None), warm=False)
    assert monitor_cli.guest_sockdir(Namespace(sockets=str(warm)), warm=False) == warm
    boot = tmp_path / "hm-boot"
    monkeypatch.setattr(monitor_cli, "running_guest", lambda: {"sockdir": str(boot)})
    assert monitor_cli.guest_sockdir(Namespace(sockets=None), warm=False) == boot
