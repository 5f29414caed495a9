// SPDX-License-Identifier: GPL-2.0
/*
 * cat_no_checkpoint.ko (failure catalogue): a healthy module that never calls
 * hm_checkpoint() (and does not even link against hm_checkpoint.ko). Two cases checked by
 * the module alone: a kmap_local_page() round trip of a highmem page, and of a lowmem one.
 *
 * Kernel log: the KTAP header (plan 2), "ok 1 cat_no_checkpoint_kmap_local",
 * "ok 2 cat_no_checkpoint_lowmem". No WARNING, BUG or Oops; insmod succeeds.
 *
 * The harness must report: PASS with 0 checkpoints (or, if it insists on checkpoints, say
 * so plainly); gdb must not stop the guest.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include "hm_ktap.h"

#define CAT_PATTERN	0x6e6f6370U	/* "nocp" */

static void cat_round_trip(struct hm_case *c, gfp_t gfp)
{
	struct page *page = alloc_page(gfp);
	u32 *va;

	hm_case_expect(c, page != NULL, "out of memory");
	if (!page)
		return;
	va = kmap_local_page(page);
	va[0] = CAT_PATTERN;
	va[1023] = ~CAT_PATTERN;
	hm_case_expect(c, va[0] == CAT_PATTERN && va[1023] == ~CAT_PATTERN, "read back %#x",
		       va[0]);
	kunmap_local(va);
	__free_page(page);
}

static int __init cat_no_checkpoint_init(void)
{
	struct hm_case local = { .name = "cat_no_checkpoint_kmap_local", .number = 1 };
	struct hm_case lowmem = { .name = "cat_no_checkpoint_lowmem", .number = 2 };

	hm_ktap_header("cat_no_checkpoint", 2);
	cat_round_trip(&local, GFP_HIGHUSER);
	hm_case_end(&local);
	cat_round_trip(&lowmem, GFP_KERNEL);
	hm_case_end(&lowmem);
	return 0;
}

static void __exit cat_no_checkpoint_exit(void)
{
}

module_init(cat_no_checkpoint_init);
module_exit(cat_no_checkpoint_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: healthy, but no checkpoint at all");
MODULE_LICENSE("GPL");
