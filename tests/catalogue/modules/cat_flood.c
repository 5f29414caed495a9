// SPDX-License-Identifier: GPL-2.0
/*
 * cat_flood.ko (failure catalogue): floods the kernel log between its KTAP header and its
 * result: lines= (default 4000) non-KTAP lines of about 110 characters, some 440 KiB, over
 * three times the 128 KiB log buffer of this kernel (CONFIG_LOG_BUF_SHIFT=17), all printed
 * on the serial console too. Init then reports one passing case and returns 0.
 *
 * Kernel log: "KTAP version 1", "# Subtest: cat_flood", "1..1", then
 * "cat_flood: line <i> of <n>: xxxx..." lines, then "ok 1 cat_flood_survived". By the time
 * the harness reads dmesg, the header has been overwritten: dmesg holds only the tail of the
 * flood and "ok 1 cat_flood_survived". No WARNING, BUG or Oops; insmod succeeds.
 *
 * The harness must report: PASS from the console log (which has everything), or a clear
 * statement that the log buffer overflowed; it must neither hang on nor drop the console
 * output, and must not invent results from a headless KTAP tail.
 */
#include <linux/module.h>
#include <linux/printk.h>
#include "hm_ktap.h"

static unsigned int lines = 4000;
module_param(lines, uint, 0444);
MODULE_PARM_DESC(lines, "log lines to print between the KTAP header and the result");

static const char cat_filler[] =
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

static int __init cat_flood_init(void)
{
	unsigned int i;

	hm_ktap_header("cat_flood", 1);
	for (i = 1; i <= lines; i++) {
		pr_info("cat_flood: line %u of %u: %s\n", i, lines, cat_filler);
		if (!(i % 256))
			cond_resched();
	}
	pr_info("ok 1 cat_flood_survived\n");
	return 0;
}

static void __exit cat_flood_exit(void)
{
}

module_init(cat_flood_init);
module_exit(cat_flood_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: floods the kernel log");
MODULE_LICENSE("GPL");
