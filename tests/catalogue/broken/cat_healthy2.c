// SPDX-License-Identifier: GPL-2.0
/*
 * cat_healthy2.ko (failure catalogue): the healthy module next to cat_no_compile.c, in the
 * same directory (tests/catalogue/broken/). Self-contained (only the headers of modules/):
 * one kmap_local_page() of a highmem page above 4 GiB, a mapped and an unmapped checkpoint.
 *
 * Kernel log: "KTAP version 1", "# Subtest: cat_healthy2", "1..1",
 * "ok 1 cat_healthy2_kmap_local"; no WARNING, BUG or Oops.
 *
 * The harness must report: PASS, 2 checkpoints passed, although the other module of its
 * directory did not build.
 */
#include <linux/module.h>
#include <linux/highmem.h>
#include <linux/smp.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define CAT_PATTERN	0xca7a1065U

static int __init cat_healthy2_init(void)
{
	struct hm_case c = { .name = "cat_healthy2_kmap_local", .number = 1 };
	struct page *page;
	u32 *va;

	hm_ktap_header("cat_healthy2", 1);
	hm_find_blocks(0, &page, NULL);
	hm_case_expect(&c, page != NULL, "no highmem page at or above 4 GiB");
	if (page) {
		va = kmap_local_page(page);
		va[0] = CAT_PATTERN;
		hm_cp_slot(&c, va, page_to_pfn(page), smp_processor_id(), 0, "mapped");
		hm_case_expect(&c, va[0] == CAT_PATTERN, "read back %#x", va[0]);
		kunmap_local(va);
		hm_cp_unmapped(&c, va, "unmapped");
		__free_page(page);
	}
	hm_case_end(&c);
	return 0;
}

static void __exit cat_healthy2_exit(void)
{
}

module_init(cat_healthy2_init);
module_exit(cat_healthy2_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: healthy, next to a broken module");
MODULE_LICENSE("GPL");
