"""core/monitor_commands.py: what `highmem qemu`, `hm-qemu` and the `monitor` wrapper of
`highmem gdb` pass on to QEMU's monitor, and what they refuse (with what to use instead)."""

import pytest

from harness.core.monitor_commands import (
    MEMORY_BYTES,
    REFUSED,
    MonitorRefused,
    check_command,
    command_name,
    cut_output,
    memory_bytes,
)


@pytest.mark.parametrize("line,name", [
    ("info tlb", "info tlb"), ("i tlb", "info tlb"), ("  info   registers -a", "info registers"),
    ("q", "quit"), ("c", "cont"), ("xp /4gx 0x1000", "xp"), ("info", "info"), ("", "")])
def test_command_name_resolves_hmp_aliases(line, name):
    assert command_name(line) == name


@pytest.mark.parametrize("line", ["info tlb", "i tlb", "info tlb ", "quit", "q", "stop",
                                  "cont", "c", "system_reset", "gdbserver tcp::1234",
                                  "dump-guest-memory -z /tmp/x", "log in_asm", "loadvm a"])
def test_floods_hangs_and_session_breakers_are_refused_with_a_pointer(line):
    with pytest.raises(MonitorRefused) as e:
        check_command(line)
    assert e.value.what.startswith(f"`{command_name(line)}` is refused here: it ")
    assert e.value.fix.startswith("use ")


def test_info_tlb_points_at_hm_pte_and_a_bounded_range():
    with pytest.raises(MonitorRefused) as e:
        check_command("info tlb")
    assert "hm-pte VA" in e.value.fix and "highmem pte VA" in e.value.fix
    assert "hm-kmaps" in e.value.fix


@pytest.mark.parametrize("line", ["info registers", "info mtree -f", "gva2gpa 0xff601000",
                                  "xp /512gx 0x1000", "info cpus", "help", "info mem",
                                  "x /16i $pc", "info tlbx"])
def test_everything_else_is_passed_on_stripped(line):
    assert check_command(f" {line} ") == line


def test_memory_reads_are_bounded():
    assert memory_bytes("xp /8192gx 0") == MEMORY_BYTES
    assert memory_bytes("x /3c 0") == 3 and memory_bytes("xp 0x1000") == 0
    assert memory_bytes("xp /100000x 0") == 400000
    check_command("xp /8192gx 0")
    with pytest.raises(MonitorRefused, match="prints 65544 bytes"):
        check_command("xp /8193gx 0")


@pytest.mark.parametrize("line", ["", "   ", "info registers\nquit", "info\x00tlb"])
def test_empty_or_multi_line_commands_are_refused(line):
    with pytest.raises(MonitorRefused):
        check_command(line)


def test_every_refusal_says_why_and_what_instead():
    assert all(r.why and r.instead and r.name == n for n, r in REFUSED.items())
    assert {"info tlb", "quit", "stop", "cont", "dump-guest-memory"} <= set(REFUSED)


def test_long_output_is_cut_and_counted():
    text = "\n".join(str(i) for i in range(10))
    assert cut_output(text, 10) == text
    out = cut_output(text, 4)
    assert out.splitlines() == ["0", "1", "2", "3", "[6 more lines cut]"]
    assert cut_output("\r\nCPU#1\r\nEAX=0\r\n") == "CPU#1\nEAX=0\n"     # HMP's text


def test_docs_list_every_refused_command():
    from harness.core.repo import REPO
    doc = (REPO / "docs" / "inspect.md").read_text()
    assert all(f"`{name}`" in doc for name in REFUSED), [n for n in REFUSED
                                                         if f"`{n}`" not in doc]
