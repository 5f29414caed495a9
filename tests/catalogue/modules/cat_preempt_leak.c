// SPDX-License-Identifier: GPL-2.0
/*
 * cat_preempt_leak.ko (failure catalogue): its init reports one passing KTAP case and returns
 * 0 with preemption still disabled (a preempt_disable() without its preempt_enable(), as a
 * forgotten kunmap_atomic() would leave it); irq=1 also leaves interrupts disabled.
 * do_one_initcall() (init/main.c) repairs both and warns.
 *
 * Kernel log:
 *   ok 1 cat_preempt_leak_before
 *   initcall cat_preempt_leak_init+0x0/0x... [cat_preempt_leak] returned with preemption imbalance
 *   WARNING: CPU: <n> PID: <pid> at init/main.c:1253 do_one_initcall+0x.../0x...
 *   ---[ end trace 0000000000000000 ]---
 * (irq=1: "... returned with preemption imbalance disabled interrupts"). Tainted W; insmod
 * succeeds.
 *
 * The harness must report: module FAILED for the unexpected WARNING, although its only KTAP
 * case passed.
 */
#include <linux/module.h>
#include <linux/irqflags.h>
#include <linux/preempt.h>
#include "hm_ktap.h"

static bool irq;
module_param(irq, bool, 0444);
MODULE_PARM_DESC(irq, "also return with interrupts disabled");

static int __init cat_preempt_leak_init(void)
{
	hm_ktap_header("cat_preempt_leak", 1);
	pr_info("ok 1 cat_preempt_leak_before\n");
	pr_info("# cat_preempt_leak: returning with preemption%s disabled\n",
		irq ? " and interrupts" : "");
	preempt_disable();
	if (irq)
		local_irq_disable();
	return 0;
}

static void __exit cat_preempt_leak_exit(void)
{
}

module_init(cat_preempt_leak_init);
module_exit(cat_preempt_leak_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: init returns with preemption disabled");
MODULE_LICENSE("GPL");
