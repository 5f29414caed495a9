// SPDX-License-Identifier: GPL-2.0
/*
 * cat_no_ktap.ko (failure catalogue): loads fine and prints no KTAP at all: one ordinary
 * log line, no checkpoint, init returns 0.
 *
 * Kernel log: "cat_no_ktap: loaded, and no KTAP to say about it"; no WARNING, BUG or Oops;
 * insmod succeeds.
 *
 * The harness must report: module FAILED: no KTAP results in the kernel log.
 */
#include <linux/module.h>
#include <linux/printk.h>

static int __init cat_no_ktap_init(void)
{
	pr_info("cat_no_ktap: loaded, and no KTAP to say about it\n");
	return 0;
}

static void __exit cat_no_ktap_exit(void)
{
}

module_init(cat_no_ktap_init);
module_exit(cat_no_ktap_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: prints no KTAP");
MODULE_LICENSE("GPL");
