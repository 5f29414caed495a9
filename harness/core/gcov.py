"""The per-object gcov switches of a gcov kernel (kernel-configs/gcov.config): kbuild's
`GCOV_PROFILE_<stem>.o=y` on make's command line for the highmem objects only (read in every
directory by scripts/Makefile.lib; no file of the tree is edited). Used by the build stage;
`highmem coverage` (workflows/coverage/) reads what they produce."""

from pathlib import PurePosixPath

# The kernel objects profiled: the highmem and vmalloc mapping code and x86-32's highmem.
PROFILED = ("mm/highmem.o", "mm/vmalloc.o", "arch/x86/mm/highmem_32.o")


def make_variables(config_text: str) -> dict[str, str]:
    """kbuild's per-object gcov switches for PROFILED, when the .config has gcov on."""
    if "\nCONFIG_GCOV_KERNEL=y" not in f"\n{config_text}":
        return {}
    return {f"GCOV_PROFILE_{PurePosixPath(o).stem}.o": "y" for o in PROFILED}
