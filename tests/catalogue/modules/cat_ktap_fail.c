// SPDX-License-Identifier: GPL-2.0
/*
 * cat_ktap_fail.ko (failure catalogue): an ordinary test failure, nothing else wrong. Two
 * cases: the first passes, the second fails a check of the module's own (no checkpoint).
 *
 * Kernel log: the KTAP header (plan 2), "ok 1 cat_ktap_fail_pass",
 * "# cat_ktap_fail_fail: expected ...: deliberately false", "not ok 2 cat_ktap_fail_fail".
 * No WARNING, BUG or Oops; insmod succeeds.
 *
 * The harness must report: module FAILED for KTAP case cat_ktap_fail_fail: FAIL (with its
 * diagnostic), case 1 PASS; the guest needs no reboot.
 */
#include <linux/module.h>
#include "hm_ktap.h"

static unsigned int cat_answer = 42;
module_param(cat_answer, uint, 0444);
MODULE_PARM_DESC(cat_answer, "the value case 2 checks; 43 makes it pass");

static int __init cat_ktap_fail_init(void)
{
	struct hm_case pass = { .name = "cat_ktap_fail_pass", .number = 1 };
	struct hm_case fail = { .name = "cat_ktap_fail_fail", .number = 2 };

	hm_ktap_header("cat_ktap_fail", 2);
	hm_case_expect(&pass, cat_answer >= 42, "cat_answer %u", cat_answer);
	hm_case_end(&pass);
	hm_case_expect(&fail, cat_answer == 43, "deliberately false (cat_answer %u)", cat_answer);
	hm_case_end(&fail);
	return 0;
}

static void __exit cat_ktap_fail_exit(void)
{
}

module_init(cat_ktap_fail_init);
module_exit(cat_ktap_fail_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: a plain failing KTAP case");
MODULE_LICENSE("GPL");
