// SPDX-License-Identifier: GPL-2.0
/*
 * cat_garbage_bytes.ko (failure catalogue): hm_checkpoint() of a kmalloc'd buffer of random
 * bytes: readable, but not a struct hm_expect (the readable variant of cat_garbage_ptr; no
 * oops). Only the verdict field is zeroed, so the module sees what the harness writes back.
 * Then a good checkpoint pair (case 2).
 *
 * header=1 makes it nastier: a valid magic, version and kind HM_EXPECT_RANGE, with a random
 * count (up to 2^32 - 1 entries) and a random entries pointer, so a harness that trusts the
 * header tries to read up to 64 GiB of range entries from wherever that points.
 *
 * Kernel log: the KTAP header (plan 2); case 1 cat_garbage_bytes_random reports the verdict
 * the harness wrote ("not ok 1" for FAIL, "ok 1 ... # SKIP" for none); "ok 2
 * cat_garbage_bytes_good_after". No WARNING, BUG or Oops; insmod succeeds.
 *
 * The harness must report: module FAILED for a bad checkpoint at the first stop (bad magic,
 * or with header=1 an unreadable or absurd range), then stops 2 and 3 checked and passed,
 * within the module timeout.
 */
#include <linux/module.h>
#include <linux/random.h>
#include <linux/slab.h>
#include "cat_common.h"

static bool header;
module_param(header, bool, 0444);
MODULE_PARM_DESC(header, "valid magic, version and kind (range); random count and entries");

static void cat_garbage_case(struct hm_case *c)
{
	struct hm_expect *e = kmalloc(sizeof(*e), GFP_KERNEL);

	hm_case_expect(c, e != NULL, "kmalloc of %zu bytes failed", sizeof(*e));
	if (!e)
		return;
	get_random_bytes(e, sizeof(*e));
	if (header) {
		e->magic = HM_CP_MAGIC;
		e->version = HM_CP_VERSION;
		e->kind = HM_EXPECT_RANGE;
	}
	e->verdict = HM_VERDICT_NONE;
	pr_info("# %s: magic %#x version %u kind %u count %u entries %#x\n", c->name,
		e->magic, e->version, e->kind, e->count, e->entries);
	hm_case_checkpoint(c, hm_checkpoint(e), "random bytes");
	kfree(e);
}

static int __init cat_garbage_bytes_init(void)
{
	struct hm_case bad = { .name = "cat_garbage_bytes_random", .number = 1 };
	struct hm_case good = { .name = "cat_garbage_bytes_good_after", .number = 2 };
	struct page *page;

	hm_ktap_header("cat_garbage_bytes", 2);
	cat_garbage_case(&bad);
	hm_case_end(&bad);
	page = cat_highmem_page();
	cat_kmap_case(&good, page);
	hm_case_end(&good);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_garbage_bytes_exit(void)
{
}

module_init(cat_garbage_bytes_init);
module_exit(cat_garbage_bytes_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: hm_checkpoint() of random bytes");
MODULE_LICENSE("GPL");
