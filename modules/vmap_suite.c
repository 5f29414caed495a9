// SPDX-License-Identifier: GPL-2.0
/* vmap_suite.ko: placeholder, being written. */
#include <linux/module.h>
MODULE_LICENSE("GPL");
