"""Kernel profiles: which highmem configuration a kernel tree gets, chosen from its version,
and what the guest then promises (pure).

Linux 6.1-6.14: `CONFIG_HIGHMEM64G` (PAE, 64 GiB physical) with an 8 GiB guest.
Linux 6.15 and later: bbeb69ce3013 ("x86/mm: remove HIGHMEM64G support") removed
`CONFIG_HIGHMEM64G` and 0081fdeccbf6 removed HIGHPTE on x86: an x86-32 kernel addresses at
most 4 GiB. `CONFIG_HIGHMEM4G` stays, and `CONFIG_X86_PAE` (3-level tables, NX) is
independent of it (7.2 arch/x86/Kconfig:1386 HIGHMEM4G, :1456 X86_PAE). A PAE kernel given
more than 4 GiB discards what lies above 4 GiB (83b2d345e178, 6.15-rc4). So the default for
those trees is HIGHMEM4G + X86_PAE with a 4 GiB guest; 2-level (HIGHMEM4G without PAE) is
the `highmem4g` fragment on either side.

Every profile merges kernel-configs/highmem64g.config first (unchanged, so 6.12's build
directory key stays the same); the ≥ 6.15 profile merges pae4g.config after it, whose
`# CONFIG_HIGHMEM64G is not set` replaces the request for a symbol that no longer exists.
"""

from dataclasses import dataclass

FIRST_WITHOUT_HIGHMEM64G = (6, 15)   # bbeb69ce3013
BASE_FRAGMENT = "highmem64g"         # always merged first (harness/stages/kconfig.py)
AUTO_MEMORY = "auto"                 # --memory auto: the profile's guest RAM
GIB = 1024                           # MiB
PC_SPLIT_MIB = 3584                  # QEMU pc: from -m 3.5G on, only 3 GiB stay below 4 GiB


@dataclass(frozen=True)
class Profile:
    """The base Kconfig fragments (names in kernel-configs/, merged in this order before the
    user's) and the guest RAM (QEMU -m) a tree of a version gets by default. Whether the
    kernel keeps RAM above 4 GiB is read from its .config (addressable_mib), not from here."""

    name: str
    fragments: tuple[str, ...]
    memory: str

    def describe(self) -> str:
        return f"{self.name} ({' + '.join(self.fragments)}, {self.memory} guest)"


PAE64G = Profile("pae64g", (BASE_FRAGMENT,), "8G")
PAE4G = Profile("pae4g", (BASE_FRAGMENT, "pae4g"), "4G")


def profile_for(version: tuple[int, ...]) -> Profile:
    """The profile of a kernel of `version` (VERSION, PATCHLEVEL[, SUBLEVEL])."""
    return PAE4G if tuple(version[:2]) >= FIRST_WITHOUT_HIGHMEM64G else PAE64G


def memory_for(memory: str, version: tuple[int, ...]) -> str:
    """--memory as given, or the profile's guest RAM for `auto`."""
    return profile_for(version).memory if memory.strip().lower() == AUTO_MEMORY else memory


def addressable_mib(memory_mib: int, *, highmem64g: bool) -> int:
    """How much of a QEMU `pc` guest's RAM the kernel can keep, in MiB.

    highmem64g: CONFIG_HIGHMEM64G=y in the built .config. Without it highmem_pfn_init()
    caps max_pfn at MAX_NONPAE_PFN, 4 GiB, whether PAE is on or not (6.12 init_32.c:615-620
    `#ifndef CONFIG_HIGHMEM64G`; 7.2 init_32.c:595-598, where the option is gone).

    QEMU's pc machine (hw/i386/pc_piix.c, gigabyte_align) keeps all RAM below 4 GiB up to
    -m 3.5G; from 3.5G on it keeps 3 GiB below and puts the rest above the 4 GiB line.
    A 2-level kernel keeps nothing above 4 GiB (MAX_NONPAE_PFN,
    init_32.c); a ≥ 6.15 PAE kernel neither (max_pfn capped at 4 GiB, memory above it
    discarded: 83b2d345e178); a ≤ 6.14 PAE kernel keeps it all (up to 64 GiB).
    """
    if highmem64g:
        return memory_mib
    return memory_mib if memory_mib < PC_SPLIT_MIB else 3 * GIB
