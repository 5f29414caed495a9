"""Kernel profiles (core/profile.py), the HighTotal gate and the report's memory note by
profile (core/meminfo.py), the fragments a tree gets (stages/kconfig.py) and --source by
bare tarball name (stages/source.py). No VM."""

import json
from pathlib import Path

import pytest

from harness.core import meminfo
from harness.core.errors import BootError
from harness.core.preflight import UsageError, checked_memory
from harness.core.profile import PAE4G, PAE64G, addressable_mib, memory_for, profile_for
from harness.stages import kconfig, source

# 7.2 PAE, -m 4G: 3 GiB below 4 GiB, lowmem ~885 MiB: about 2.1 GiB highmem (measured
# with 6.12 HIGHMEM4G on the same guest: 2.25 GB)
HIGH_72_4G = {"HighTotal": 2_250_000, "LowTotal": 890_000}


@pytest.mark.parametrize("version,profile", [((6, 1, 0), PAE64G), ((6, 12, 57), PAE64G),
                                             ((6, 14, 11), PAE64G), ((6, 15, 0), PAE4G),
                                             ((6, 18, 1), PAE4G), ((7, 2, 13), PAE4G)])
def test_the_profile_follows_the_version(version, profile):
    assert profile_for(version) is profile


def test_memory_auto_is_the_profiles():
    assert memory_for("auto", (6, 12, 57)) == "8G"
    assert memory_for("AUTO", (7, 2, 13)) == "4G"
    assert memory_for("8G", (7, 2, 13)) == "8G"  # asked for: kept (the 8 GiB trim test)
    assert checked_memory("auto") == "auto" and checked_memory("8192M") == "8G"
    with pytest.raises(UsageError, match="not a positive memory size"):
        checked_memory("automatic")


@pytest.mark.parametrize("mib,highmem64g,kept", [
    (8192, True, 8192),      # 6.1-6.14 HIGHMEM64G keeps RAM above 4 GiB
    (8192, False, 3072),     # HIGHMEM4G (PAE or not; all PAE from 6.15): pc has 3 GiB below
    (4096, False, 3072),
    (3072, False, 3072),     # below QEMU's 3.5 GiB split all of it is below 4 GiB
    (3584, False, 3072),
])
def test_what_the_kernel_keeps_of_a_pc_guest(mib, highmem64g, kept):
    assert addressable_mib(mib, highmem64g=highmem64g) == kept


def test_the_highmem_gate_checks_what_the_kernel_config_promises():
    meminfo.check_highmem(HIGH_72_4G, "4G", pae=True, highmem64g=False)
    meminfo.check_highmem(HIGH_72_4G, "8G", pae=True, highmem64g=False)  # trimmed: 3 GiB
    with pytest.raises(BootError, match="not using PAE highmem\n"):
        meminfo.check_highmem(HIGH_72_4G, "8G", pae=True, highmem64g=True)
    with pytest.raises(BootError, match="not using PAE highmem\n"):
        meminfo.check_highmem(HIGH_72_4G, "8G")  # the old default: PAE is HIGHMEM64G
    with pytest.raises(BootError, match=r"not more than 2 GiB .* below 4 GiB \(6.15") as e:
        meminfo.check_highmem({"HighTotal": 900_000}, "4G", pae=True, highmem64g=False)
    assert "pae4g.config" in e.value.fix


def test_the_memory_note_says_what_the_kernel_discarded():
    dmesg = ("[    0.000000] Warning: only 4GB will be used. Support for CONFIG_HIGHMEM64G "
             "was removed!\n[    0.000000] 2176MB HIGHMEM available.\n")
    note = meminfo.memory_note(HIGH_72_4G, "8G", True, False, dmesg)
    assert note.startswith("guest 8G: the kernel keeps 3 GiB (below 4 GiB; 5 GiB above "
                           "4 GiB discarded: PAE without HIGHMEM64G is capped at 4 GiB")
    assert f'the kernel said "{meminfo.TRIM_MESSAGE}")' in note
    assert note.endswith("highmem 2.15 GiB")
    old = "Warning: only 4GB will be used. Use a HIGHMEM64G enabled kernel!\n"  # 6.12's words
    assert 'said "Warning: only 4GB will be used. Use a HIGHMEM64G enabled kernel!"' in \
        meminfo.memory_note(HIGH_72_4G, "8G", True, False, old)
    assert "said" not in meminfo.memory_note(HIGH_72_4G, "4G", True, False, "")
    assert "no PAE" in meminfo.memory_note(HIGH_72_4G, "4G", False, False)
    assert meminfo.memory_note({"HighTotal": 7481224}, "8G", True, True) == ""


def test_a_tree_gets_its_profiles_fragments():
    names = [p.name for p in kconfig.resolve_fragments([], (6, 12, 57))]
    assert names == ["highmem64g.config"]
    names = [p.name for p in kconfig.resolve_fragments(["highmem4g"], (7, 2, 13))]
    assert names == ["highmem64g.config", "pae4g.config", "highmem4g.config"]
    req = kconfig.requested_options(kconfig.resolve_fragments([], (7, 2, 13)))
    assert (req["CONFIG_HIGHMEM64G"], req["CONFIG_HIGHMEM4G"], req["CONFIG_X86_PAE"]) == (
        "n", "y", "y")
    req = kconfig.requested_options(kconfig.resolve_fragments(["highmem4g"], (7, 2, 13)))
    assert (req["CONFIG_HIGHMEM4G"], req["CONFIG_X86_PAE"]) == ("y", "n")  # 2-level wins


def test_a_bare_tarball_name_is_found_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHMEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    kernels = tmp_path / "cache" / "kernels"
    kernels.mkdir(parents=True)
    (kernels / "linux-source-7.99.tar.xz").write_bytes(b"x")
    assert source.find_named(Path("linux-source-7.99.tar.xz")) == kernels / \
        "linux-source-7.99.tar.xz"
    assert source.find_named(Path("sub/linux-source-7.99.tar.xz")) == Path(
        "sub/linux-source-7.99.tar.xz")  # a path is a path
    with pytest.raises(source.SourceError, match="does not exist") as e:
        source.resolve_source(Path("linux-source-7.98.tar.xz"))
    assert "make deps KERNEL=7.98" in e.value.fix


def test_the_report_says_what_the_kernel_kept(tmp_path):
    from harness.core.phases import Phases
    from harness.core.report import format_report, report_json
    from harness.core.results import RunResult

    note = meminfo.memory_note(HIGH_72_4G, "4G", True, False)
    result = RunResult(run_dir=tmp_path, modules=[], meminfo=HIGH_72_4G, phases=Phases(),
                       memory_note=note)
    line = next(x for x in format_report(result).splitlines() if x.startswith("Memory:"))
    assert line == ("Memory: HighTotal 2250000 kB, LowTotal 890000 kB, MemTotal 0 kB; guest "
                    "4G: the kernel keeps 3 GiB (below 4 GiB; 1 GiB above 4 GiB discarded: PAE "
                    "without HIGHMEM64G is capped at 4 GiB, as every PAE kernel from 6.15: "
                    "bbeb69ce3013, 83b2d345e178), highmem 2.15 GiB")
    assert json.loads(report_json(result))["memory_note"] == note
    result.memory_note = ""  # 6.12 with 8G: the line as it always was
    assert "memory_note" not in json.loads(report_json(result))
