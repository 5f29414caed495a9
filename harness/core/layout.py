"""The i386 kernel address-space layout, computed from values read off the running kernel.

Formulas: arch/x86/include/asm/pgtable_32_areas.h and fixmap.h, identical in Linux 6.1 and
6.12 (shared/highmem-facts.md section 2); slot arithmetic: mm/highmem.c kmap_local_idx_push()
and kmap_local_calc_idx(). Pure: `checker.py` reads the inputs through gdb.
"""

from dataclasses import asdict, dataclass
from typing import Any

PAGE_SIZE = 4096
PFN_4G = 0x100000          # the first page frame above 4 GiB physical (PAE only)
PMD_MASK_PAE = ~((1 << 21) - 1) & 0xFFFFFFFF
PMD_MASK_2LEVEL = ~((1 << 22) - 1) & 0xFFFFFFFF  # non-PAE: the PMD is folded into the PGD
VMALLOC_OFFSET = 8 << 20
KM_MAX_IDX_DEBUG = 33  # 16 without DEBUG_KMAP_LOCAL (asm-generic/kmap_size.h)


@dataclass(frozen=True)
class LayoutInputs:
    """What the kernel tells us (through gdb) and its .config.

    page_offset: CONFIG_PAGE_OFFSET; high_memory: `high_memory` (void *);
    fixaddr_top: `__FIXADDR_TOP` (unsigned long, mm/pgtable_32.c);
    fix_kmap_begin / fix_kmap_end / end_of_fixed_addresses: enum fixed_addresses values;
    km_max_idx: sizeof(task_struct.kmap_ctrl.pteval) / sizeof(pte_t);
    nr_cpus: sizeof(__per_cpu_offset) / sizeof(long) (NR_CPUS);
    cpu_entry_area_size: sizeof(struct cpu_entry_area);
    last_pkmap: sizeof(pkmap_count) / sizeof(int) (LAST_PKMAP).
    """

    page_offset: int
    high_memory: int
    fixaddr_top: int
    fix_kmap_begin: int
    fix_kmap_end: int
    end_of_fixed_addresses: int
    km_max_idx: int
    nr_cpus: int
    cpu_entry_area_size: int
    last_pkmap: int


