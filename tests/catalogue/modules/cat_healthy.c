// SPDX-License-Identifier: GPL-2.0
/*
 * cat_healthy.ko (failure catalogue): the healthy module run after each broken one. One
 * kmap_local_page() of a highmem page above 4 GiB, a mapped and an unmapped checkpoint.
 *
 * Kernel log: "KTAP version 1", "# Subtest: cat_healthy", "1..1", "ok 1 cat_healthy_kmap_local";
 * no WARNING, BUG or Oops. The harness must report: PASS, 2 checkpoints passed. When it runs
 * after a broken module, this proves the harness (and the guest, rebooted or not) recovered.
 */
#include <linux/module.h>
#include "cat_common.h"

static int __init cat_healthy_init(void)
{
	struct hm_case c = { .name = "cat_healthy_kmap_local", .number = 1 };
	struct page *page;

	hm_ktap_header("cat_healthy", 1);
	page = cat_highmem_page();
	cat_kmap_case(&c, page);
	hm_case_end(&c);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_healthy_exit(void)
{
}

module_init(cat_healthy_init);
module_exit(cat_healthy_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: a healthy kmap_local module");
MODULE_LICENSE("GPL");
