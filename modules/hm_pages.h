/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness test modules: finding the highmem pages the tests map. i386 with
 * CONFIG_HIGHMEM64G (PAE) on Linux 6.1-6.14, CONFIG_HIGHMEM4G with or without PAE on 6.1
 * and later (from 6.15 the only highmem choice).
 *
 * The tests want a highmem page at or above 4 GiB physical (a PTE PFN wider than 32 bits)
 * and a highmem page below 4 GiB (without PAE: two highmem pages below 4 GiB, see
 * HM_HAVE_PFN_ABOVE_4G). alloc_pages() gives no say in where a page lies, and the
 * allocator hands out the top of memory first: finding one below 4 GiB can take most of
 * the memory above it. So: allocate order-N GFP_HIGHUSER blocks until both are found, keep
 * those two, and give back all the others at once.
 */
#ifndef HM_PAGES_H
#define HM_PAGES_H

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "hm_ktap.h"
#include "hm_versions.h"	/* nth_page() where the kernel no longer has it */

/*
 * A page frame at or above 4 GiB exists only where the kernel keeps RAM there (HM_PFN_4G
 * and hm_ram_above_4g() in hm_ktap.h, read at run time): with PAE up to 6.14. A 2-level
 * kernel (CONFIG_HIGHMEM4G, kernel-configs/highmem4g.config) keeps no RAM above 4 GiB
 * (MAX_NONPAE_PFN, init_32.c 6.12:615-619), nor does a PAE kernel from 6.15 on
 * (bbeb69ce3013, 83b2d345e178): there the "above" block of hm_find_blocks() is a stand-in,
 * a second highmem block below 4 GiB, so the cases that only want a highmem page still
 * run, and the cases about a PFN above 4 GiB skip (hm_case_needs_pfn_above_4g()).
 */
#define HM_HAVE_PFN_ABOVE_4G	hm_ram_above_4g()

/*
 * Does kmap_local_page()/kmap_atomic() of a lowmem page take a slot? Only with
 * CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP (__kmap_local_page_prot(), mm/highmem.c 6.1:572,
 * 6.12:585): then a lowmem page gets a fixmap PTE like a highmem page; otherwise the map is
 * page_address() and no slot is pushed. The modules are built against the kernel they run
 * on, so this is the live kernel's config.
 */
#define HM_LOWMEM_TAKES_SLOT	IS_ENABLED(CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP)
#define HM_BLOCK_ORDER		10		/* 4 MiB blocks: 1024 pages each */
#define HM_BLOCK_PAGES		(1U << HM_BLOCK_ORDER)
#define HM_SCAN_MAX		2048		/* 8 GiB of 4 MiB blocks at most */

/*
 * Allocate order-@order GFP_HIGHUSER blocks until one is highmem at or above 4 GiB (*above)
 * and, when @below is not NULL, one is highmem below 4 GiB (*below); free all the others
 * before returning. What is not found is left NULL. Returns how many blocks were allocated
 * while looking (the two kept included). Free the kept ones with hm_free_blocks().
 */
static inline int hm_find_blocks(unsigned int order, struct page **above, struct page **below)
{
	struct page **scan;
	int n = 0, i;

	*above = NULL;
	if (below)
		*below = NULL;
	scan = kcalloc(HM_SCAN_MAX, sizeof(*scan), GFP_KERNEL);
	if (!scan)
		return 0;
	while (n < HM_SCAN_MAX && (!*above || (below && !*below))) {
		struct page *p = alloc_pages(GFP_HIGHUSER | __GFP_NOWARN, order);

		if (!p)
			break;
		scan[n++] = p;
		if (!PageHighMem(p))
			continue;
		if ((page_to_pfn(p) >= HM_PFN_4G || !HM_HAVE_PFN_ABOVE_4G) && !*above)
			*above = p;
		else if (below && page_to_pfn(p) < HM_PFN_4G && !*below)
			*below = p;
	}
	for (i = n - 1; i >= 0; i--)
		if (scan[i] != *above && (!below || scan[i] != *below))
			__free_pages(scan[i], order);
	kfree(scan);
	return n;
}

/* Give back the blocks hm_find_blocks() kept, last found first; either may be NULL. */
static inline void hm_free_blocks(unsigned int order, struct page *above, struct page *below)
{
	if (below)
		__free_pages(below, order);
	if (above)
		__free_pages(above, order);
}

/*
 * The two highmem blocks a suite works on, one above 4 GiB physical and one below
 * (hm_find_blocks()): blk_above/blk_below, hi(i)/lo(i) for page i (< HM_BLOCK_PAGES) of
 * each, and the hm_suite hooks find_blocks (.init), have_blocks (.case_ready: the case
 * fails unrun without them) and free_blocks (.exit). Needs hm_ktap.h before it.
 */
#define HM_BLOCK_PAIR()							\
	static struct page *blk_above;					\
	static struct page *blk_below;					\
	static __maybe_unused struct page *hi(int i)			\
	{								\
		return blk_above + i;					\
	}								\
	static __maybe_unused struct page *lo(int i)			\
	{								\
		return blk_below + i;					\
	}								\
	static void find_blocks(void)					\
	{								\
		hm_find_blocks(HM_BLOCK_ORDER, &blk_above, &blk_below);	\
	}								\
	static void free_blocks(void)					\
	{								\
		hm_free_blocks(HM_BLOCK_ORDER, blk_above, blk_below);	\
	}								\
	static bool have_blocks(struct hm_case *c)			\
	{								\
		hm_case_expect(c, blk_above && blk_below,		\
			"highmem blocks above and below 4 GiB (above %d, below %d)", \
			!!blk_above, !!blk_below);			\
		return blk_above && blk_below;				\
	}								\
	static_assert(1, "HM_BLOCK_PAIR")

#ifdef HM_KTAP_H
/*
 * The checkpoint of a lowmem page's kmap_local_page()/kmap_atomic() address @va (taken on
 * @cpu at depth 0): its own slot with CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP, else
 * page_address() (the direct map, maybe a large page: only the translation is judged).
 */
static inline void hm_cp_lowmem(struct hm_case *c, const void *va, struct page *page, int cpu)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	if (HM_LOWMEM_TAKES_SLOT) {
		hm_case_expect(c, va != page_address(page), "va %#lx is page_address",
			       (unsigned long)va);
		hm_cp_slot(c, va, page_to_pfn(page), cpu, 0, "lowmem forced into slot d0");
		return;
	}
	hm_case_expect(c, va == page_address(page), "va %#lx, page_address %#lx",
		       (unsigned long)va, (unsigned long)page_address(page));
	e.prot = HM_PROT_ANY;
	e.va = (u32)(unsigned long)va;
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_LOWMEM;
	hm_mklabel(label, c, "page_address");
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}
#endif /* HM_KTAP_H */

#endif /* HM_PAGES_H */
