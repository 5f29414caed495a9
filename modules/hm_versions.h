/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness test modules: what the kernel under test does differently by version, each
 * with the commit that changed it. The modules are built against the kernel they run on, so
 * LINUX_VERSION_CODE is the live kernel's. A case that meets an older behaviour ends XFAIL
 * with the commit as its reason (not FAIL), so a 6.1 cell of a matrix passes with it marked.
 */
#ifndef HM_VERSIONS_H
#define HM_VERSIONS_H

#include <linux/highmem.h>
#include <linux/version.h>
#include <asm/tlbflush.h>
#include "hm_ktap.h"

/*
 * is_kmap_addr() sees kmap_local/kmap_atomic addresses only since v6.3: commit f3837ab7adbc
 * ("highmem: Enhance is_kmap_addr() to check kmap_local_page() mappings"). Before it (6.1:
 * include/linux/highmem-internal.h:152-156) it is true for the PKMAP window alone.
 */
#define HM_IS_KMAP_ADDR_SEES_LOCAL	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0))
#define HM_IS_KMAP_ADDR_BEFORE_6_3	\
	"is_kmap_addr() sees no kmap_local address before f3837ab7adbc (highmem: Enhance is_kmap_addr() to check kmap_local_page() mappings, v6.3)"

/* is_kmap_addr() of a kmap_local/kmap_atomic address @va must be true (XFAIL before 6.3). */
static inline void hm_expect_is_kmap_addr_local(struct hm_case *c, const void *va)
{
	if (is_kmap_addr(va))
		return;
	if (!HM_IS_KMAP_ADDR_SEES_LOCAL) {
		hm_case_known_bug(c, HM_IS_KMAP_ADDR_BEFORE_6_3);
		return;
	}
	hm_case_expect(c, is_kmap_addr(va), "is_kmap_addr(%#lx) false",
		       (unsigned long)va);
}

/*
 * __flush_tlb_all() is exported to KVM's modules only in 7.2 (arch/x86/mm/tlb.c:1706,
 * EXPORT_SYMBOL_FOR_KVM; 6.12 tlb.c:1290, EXPORT_SYMBOL_GPL): a module calling it fails
 * modpost ("__flush_tlb_all" undefined). The commit that narrowed the export is not pinned
 * here, so from 6.15 on (the first kernels this harness builds besides 6.1-6.14) the module
 * drops the one translation it made stale with invlpg, which needs no symbol and also
 * drops a global entry; 6.1-6.14 keep the full local flush as before.
 */
#define HM_FLUSH_TLB_BY_INVLPG	(LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0))

/* Drop this CPU's translation of @va (the kernel address a mutate=noflush case made stale). */
static inline void hm_flush_tlb_here(unsigned long va)
{
#if HM_FLUSH_TLB_BY_INVLPG
	asm volatile("invlpg (%0)" : : "r" (va) : "memory");
#else
	__flush_tlb_all();
#endif
}

/*
 * nth_page() is gone from 7.2's include/linux/mm.h: the series "mm: remove nth_page()"
 * (David Hildenbrand, merged for 6.18) made the pages of a buddy block, folio or CMA range
 * contiguous in the memmap, so page + n is what nth_page() was (6.12 include/linux/mm.h:226
 * for FLATMEM, i386's model here). Keyed on the macro rather than a version: it was a macro.
 */
#ifndef nth_page
#define nth_page(page, n)	((page) + (n))
#endif

#endif /* HM_VERSIONS_H */
