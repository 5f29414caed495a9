// SPDX-License-Identifier: GPL-2.0
/*
 * hm_checkpoint.ko: the one function the harness breaks on (see hm_checkpoint.h).
 *
 * i386 builds with -mregparm=3, so at the first instruction of hm_checkpoint() the
 * struct hm_expect pointer is in EAX: the harness reads it there.
 */
#include <linux/atomic.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/uaccess.h>
#include "hm_checkpoint.h"

/*
 * Counts the calls, incremented after the breakpoint at the first instruction: a stop with
 * the same CPU, struct and count as the stop before it is the hardware breakpoint firing
 * again right after the resume (TCG does that), not a new call. The harness reads it at
 * every stop (its address is printed at load) and judges every new call, whatever the
 * struct's verdict field already holds.
 */
static atomic_t hm_checkpoints_hit;

/*
 * The verdict is read with copy_from_kernel_nofault(): a module that passes a garbage
 * pointer gets HM_VERDICT_NONE back (and the harness reports a malformed checkpoint),
 * not an oops inside this module.
 */
noinline u32 hm_checkpoint(struct hm_expect *e)
{
	u32 verdict = HM_VERDICT_NONE;

	/* Keep the call, and the struct in memory, visible to the debugger. */
	barrier();
	atomic_inc(&hm_checkpoints_hit);
	if (copy_from_kernel_nofault(&verdict, &e->verdict, sizeof(verdict)))
		return HM_VERDICT_NONE;
	pr_debug("hm_checkpoint %d: verdict %u\n", atomic_read(&hm_checkpoints_hit), verdict);
	return verdict;
}
EXPORT_SYMBOL_GPL(hm_checkpoint);

static int __init hm_checkpoint_init(void)
{
	pr_info("hm_checkpoint: ready at %px count at %px\n", hm_checkpoint,
		&hm_checkpoints_hit);
	return 0;
}

static void __exit hm_checkpoint_exit(void)
{
	pr_info("hm_checkpoint: %d checkpoints hit\n", atomic_read(&hm_checkpoints_hit));
}

module_init(hm_checkpoint_init);
module_exit(hm_checkpoint_exit);
MODULE_DESCRIPTION("highmem-harness checkpoint: where the harness stops to check PTEs");
MODULE_LICENSE("GPL");
