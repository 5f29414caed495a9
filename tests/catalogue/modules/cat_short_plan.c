// SPDX-License-Identifier: GPL-2.0
/*
 * cat_short_plan.ko (failure catalogue): announces a plan of 3 cases, reports only case 1
 * (ok) and returns 0: results are missing although nothing crashed.
 *
 * Kernel log: the KTAP header ("1..3"), "ok 1 cat_short_plan_first"; no WARNING, BUG or
 * Oops; insmod succeeds.
 *
 * The harness must report: module FAILED: cases 2 and 3 never reported (the KTAP parser
 * marks them CRASHED), with no kernel message to explain it.
 */
#include <linux/module.h>
#include "hm_ktap.h"

static int __init cat_short_plan_init(void)
{
	hm_ktap_header("cat_short_plan", 3);
	pr_info("ok 1 cat_short_plan_first\n");
	return 0;
}

static void __exit cat_short_plan_exit(void)
{
}

module_init(cat_short_plan_init);
module_exit(cat_short_plan_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: fewer KTAP results than planned");
MODULE_LICENSE("GPL");
