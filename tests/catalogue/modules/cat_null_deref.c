// SPDX-License-Identifier: GPL-2.0
/*
 * cat_null_deref.ko (failure catalogue): writes through a NULL pointer in its init, after
 * printing the KTAP header (plan 1) and before its only result line.
 *
 * Kernel log:
 *   BUG: kernel NULL pointer dereference, address: 00000000
 *   #PF: supervisor write access in kernel mode
 *   #PF: error_code(0x0002) - not-present page
 *   Oops: Oops: 0002 [#1] PREEMPT SMP
 *   EIP: cat_null_deref_init+0x.../0x... [cat_null_deref]
 * The oops kills insmod with SIGKILL (the shell says "Killed", status 137); the kernel lives
 * on, tainted (D), with the module stuck half-loaded.
 *
 * The harness must report: module FAILED (unexpected BUG/Oops, KTAP case 1 CRASHED, insmod
 * killed), then carry on with the next module (cat_healthy must PASS after it).
 */
#include <linux/module.h>
#include "hm_ktap.h"

static int __init cat_null_deref_init(void)
{
	int *p = NULL;

	hm_ktap_header("cat_null_deref", 1);
	pr_info("# cat_null_deref_store: writing through a NULL pointer\n");
	OPTIMIZER_HIDE_VAR(p);	/* the store must happen: no trap, no dropping */
	*p = 1;
	pr_info("ok 1 cat_null_deref_store\n");	/* never printed */
	return 0;
}

static void __exit cat_null_deref_exit(void)
{
}

module_init(cat_null_deref_init);
module_exit(cat_null_deref_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: NULL pointer dereference in init");
MODULE_LICENSE("GPL");