@dataclass(frozen=True)
class Layout:
    """PAE, 3G/1G split (the only split this harness builds), Linux 6.1-6.14."""

    page_offset: int
    high_memory: int
    vmalloc_start: int
    vmalloc_end: int
    pkmap_base: int
    last_pkmap: int
    cpu_entry_area_base: int
    fixaddr_tot_start: int
    fixaddr_top: int
    fix_kmap_begin: int
    fix_kmap_end: int
    km_max_idx: int
    nr_cpus: int

    @property
    def debug_kmap_local(self) -> bool:
        return self.km_max_idx == KM_MAX_IDX_DEBUG

    @property
    def km_incr(self) -> int:
        """2 with DEBUG_KMAP_LOCAL (a guard slot between maps), else 1 (mm/highmem.c)."""
        return 2 if self.debug_kmap_local else 1

    def fix_to_virt(self, idx: int) -> int:
        """__fix_to_virt(): FIXADDR_TOP - (idx << PAGE_SHIFT)."""
        return self.fixaddr_top - (idx << 12)

    def kmap_local_va(self, cpu: int, depth: int) -> int:
        """The address of the (depth+1)-th kmap_local/kmap_atomic map on `cpu`.

        kmap_local_idx_push() adds KM_INCR to current->kmap_ctrl.idx and returns idx - 1;
        kmap_local_calc_idx() adds KM_MAX_IDX * cpu; the address is
        __fix_to_virt(FIX_KMAP_BEGIN + idx).
        """
        idx = self.km_incr * (depth + 1) - 1 + self.km_max_idx * cpu
        return self.fix_to_virt(self.fix_kmap_begin + idx)

    def pkmap_va(self, nr: int) -> int:
        return self.pkmap_base + nr * PAGE_SIZE

    def in_pkmap(self, va: int) -> bool:
        return self.pkmap_base <= va < self.pkmap_va(self.last_pkmap)

    def in_vmalloc(self, va: int) -> bool:
        return self.vmalloc_start <= va < self.vmalloc_end

    def in_kmap_local(self, va: int) -> bool:
        """[__fix_to_virt(FIX_KMAP_END), __fix_to_virt(FIX_KMAP_BEGIN)] (inclusive: the
        first slot is at FIX_KMAP_BEGIN; see the is_kmap_addr() off-by-one)."""
        return self.fix_to_virt(self.fix_kmap_end) <= va <= self.fix_to_virt(self.fix_kmap_begin)

    def kmap_local_slot(self, va: int) -> tuple[int, int] | None:
        """(cpu, slot index within the cpu) of a kmap_local address, else None."""
        if not self.in_kmap_local(va):
            return None
        idx = (self.fixaddr_top - va) // PAGE_SIZE - self.fix_kmap_begin
        return idx // self.km_max_idx, idx % self.km_max_idx

    def area_of(self, va: int) -> str:
        if self.page_offset <= va < self.high_memory:
            return "lowmem"
        if self.in_vmalloc(va):
            return "vmalloc"
        if self.in_pkmap(va):
            return f"PKMAP slot {(va - self.pkmap_base) // PAGE_SIZE}"
        slot = self.kmap_local_slot(va)
        if slot is not None:
            return f"kmap_local slot {slot[1]} of CPU {slot[0]}"
        if self.fixaddr_tot_start <= va < self.fixaddr_top + PAGE_SIZE:
            return "fixmap"
        if self.cpu_entry_area_base <= va < self.fixaddr_tot_start:
            return "cpu_entry_area/LDT"
        return "user" if va < self.page_offset else "other"

    def to_json(self) -> dict[str, int | bool]:
        d: dict[str, int | bool] = dict(asdict(self))
        d["debug_kmap_local"] = self.debug_kmap_local
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Layout":
        """The Layout of to_json()'s dict (debug_kmap_local is derived, not a field)."""
        return cls(**{k: v for k, v in d.items() if k != "debug_kmap_local"})


def compute_layout(i: LayoutInputs, pae: bool = True) -> Layout:
    """pgtable_32_areas.h: CPU_ENTRY_AREA_BASE below the fixmap, LDT below that, the PKMAP
    PMD below that, VMALLOC_END two pages below PKMAP_BASE. PMD_MASK is 2 MiB with PAE and
    4 MiB without (HIGHMEM4G: the PMD level is folded)."""
    pmd_mask = PMD_MASK_PAE if pae else PMD_MASK_2LEVEL
    fixaddr_tot_start = i.fixaddr_top - (i.end_of_fixed_addresses << 12)
    cea_pages = i.nr_cpus * -(-i.cpu_entry_area_size // PAGE_SIZE)
    cea_base = (fixaddr_tot_start - PAGE_SIZE * (cea_pages + 1)) & pmd_mask
    ldt_base = (cea_base - PAGE_SIZE) & pmd_mask
    pkmap_base = (ldt_base - PAGE_SIZE) & pmd_mask
    return Layout(
        page_offset=i.page_offset, high_memory=i.high_memory,
        vmalloc_start=i.high_memory + VMALLOC_OFFSET, vmalloc_end=pkmap_base - 2 * PAGE_SIZE,
        pkmap_base=pkmap_base, last_pkmap=i.last_pkmap, cpu_entry_area_base=cea_base,
        fixaddr_tot_start=fixaddr_tot_start, fixaddr_top=i.fixaddr_top,
        fix_kmap_begin=i.fix_kmap_begin, fix_kmap_end=i.fix_kmap_end,
        km_max_idx=i.km_max_idx, nr_cpus=i.nr_cpus)
