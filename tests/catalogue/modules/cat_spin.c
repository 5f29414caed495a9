// SPDX-License-Identifier: GPL-2.0
/*
 * cat_spin.ko (failure catalogue): spins in its init with preemption disabled, for ever
 * (seconds=0, the default) or for seconds=N. Interrupts stay on: the other CPU, the timer
 * and the serial port keep working, but the insmod never returns and its CPU never
 * schedules again.
 *
 * Kernel log: the KTAP header (plan 1) and "# cat_spin_loop: spinning ..."; nothing more.
 * After CONFIG_RCU_CPU_STALL_TIMEOUT (21 s) of spinning the kernel may add
 * "rcu: INFO: rcu_preempt self-detected stall on CPU" (or "... detected stalls on
 * CPUs/tasks"). This kernel has no soft/hard lockup or hung task detector.
 * With seconds=N: "ok 1 cat_spin_loop" after N seconds, and insmod succeeds.
 *
 * The harness must report (seconds=0): module FAILED, insmod did not finish within the
 * module's timeout (KTAP case 1 CRASHED); it must reboot the guest and carry on.
 */
#include <linux/module.h>
#include <linux/jiffies.h>
#include <linux/preempt.h>
#include <asm/processor.h>
#include "hm_ktap.h"

static unsigned int seconds;
module_param(seconds, uint, 0444);
MODULE_PARM_DESC(seconds, "how long to spin with preemption disabled; 0 (default): for ever");

static int __init cat_spin_init(void)
{
	unsigned long end = jiffies + (unsigned long)seconds * HZ;

	hm_ktap_header("cat_spin", 1);
	if (seconds)
		pr_info("# cat_spin_loop: spinning %u s with preemption disabled\n", seconds);
	else
		pr_info("# cat_spin_loop: spinning for ever with preemption disabled\n");
	preempt_disable();
	while (!seconds || time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	pr_info("ok 1 cat_spin_loop\n");
	return 0;
}

static void __exit cat_spin_exit(void)
{
}

module_init(cat_spin_init);
module_exit(cat_spin_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: spins with preemption disabled in init");
MODULE_LICENSE("GPL");
