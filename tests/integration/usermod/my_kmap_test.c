// SPDX-License-Identifier: GPL-2.0
/* A user's own module, as in the README: one kmap_local_page case, two checkpoints. */
#include <linux/module.h>
#include <linux/highmem.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"

static int __init my_kmap_test_init(void)
{
	struct hm_case c = { .name = "my_kmap_local", .number = 1 };
	struct page *page = alloc_page(GFP_HIGHUSER);
	void *va;

	hm_ktap_header("my_kmap_test", 1);
	va = kmap_local_page(page);
	hm_case_checkpoint(&c, hm_expect_mapped("my_kmap_local: mapped", va, page_to_pfn(page),
						HM_PROT_KERNEL), "mapped");
	kunmap_local(va);
	hm_case_checkpoint(&c, hm_expect_unmapped("my_kmap_local: unmapped", va), "unmapped");
	hm_case_end(&c);
	__free_page(page);
	return 0;
}
module_init(my_kmap_test_init);
MODULE_LICENSE("GPL");
