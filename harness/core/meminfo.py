"""The guest's /proc/meminfo, and the check that the 8 GiB really became highmem."""

from .errors import BootError

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


def check_highmem(info: dict[str, int], memory: str, pae: bool = True) -> None:
    """With -m N GiB (N >= 2), HighTotal must exceed N-1 GiB: on i386 with 3G/1G split
    lowmem is below 1 GiB (about 885 MiB), so all the rest must be highmem. Linux 6.12
    with 8 GiB: HighTotal 7481224 kB (shared/highmem-facts.md section 5).

    pae=False (CONFIG_HIGHMEM4G, 2-level tables): the kernel keeps no RAM above 4 GiB
    physical (init_32.c 6.12:615-619, MAX_NONPAE_PFN), and QEMU's pc machine puts all RAM
    beyond 3 GiB above 4 GiB, so only min(N, 3) GiB can be RAM: HighTotal must exceed
    min(N, 3) - 1 GiB (6.12 with -m 4G: 2 GiB and a bit)."""
    gib = memory_gib(memory)
    usable = gib if pae else min(gib, 3.0)
    if usable < 2:
        return
    need = (usable - 1) * KIB_PER_GIB
    high = info.get("HighTotal", 0)
    if high <= need:
        kind = "PAE highmem" if pae else "highmem (2-level, below 4 GiB)"
        raise BootError(
            f"the guest has HighTotal {high} kB, not more than {usable - 1:.0f} GiB "
            f"({need:.0f} kB) of the {memory} given: the kernel is not using {kind}",
            "use a 6.1-6.14 kernel with CONFIG_HIGHMEM64G=y, and QEMU -cpu with +pse36 "
            "(see kernel-configs/highmem64g.config)" if pae else
            "use a kernel with CONFIG_HIGHMEM4G=y (kernel-configs/highmem4g.config)")
