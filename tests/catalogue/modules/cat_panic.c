// SPDX-License-Identifier: GPL-2.0
/*
 * cat_panic.ko (failure catalogue): panic() in its init, after the KTAP header (plan 1).
 *
 * Kernel log (console only: nothing can read dmesg afterwards):
 *   Kernel panic - not syncing: cat_panic: deliberate panic in module init
 *   CPU: <n> UID: 0 PID: <pid> Comm: insmod ...
 *   Call Trace: ... cat_panic_init+0x.../0x... [cat_panic] ...
 * The harness boots with panic=-1 and QEMU -no-reboot: the panic reboots at once, so QEMU
 * exits (no "---[ end Kernel panic" line is printed then).
 *
 * The harness must report: module FAILED (kernel panic, KTAP case 1 CRASHED) from the
 * console log, notice the guest is gone, boot a new one and carry on with the next module.
 */
#include <linux/module.h>
#include <linux/panic.h>
#include "hm_ktap.h"

static int __init cat_panic_init(void)
{
	hm_ktap_header("cat_panic", 1);
	pr_info("# cat_panic_now: calling panic()\n");
	panic("cat_panic: deliberate panic in module init");
	return 0;
}

static void __exit cat_panic_exit(void)
{
}

module_init(cat_panic_init);
module_exit(cat_panic_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: panic() in init");
MODULE_LICENSE("GPL");
