// SPDX-License-Identifier: GPL-2.0
/*
 * cat_exit_checkpoint.ko (failure catalogue): a healthy init (a good checkpoint pair, one
 * passing KTAP case), and a module_exit that also calls hm_checkpoint() (a mapped and an
 * unmapped checkpoint of a kmap_local_page()): the guest stops at the breakpoint during
 * rmmod, when the harness may no longer be watching gdb.
 *
 * Kernel log at insmod: the KTAP header (plan 1), "ok 1 cat_exit_checkpoint_init". At rmmod:
 * "cat_exit_checkpoint: checkpoints in module_exit" and, once both stops were resumed,
 * "cat_exit_checkpoint: exit done". No WARNING, BUG or Oops.
 *
 * The harness must report: either the exit checkpoints judged (and PASS), or the module
 * FAILED because the guest stopped at a checkpoint after insmod returned; never a hung rmmod
 * with the guest left stopped in gdb.
 */
#include <linux/module.h>
#include "cat_common.h"

static int __init cat_exit_checkpoint_init(void)
{
	struct hm_case c = { .name = "cat_exit_checkpoint_init", .number = 1 };
	struct page *page;

	hm_ktap_header("cat_exit_checkpoint", 1);
	page = cat_highmem_page();
	cat_kmap_case(&c, page);
	hm_case_end(&c);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_exit_checkpoint_exit(void)
{
	struct hm_case c = { .name = "cat_exit_checkpoint_exit", .number = 2 };
	struct page *page;

	pr_info("cat_exit_checkpoint: checkpoints in module_exit\n");
	page = cat_highmem_page();
	cat_kmap_case(&c, page);
	if (page)
		__free_page(page);
	pr_info("cat_exit_checkpoint: exit done%s\n", c.failed ? ", a checkpoint FAILED" : "");
}

module_init(cat_exit_checkpoint_init);
module_exit(cat_exit_checkpoint_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: checkpoints in module_exit");
MODULE_LICENSE("GPL");
