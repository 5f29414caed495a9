// SPDX-License-Identifier: GPL-2.0
/*
 * cat_many_checkpoints.ko (failure catalogue): count= (default 1000) separate stops in one
 * case: one kmap_local_page() of a highmem page checked count - 1 times while mapped, then
 * once after kunmap_local(). Every expectation is true. Where cat_huge_range is one long stop,
 * this is many short ones: the per-stop cost of the harness (gdb round trips, page walks,
 * resuming) times count, which also counts against the module timeout.
 *
 * Kernel log: the KTAP header (plan 1), "ok 1 cat_many_checkpoints_kmap_local". No WARNING,
 * BUG or Oops; insmod succeeds.
 *
 * The harness must report: PASS with <count> checkpoints if the timeout allows it, else
 * module FAILED: insmod did not finish within the timeout; never a hang.
 */
#include <linux/module.h>
#include "cat_common.h"

static unsigned int count = 1000;
module_param(count, uint, 0444);
MODULE_PARM_DESC(count, "checkpoints (stops) to make; default 1000");

static void cat_many_case(struct hm_case *c, struct page *page)
{
	unsigned long pfn;
	unsigned int i;
	char label[56];
	void *va;

	hm_case_expect(c, page != NULL, "no highmem page at or above 4 GiB");
	if (!page)
		return;
	pfn = page_to_pfn(page);
	va = kmap_local_page(page);
	for (i = 1; i < count; i++) {
		hm_mklabel(label, c, "mapped %u of %u", i, count);
		hm_case_checkpoint(c, hm_expect_slot(label, va, pfn, smp_processor_id(), 0), label);
	}
	kunmap_local(va);
	hm_cp_unmapped(c, va, "unmapped");
}

static int __init cat_many_checkpoints_init(void)
{
	struct hm_case c = { .name = "cat_many_checkpoints_kmap_local", .number = 1 };
	struct page *page;

	hm_ktap_header("cat_many_checkpoints", 1);
	page = cat_highmem_page();
	cat_many_case(&c, page);
	hm_case_end(&c);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_many_checkpoints_exit(void)
{
}

module_init(cat_many_checkpoints_init);
module_exit(cat_many_checkpoints_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: a thousand checkpoints in one case");
MODULE_LICENSE("GPL");
