// SPDX-License-Identifier: GPL-2.0
/*
 * cat_exit_oops.ko (failure catalogue): a healthy init (one passing KTAP case, insmod
 * succeeds), and a module_exit that writes through a NULL pointer: the crash comes at rmmod,
 * after the harness has judged insmod and read dmesg.
 *
 * Kernel log at insmod: the KTAP header (plan 1), "ok 1 cat_exit_oops_loaded". At rmmod:
 *   BUG: kernel NULL pointer dereference, address: 00000000
 *   #PF: supervisor write access in kernel mode
 *   Oops: Oops: 0002 [#1] PREEMPT SMP
 *   EIP: cat_exit_oops_exit+0x.../0x... [cat_exit_oops]
 * rmmod is killed with SIGKILL ("Killed", status 137); the module stays, "going".
 *
 * The harness must report: module FAILED for an oops while unloading it (not silently lose
 * it in the next module's "dmesg -c", nor blame the next module for it).
 */
#include <linux/module.h>
#include "hm_ktap.h"

static int __init cat_exit_oops_init(void)
{
	hm_ktap_header("cat_exit_oops", 1);
	pr_info("ok 1 cat_exit_oops_loaded\n");
	return 0;
}

static void __exit cat_exit_oops_exit(void)
{
	int *p = NULL;

	pr_info("cat_exit_oops: writing through a NULL pointer in module_exit\n");
	OPTIMIZER_HIDE_VAR(p);	/* the store must happen: no trap, no dropping */
	*p = 1;
}

module_init(cat_exit_oops_init);
module_exit(cat_exit_oops_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: NULL pointer dereference at rmmod");
MODULE_LICENSE("GPL");
