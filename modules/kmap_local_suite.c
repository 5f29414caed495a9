// SPDX-License-Identifier: GPL-2.0
/* kmap_local_suite.ko: placeholder, being written. */
#include <linux/module.h>
MODULE_LICENSE("GPL");
