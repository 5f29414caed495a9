"""Pure helpers of the pipeline: version gate, meminfo, QEMU argv, cpio spec, CLI params."""

from pathlib import Path

import pytest

from harness.core import meminfo
from harness.core.errors import BootError, HarnessError, SourceError
from harness.frontends import cli
from harness.stages import image, qemu, source


def test_makefile_version():
    text = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n"
    assert source.parse_makefile_version(text) == (6, 12, 117)


@pytest.mark.parametrize("v", [(6, 1, 0), (6, 12, 117), (6, 14, 9), (6, 15, 0), (7, 2, 13)])
def test_supported_versions(v):
    source.check_version(v, "tree")


@pytest.mark.parametrize("v,msg", [((5, 15, 0), "older than"), ((4, 19, 0), "older than")])
def test_refused_versions(v, msg):
    with pytest.raises(SourceError, match=msg) as e:
        source.check_version(v, "tree")
    assert "fix:" in str(e.value)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        source.resolve_source(tmp_path / "nope")


def test_meminfo_and_highmem_check():
    info = meminfo.parse_meminfo("MemTotal: 8243764 kB\nHighTotal: 7481224 kB\n"
                                 "LowTotal: 762540 kB\nHugePages_Total: 0\n")
    assert info["HighTotal"] == 7481224
    meminfo.check_highmem(info, "8G")
    with pytest.raises(BootError, match="not using PAE highmem"):
        meminfo.check_highmem({"HighTotal": 3145728}, "8G")  # a 4 GiB-capped kernel


def test_highmem_check_without_pae_counts_ram_below_4g_only():
    # 6.12 HIGHMEM4G, -m 4G: 3 GiB of RAM below 4 GiB, about 2.1 GiB of it highmem
    meminfo.check_highmem({"HighTotal": 2_250_000}, "4G", pae=False)
    with pytest.raises(BootError, match="not using PAE highmem"):
        meminfo.check_highmem({"HighTotal": 2_250_000}, "4G")
    with pytest.raises(BootError, match=r"not more than 2 GiB .*2-level"):
        meminfo.check_highmem({"HighTotal": 1_000_000}, "8G", pae=False)


def test_qemu_argv_has_no_tcp_and_the_right_cpu():
    tmp_path = Path("/tmp/hm-abc")
    cfg = qemu.QemuConfig(kernel=Path("vmlinux"), initrd=Path("initrd"))
    argv = qemu.qemu_argv(cfg, "tcg", tmp_path)
    joined = " ".join(argv)
    assert "tcp" not in joined and "-s" not in argv
    assert argv[argv.index("-cpu") + 1] == "qemu32,+pse36,+nx,+rdrand"
    assert argv[argv.index("-m") + 1] == "8G"
    assert f"path={tmp_path}/gdb.sock" in joined and f"unix:{tmp_path}/qmp.sock" in joined
    assert "nokaslr" in argv[argv.index("-append") + 1]


def test_qemu_argv_has_the_harness_tools_and_user_qmp_sockets_apart():
    cfg = qemu.QemuConfig(kernel=Path("vmlinux"), initrd=Path("initrd"))
    argv = qemu.qemu_argv(cfg, "tcg", Path("/tmp/hm-abc"))
    qmps = [argv[i + 1] for i, a in enumerate(argv) if a == "-qmp"]
    assert qmps == [f"unix:/tmp/hm-abc/{n},server=on,wait=off" for n in
                    ("qmp.sock", "qmp-tools.sock", "qmp-user.sock")]


def test_qemu_argv_forwards_ssh_on_loopback_to_an_e1000_without_autonegotiation():
    cfg = qemu.QemuConfig(kernel=Path("vmlinux"), initrd=Path("initrd"))
    argv = qemu.qemu_argv(cfg, "tcg", Path("/tmp/hm-abc"), ssh_port=2222)
    assert argv[argv.index("-netdev") + 1] == "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22"
    assert argv[argv.index("-device") + 1] == "e1000,netdev=net0,autonegotiation=off"


def test_cpio_spec(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_text("x")
    (tmp_path / "bin" / "sh").symlink_to("busybox")
    spec = image.cpio_spec(tmp_path, {"/init": Path("/i"), "/lib/modules/highmem/a.ko": Path("/a")})
    assert "nod /dev/console 0600 0 0 c 5 1" in spec
    assert "slink /bin/sh busybox 0777 0 0" in spec
    assert "file /init /i 0755 0 0" in spec
    assert spec.index("dir /lib/modules/highmem") < spec.index("file /lib/modules/highmem/a.ko")


def test_cli_params():
    assert cli._params(["m:a=1", "m:b=2", "n:c=3"]) == {"m": "a=1 b=2", "n": "c=3"}
    with pytest.raises(HarnessError):
        cli._params(["no-colon"])


def test_qemu_argv_serial_console_turns_no_byte_into_a_signal():
    """^C/^Z/^\\ reaching QEMU's stdio pty must be data (issue 19): signal=off clears ISIG."""
    cfg = qemu.QemuConfig(kernel=Path("vmlinux"), initrd=Path("initrd"))
    argv = qemu.qemu_argv(cfg, "tcg", Path("/tmp/hm-abc"))
    assert argv[argv.index("-serial") + 1] == "chardev:ser0"
    assert "stdio,id=ser0,signal=off" in argv
