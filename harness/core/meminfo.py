"""The guest's /proc/meminfo, and the check that the RAM the profile promises really became
highmem (8 GiB up to 6.14; from 6.15 what lies below 4 GiB: core/profile.py)."""

import re

from .errors import BootError
from .profile import addressable_mib

# The ≥ 6.15 kernel's own words when it caps max_pfn at 4 GiB (7.2 arch/x86/mm/init_32.c:567
# MSG_HIGHMEM_TRIMMED, printed by highmem_pfn_init() when max_pfn > MAX_NONPAE_PFN); 6.12
# says "Warning: only 4GB will be used. Use a HIGHMEM64G enabled kernel!" (init_32.c:585).
TRIM_MESSAGE = "Warning: only 4GB will be used. Support for CONFIG_HIGHMEM64G was removed!"
_TRIM = re.compile(r"Warning: only 4GB will be used\.[^\n]*")

KIB_PER_GIB = 1024 * 1024


def parse_meminfo(text: str) -> dict[str, int]:
    """`HighTotal:  7481224 kB` -> {"HighTotal": 7481224} (kB values)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def memory_gib(memory: str) -> float:
    """QEMU's -m value ("8G", "8192M", "8192") in GiB."""
    m = memory.strip().upper()
    if m.endswith("G"):
        return float(m[:-1])
    if m.endswith("M"):
        return float(m[:-1]) / 1024
    return float(m) / 1024


def usable_gib(memory: str, highmem64g: bool) -> float:
    """GiB of a `pc` guest's -m the kernel keeps (profile.addressable_mib)."""
    return addressable_mib(round(memory_gib(memory) * 1024), highmem64g=highmem64g) / 1024


def check_highmem(info: dict[str, int], memory: str, pae: bool = True,
                  highmem64g: bool | None = None) -> None:
    """HighTotal must exceed what the kernel keeps of -m, less 1 GiB: on i386 with the 3G/1G
    split lowmem is below 1 GiB (about 885 MiB), so all the rest must be highmem. Linux
    6.12 with 8 GiB: HighTotal 7481224 kB (shared/highmem-facts.md section 5).

    What the kernel keeps (profile.addressable_mib; highmem64g: CONFIG_HIGHMEM64G=y in the
    built .config, by default `pae`, the 6.1-6.14 profiles): all of it with HIGHMEM64G;
    without it (HIGHMEM4G, 2-level or PAE, and every PAE kernel from 6.15: max_pfn capped
    at 4 GiB, MAX_NONPAE_PFN, the rest discarded: 83b2d345e178), only what QEMU's pc machine
    puts below 4 GiB: 3 GiB for -m 4G or more, so HighTotal must exceed 2 GiB."""
    highmem64g = pae if highmem64g is None else highmem64g
    usable = usable_gib(memory, highmem64g)
    if usable < 2:
        return
    need = (usable - 1) * KIB_PER_GIB
    high = info.get("HighTotal", 0)
    if high <= need:
        capped = pae and not highmem64g
        kind = ("PAE highmem" if pae and not capped else
                "PAE highmem below 4 GiB (6.15 and later)" if pae else
                "highmem (2-level, below 4 GiB)")
        raise BootError(
            f"the guest has HighTotal {high} kB, not more than {usable - 1:.0f} GiB "
            f"({need:.0f} kB) of the {memory} given: the kernel is not using {kind}",
            "use a 6.1-6.14 kernel with CONFIG_HIGHMEM64G=y, and QEMU -cpu with +pse36 "
            "(see kernel-configs/highmem64g.config)" if pae and not capped else
            "use a kernel with CONFIG_HIGHMEM4G=y and CONFIG_X86_PAE=y "
            "(kernel-configs/pae4g.config)" if pae else
            "use a kernel with CONFIG_HIGHMEM4G=y (kernel-configs/highmem4g.config)")


def memory_note(info: dict[str, int], memory: str, pae: bool, highmem64g: bool,
                dmesg: str = "") -> str:
    """How much of the guest's RAM the kernel kept and how much is highmem, for the report:
    `guest 8G: the kernel keeps 3 GiB (below 4 GiB; 5 GiB above 4 GiB discarded: PAE from
    6.15, 83b2d345e178; it said "Warning: only 4GB ..."), highmem 2.14 GiB`; "" when the
    kernel keeps all of it (the Memory line's HighTotal says the rest)."""
    gib = memory_gib(memory)
    usable = usable_gib(memory, highmem64g)
    lost = gib - usable
    if lost <= 0:
        return ""
    high = info.get("HighTotal", 0) / KIB_PER_GIB
    why = ("no PAE: MAX_NONPAE_PFN" if not pae
           else "PAE without HIGHMEM64G is capped at 4 GiB, as every PAE kernel from 6.15: "
           "bbeb69ce3013, 83b2d345e178")
    trim = _TRIM.search(dmesg)
    said = f'; the kernel said "{trim.group(0).strip()}"' if trim else ""
    return (f"guest {memory}: the kernel keeps {usable:g} GiB (below 4 GiB; {lost:g} GiB "
            f"above 4 GiB discarded: {why}{said}), highmem {high:.2f} GiB")
