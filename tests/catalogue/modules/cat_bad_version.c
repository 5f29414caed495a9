// SPDX-License-Identifier: GPL-2.0
/*
 * cat_bad_version.ko (failure catalogue): calls hm_checkpoint() with a struct hm_expect that
 * has version 99 (this checkout's HM_CP_VERSION is 1),
 * and is otherwise a correct "mapped" expectation of a live kmap_local_page() slot. Then a
 * good checkpoint pair on the same page (mapped, unmapped), as in kmap_local_basic.
 *
 * Kernel log: the KTAP header (plan 2); case 1 cat_bad_version_checkpoint reports whatever
 * verdict the harness wrote back ("not ok 1" for FAIL, "ok 1 ... # SKIP" for none);
 * "ok 2 cat_bad_version_good_after". No WARNING, BUG or Oops; insmod succeeds.
 *
 * The harness must report: module FAILED for a bad checkpoint at its first stop (its parser,
 * harness/checkpoint.py, says
 * "struct hm_expect version 99, this harness reads 1: rebuild the module ..."),
 * then stops 2 and 3 checked and passed: the guest was resumed after the bad one.
 */
#include <linux/module.h>
#include "cat_common.h"

static int __init cat_bad_version_init(void)
{
	struct hm_case bad = { .name = "cat_bad_version_checkpoint", .number = 1 };
	struct hm_case good = { .name = "cat_bad_version_good_after", .number = 2 };
	struct page *page;

	hm_ktap_header("cat_bad_version", 2);
	page = cat_highmem_page();
	cat_bad_header_case(&bad, page, HM_CP_MAGIC, 99);
	hm_case_end(&bad);
	cat_kmap_case(&good, page);
	hm_case_end(&good);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_bad_version_exit(void)
{
}

module_init(cat_bad_version_init);
module_exit(cat_bad_version_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: a checkpoint with a bad version");
MODULE_LICENSE("GPL");
