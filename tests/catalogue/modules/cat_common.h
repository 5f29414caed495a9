/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Failure catalogue (tests/catalogue/): what several catalogue modules share. One healthy
 * kmap_local_page() case, checked by the harness while mapped and after kunmap_local(), so a
 * broken module's bad checkpoints sit next to good ones in the same run.
 * i386 with CONFIG_HIGHMEM64G (PAE), Linux 6.12.
 */
#ifndef CAT_COMMON_H
#define CAT_COMMON_H

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/smp.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define CAT_PATTERN	0xca7a1065U

/* A highmem page at or above 4 GiB physical, or NULL. Give it back with __free_page(). */
static inline struct page *cat_highmem_page(void)
{
	struct page *page;

	hm_find_blocks(0, &page, NULL);
	return page;
}

/*
 * kmap_local_page(@page) at depth 0 (the caller holds no other kmap_local): the slot PTE
 * is checked while mapped, and checked to be 0 after kunmap_local().
 */
static inline void cat_kmap_case(struct hm_case *c, struct page *page)
{
	unsigned long pfn;
	u32 *va;

	hm_case_expect(c, page != NULL, "no highmem page at or above 4 GiB");
	if (!page)
		return;
	pfn = page_to_pfn(page);
	va = kmap_local_page(page);
	va[0] = CAT_PATTERN;
	hm_cp_slot(c, va, pfn, smp_processor_id(), 0, "mapped");
	hm_case_expect(c, va[0] == CAT_PATTERN, "read back %#x", va[0]);
	kunmap_local(va);
	hm_cp_unmapped(c, va, "unmapped");
}

/*
 * kmap_local_page(@page), then a mapped-slot checkpoint that is right about the page tables
 * but carries @magic and @version in its header: the harness must refuse it as a bad
 * checkpoint rather than judge the PTE. The case takes whatever verdict comes back: FAIL
 * makes it "not ok", none makes it "ok # SKIP" (no harness judged it).
 */
static inline void cat_bad_header_case(struct hm_case *c, struct page *page, u32 magic,
				       u16 version)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[56];
	u32 *va;

	hm_case_expect(c, page != NULL, "no highmem page at or above 4 GiB");
	if (!page)
		return;
	va = kmap_local_page(page);
	e.magic = magic;
	e.version = version;
	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_KMAP_LOCAL(smp_processor_id(), 0);
	hm_mklabel(label, c, "magic %#x version %u", magic, version);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
	kunmap_local(va);
}

#endif /* CAT_COMMON_H */
