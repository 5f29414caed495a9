// SPDX-License-Identifier: GPL-2.0
/*
 * cat_sleep.ko (failure catalogue): sleeps in its init, for ever (seconds=0, the default) or
 * for seconds=N. The kernel stays healthy and idle: only the insmod never returns.
 *
 * By default the sleep is uninterruptible (insmod in state D: no signal, not even SIGKILL or
 * the console's ^C, gets it out). With interruptible=1 it sleeps interruptibly and init
 * returns -EINTR on a signal, so ^C on the console ends insmod ("Interrupted system call").
 *
 * Kernel log: the KTAP header (plan 1) and "# cat_sleep_forever: sleeping ..."; nothing more
 * (this kernel has no hung task detector). With seconds=N: "ok 1 cat_sleep_forever" after N
 * seconds, and insmod succeeds.
 *
 * The harness must report (seconds=0): module FAILED, insmod did not finish within the
 * module's timeout (KTAP case 1 CRASHED); it must reboot the guest and carry on.
 */
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/sched/signal.h>
#include "hm_ktap.h"

static unsigned int seconds;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long to sleep; 0 (default): for ever");

static bool interruptible;
module_param(interruptible, bool, 0444);
MODULE_PARM_DESC(interruptible, "sleep interruptibly; a signal ends init with -EINTR");

/* Sleep @ms; true when a signal cut an interruptible sleep short. */
static bool cat_sleep_a_while(unsigned int ms)
{
	if (interruptible)
		return msleep_interruptible(ms) && signal_pending(current);
	msleep(ms);
	return false;
}

static int __init cat_sleep_init(void)
{
	hm_ktap_header("cat_sleep", 1);
	pr_info("# cat_sleep_forever: sleeping %sinterruptibly, %s\n", interruptible ? "" : "un",
		seconds ? "a while" : "for ever");
	do {
		if (cat_sleep_a_while(seconds ? seconds * 1000 : 60 * 1000)) {
			pr_info("# cat_sleep_forever: interrupted by a signal\n");
			pr_info("not ok 1 cat_sleep_forever\n");
			return -EINTR;
		}
	} while (!seconds);
	pr_info("ok 1 cat_sleep_forever\n");
	return 0;
}

static void __exit cat_sleep_exit(void)
{
}

module_init(cat_sleep_init);
module_exit(cat_sleep_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: sleeps in init");
MODULE_LICENSE("GPL");
