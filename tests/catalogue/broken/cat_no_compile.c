// SPDX-License-Identifier: GPL-2.0
/*
 * cat_no_compile.c (failure catalogue): does not compile, on purpose: its init uses an
 * identifier that is declared nowhere.
 *
 * Compiler output (gcc):
 *   cat_no_compile.c:<line>:<col>: error: 'cat_undeclared_identifier' undeclared (first use
 *   in this function)
 *   make[...]: *** [... cat_no_compile.o] Error 1
 *
 * The harness must report: cat_no_compile failed to build (with the compiler's error line),
 * run nothing of it, and still build and run cat_healthy2 from the same directory.
 */
#include <linux/module.h>
#include "hm_ktap.h"

static int __init cat_no_compile_init(void)
{
	hm_ktap_header("cat_no_compile", 1);
	pr_info("ok 1 cat_no_compile_built # %d\n", cat_undeclared_identifier);
	return 0;
}

static void __exit cat_no_compile_exit(void)
{
}

module_init(cat_no_compile_init);
module_exit(cat_no_compile_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: does not compile");
MODULE_LICENSE("GPL");
