// SPDX-License-Identifier: GPL-2.0
/*
 * cat_bug_on.ko (failure catalogue): BUG_ON(1) in its init. It first prints the KTAP header
 * with a plan of 2 cases and reports case 1 (ok); case 2 never reports.
 *
 * Kernel log:
 *   ok 1 cat_bug_on_before
 *   kernel BUG at <build dir>/cat_bug_on.c:<line>!
 *   Oops: invalid opcode: 0000 [#1] PREEMPT SMP
 *   EIP: cat_bug_on_init+0x.../0x... [cat_bug_on]
 * The oops kills insmod with SIGSEGV (the shell says "Segmentation fault", status 139); the
 * kernel lives on, tainted (D), with the module stuck half-loaded.
 *
 * The harness must report: module FAILED (unexpected "kernel BUG at", case 1 PASS, case 2
 * CRASHED: a case the plan promised that did not report, insmod killed), then carry on.
 */
#include <linux/module.h>
#include <linux/bug.h>
#include "hm_ktap.h"

static int __init cat_bug_on_init(void)
{
	hm_ktap_header("cat_bug_on", 2);
	pr_info("ok 1 cat_bug_on_before\n");
	pr_info("# cat_bug_on_after: BUG_ON(1) next\n");
	BUG_ON(1);
	pr_info("ok 2 cat_bug_on_after\n");	/* never printed */
	return 0;
}

static void __exit cat_bug_on_exit(void)
{
}

module_init(cat_bug_on_init);
module_exit(cat_bug_on_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: BUG_ON(1) in init");
MODULE_LICENSE("GPL");
