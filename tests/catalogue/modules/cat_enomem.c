// SPDX-License-Identifier: GPL-2.0
/*
 * cat_enomem.ko (failure catalogue): its init reports one passing KTAP case, then returns
 * -ENOMEM as if an allocation had failed. Nothing crashes and nothing is left loaded.
 *
 * Kernel log: the KTAP header (plan 1) and "ok 1 cat_enomem_before"; no WARNING, BUG or
 * Oops (the kernel prints nothing for an init that returns a negative errno).
 * insmod exits non-zero: "insmod: can't insert '.../cat_enomem.ko': Cannot allocate memory".
 *
 * The harness must report: module FAILED because insmod failed, although every KTAP case
 * passed; the guest needs no reboot.
 */
#include <linux/module.h>
#include <linux/errno.h>
#include "hm_ktap.h"

static int __init cat_enomem_init(void)
{
	hm_ktap_header("cat_enomem", 1);
	pr_info("ok 1 cat_enomem_before\n");
	pr_info("# cat_enomem: init returns -ENOMEM\n");
	return -ENOMEM;
}

static void __exit cat_enomem_exit(void)
{
}

module_init(cat_enomem_init);
module_exit(cat_enomem_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: init returns -ENOMEM");
MODULE_LICENSE("GPL");
