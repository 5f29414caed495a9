// SPDX-License-Identifier: GPL-2.0
/*
 * cat_irq_oops.ko (failure catalogue): its init arms a timer for delay_ms= (default 100 ms)
 * and sleeps a second longer; the timer callback, in softirq context, writes through a NULL
 * pointer. An oops in interrupt context is fatal: the kernel panics, while insmod sleeps.
 *
 * Kernel log (console only):
 *   ok 1 cat_irq_oops_armed
 *   BUG: kernel NULL pointer dereference, address: 00000000
 *   #PF: supervisor write access in kernel mode
 *   Oops: Oops: 0002 [#1] PREEMPT SMP
 *   EIP: cat_irq_oops_fire+0x.../0x... [cat_irq_oops]
 *   Kernel panic - not syncing: Fatal exception in interrupt
 * With the harness's panic=-1 and -no-reboot, QEMU then exits. Case 2 never reports.
 *
 * The harness must report: module FAILED (oops, then kernel panic, case 2 CRASHED) although
 * the crash was not in insmod's own call chain; then boot a new guest and carry on.
 */
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/timer.h>
#include "hm_ktap.h"

static unsigned int delay_ms = 100;
module_param(delay_ms, uint, 0444);
MODULE_PARM_DESC(delay_ms, "when the timer fires (default 100 ms); init sleeps 1 s longer");

static struct timer_list cat_timer;

static void cat_irq_oops_fire(struct timer_list *t)
{
	int *p = NULL;

	pr_info("# cat_irq_oops_survived: timer fired: writing through a NULL pointer\n");
	OPTIMIZER_HIDE_VAR(p);	/* the store must happen: no trap, no dropping */
	*p = 1;
}

static int __init cat_irq_oops_init(void)
{
	hm_ktap_header("cat_irq_oops", 2);
	timer_setup(&cat_timer, cat_irq_oops_fire, 0);
	mod_timer(&cat_timer, jiffies + msecs_to_jiffies(delay_ms));
	pr_info("ok 1 cat_irq_oops_armed\n");
	msleep(delay_ms + 1000);
	pr_info("ok 2 cat_irq_oops_survived\n");	/* not reached */
	return 0;
}

static void __exit cat_irq_oops_exit(void)
{
	timer_delete_sync(&cat_timer);
}

module_init(cat_irq_oops_init);
module_exit(cat_irq_oops_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: NULL pointer dereference in a timer");
MODULE_LICENSE("GPL");
