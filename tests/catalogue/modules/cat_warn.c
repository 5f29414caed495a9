// SPDX-License-Identifier: GPL-2.0
/*
 * cat_warn.ko (failure catalogue): WARN_ON(1) in its init, which then goes on, reports one
 * passing KTAP case and returns 0. Nothing but the warning says anything went wrong.
 *
 * Kernel log:
 *   WARNING: CPU: <n> PID: <pid> at <build dir>/cat_warn.c:<line> cat_warn_init+0x.../0x... [cat_warn]
 *   ---[ end trace 0000000000000000 ]---
 *   ok 1 cat_warn_after
 * The kernel is tainted W; insmod succeeds.
 *
 * The harness must report: module FAILED for an unexpected kernel message (the WARNING),
 * although its only KTAP case passed.
 */
#include <linux/module.h>
#include <linux/bug.h>
#include "hm_ktap.h"

static int __init cat_warn_init(void)
{
	hm_ktap_header("cat_warn", 1);
	WARN_ON(1);
	pr_info("ok 1 cat_warn_after\n");
	return 0;
}

static void __exit cat_warn_exit(void)
{
}

module_init(cat_warn_init);
module_exit(cat_warn_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: WARN_ON(1) in init, then success");
MODULE_LICENSE("GPL");
