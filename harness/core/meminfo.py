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


def check_highmem(info: dict[str, int], memory: str) -> None:
    """With -m N GiB (N >= 2), HighTotal must exceed N-1 GiB: on i386 with 3G/1G split
    lowmem is below 1 GiB (about 885 MiB), so all the rest must be highmem. Linux 6.12
    with 8 GiB: HighTotal 7481224 kB (shared/highmem-facts.md section 5)."""
    gib = memory_gib(memory)
    if gib < 2:
        return
    need = (gib - 1) * KIB_PER_GIB
    high = info.get("HighTotal", 0)
    if high <= need:
        raise BootError(
            f"the guest has HighTotal {high} kB, not more than {gib - 1:.0f} GiB "
            f"({need:.0f} kB) of the {memory} given: the kernel is not using PAE highmem",
            "use a 6.1-6.14 kernel with CONFIG_HIGHMEM64G=y, and QEMU -cpu with +pse36 "
            "(see kernel-configs/highmem64g.config)")
