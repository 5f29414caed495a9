// SPDX-License-Identifier: GPL-2.0
/*
 * hm_checkpoint.ko: the one function the harness breaks on (see hm_checkpoint.h).
 *
 * i386 builds with -mregparm=3, so at the first instruction of hm_checkpoint() the
 * struct hm_expect pointer is in EAX: the harness reads it there.
 */
#include <linux/module.h>
#include <linux/printk.h>
#include "hm_checkpoint.h"

static unsigned int hm_checkpoints_hit;

noinline u32 hm_checkpoint(struct hm_expect *e)
{
	/* Keep the call, and the struct in memory, visible to the debugger. */
	barrier();
	hm_checkpoints_hit++;
	pr_debug("hm_checkpoint %u: %s verdict %u\n", hm_checkpoints_hit, e->label,
		 READ_ONCE(e->verdict));
	return READ_ONCE(e->verdict);
}
EXPORT_SYMBOL_GPL(hm_checkpoint);

static int __init hm_checkpoint_init(void)
{
	pr_info("hm_checkpoint: ready at %px\n", hm_checkpoint);
	return 0;
}

static void __exit hm_checkpoint_exit(void)
{
	pr_info("hm_checkpoint: %u checkpoints hit\n", hm_checkpoints_hit);
}

module_init(hm_checkpoint_init);
module_exit(hm_checkpoint_exit);
MODULE_DESCRIPTION("highmem-harness checkpoint: where the harness stops to check PTEs");
MODULE_LICENSE("GPL");
