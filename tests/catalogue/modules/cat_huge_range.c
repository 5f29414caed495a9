// SPDX-License-Identifier: GPL-2.0
/*
 * cat_huge_range.ko (failure catalogue): ONE HM_EXPECT_RANGE checkpoint with count= entries
 * (default 20000): a vmap() of pages= distinct highmem pages (default: count, i.e. 20000
 * pages, 78 MiB of the ~120 MiB i386 vmalloc area), entry i being page i % pages. The
 * expectation is true: every PTE maps its page with PAGE_KERNEL. The entries array is
 * vmalloc'd (16 bytes an entry).
 *
 * It is there to prove that the time the harness spends at a checkpoint (here one page walk
 * per entry, through gdb) counts against the module's timeout: with a short timeout (the
 * catalogue suites give 30 s) the run must end as a timeout, not hang the harness.
 *
 * Kernel log: the KTAP header (plan 1), "# cat_huge_range_vmap: <count> entries over
 * <pages> pages", then (if the harness lets it finish) "ok 1 cat_huge_range_vmap".
 * No WARNING, BUG or Oops. If the vmalloc area cannot hold the mapping: "# ... vmap of N
 * pages failed", "not ok 1 cat_huge_range_vmap" (lower pages=).
 *
 * The harness must report: with a short timeout, module FAILED: insmod did not finish within
 * the timeout (then reboot and carry on); with enough time, PASS with <count> PTE checks.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"

static unsigned int count = 20000;
module_param(count, uint, 0444);
MODULE_PARM_DESC(count, "entries in the range checkpoint (default 20000)");

static unsigned int pages;
module_param(pages, uint, 0444);
MODULE_PARM_DESC(pages, "distinct pages mapped; entries cycle over them (default: count)");

static void cat_huge_range_case(struct hm_case *c, struct page **pv, unsigned int npages,
				struct hm_range_entry *entries)
{
	unsigned int i;
	char label[56];
	void *va;

	for (i = 0; i < npages; i++) {
		pv[i] = alloc_page(GFP_HIGHUSER | __GFP_NOWARN);
		hm_case_expect(c, pv[i] != NULL, "page %u of %u: out of memory", i, npages);
		if (!pv[i])
			return;
	}
	va = vmap(pv, npages, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap of %u pages failed", npages);
	if (!va)
		return;
	for (i = 0; i < count; i++) {
		entries[i].va = (u32)(unsigned long)va + (i % npages) * PAGE_SIZE;
		entries[i].pfn = page_to_pfn(pv[i % npages]);
	}
	pr_info("# %s: %u entries over %u pages\n", c->name, count, npages);
	hm_mklabel(label, c, "%u entries", count);
	hm_case_checkpoint(c, hm_expect_range(label, entries, count, HM_PROT_KERNEL), label);
	vunmap(va);
}

static int __init cat_huge_range_init(void)
{
	struct hm_case c = { .name = "cat_huge_range_vmap", .number = 1 };
	unsigned int npages = pages && pages < count ? pages : count;
	struct hm_range_entry *entries = NULL;
	struct page **pv = NULL;
	unsigned int i;

	hm_ktap_header("cat_huge_range", 1);
	hm_case_expect(&c, count > 0, "count=0");
	if (count) {
		entries = vzalloc(array_size(count, sizeof(*entries)));
		pv = kvcalloc(npages, sizeof(*pv), GFP_KERNEL);
		hm_case_expect(&c, entries && pv, "no memory for %u entries", count);
	}
	if (entries && pv)
		cat_huge_range_case(&c, pv, npages, entries);
	hm_case_end(&c);
	for (i = 0; pv && i < npages && pv[i]; i++)
		__free_page(pv[i]);
	kvfree(pv);
	vfree(entries);
	return 0;
}

static void __exit cat_huge_range_exit(void)
{
}

module_init(cat_huge_range_init);
module_exit(cat_huge_range_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: one range checkpoint of 20000 entries");
MODULE_LICENSE("GPL");
