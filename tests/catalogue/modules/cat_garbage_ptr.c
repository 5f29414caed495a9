// SPDX-License-Identifier: GPL-2.0
/*
 * cat_garbage_ptr.ko (failure catalogue): a good checkpoint pair (case 1), then
 * hm_checkpoint((struct hm_expect *)0x1000), an unmapped address (case 2).
 *
 * The harness stops at the breakpoint first and must find no struct there (gdb cannot read
 * 0x1000). But hm_checkpoint() itself (modules/hm_checkpoint.c) then does
 * READ_ONCE(e->verdict), so when the guest is resumed the kernel oopses inside
 * hm_checkpoint.ko, not in this module:
 *   BUG: unable to handle page fault for address: 00001020
 *   #PF: supervisor read access in kernel mode
 *   #PF: error_code(0x0000) - not-present page
 *   Oops: Oops: 0000 [#1] PREEMPT SMP
 *   EIP: hm_checkpoint+0x.../0x... [hm_checkpoint]
 * and insmod is killed with SIGKILL ("Killed", status 137). KTAP: "ok 1 cat_garbage_ptr_good",
 * case 2 never reports.
 *
 * The harness must report: module FAILED, a bad checkpoint at the third stop (memory at
 * 0x1000 unreadable), the oops, case 2 CRASHED; then carry on. cat_garbage_bytes.ko is the
 * readable-garbage variant, which does not oops.
 */
#include <linux/module.h>
#include "cat_common.h"

#define CAT_GARBAGE_ADDR	0x1000UL

static int __init cat_garbage_ptr_init(void)
{
	struct hm_case good = { .name = "cat_garbage_ptr_good", .number = 1 };
	struct hm_case bad = { .name = "cat_garbage_ptr_unmapped", .number = 2 };
	struct page *page;

	hm_ktap_header("cat_garbage_ptr", 2);
	page = cat_highmem_page();
	cat_kmap_case(&good, page);
	hm_case_end(&good);
	if (page)
		__free_page(page);

	pr_info("# %s: hm_checkpoint(%#lx)\n", bad.name, CAT_GARBAGE_ADDR);
	hm_case_checkpoint(&bad, hm_checkpoint((struct hm_expect *)CAT_GARBAGE_ADDR),
			   "garbage pointer");
	hm_case_end(&bad);	/* not reached: hm_checkpoint() oopses reading the verdict */
	return 0;
}

static void __exit cat_garbage_ptr_exit(void)
{
}

module_init(cat_garbage_ptr_init);
module_exit(cat_garbage_ptr_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: hm_checkpoint() of an unmapped pointer");
MODULE_LICENSE("GPL");
