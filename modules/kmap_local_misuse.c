// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_local_misuse.ko: the two misuses of kmap_local_page() the kernel catches, as
 * expected failures (the harness checks the kernel log for exactly the expected message).
 * i386 PAE, Linux 6.1-6.14, mm/highmem.c.
 *
 *   which=order     out-of-order kunmap_local(): WARN_ON_ONCE in kunmap_local_indexed()
 *                   (6.12:623, 6.1:610), and the kernel clears the top-of-stack slot, not
 *                   the address passed: checked at the PTE level.
 *   which=overflow  nesting past KM_MAX_IDX: BUG_ON in kmap_local_idx_push() (6.12:480,
 *                   6.1:467). insmod dies in the kernel; the harness reboots the guest.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/smp.h>
#include <linux/string.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"

static char *which = "order";
module_param(which, charp, 0444);
MODULE_PARM_DESC(which, "order | overflow");

#define NPAGES 40

static struct page *pages[NPAGES];

static int alloc_all(void)
{
	int i;

	for (i = 0; i < NPAGES; i++) {
		pages[i] = alloc_page(GFP_HIGHUSER);
		if (!pages[i])
			return -ENOMEM;
	}
	return 0;
}

static void free_all(void)
{
	int i;

	for (i = 0; i < NPAGES; i++)
		if (pages[i])
			__free_page(pages[i]);
}

/* m0 then m1 mapped; kunmap_local(m0) first: WARN, and m1's slot is the one cleared. */
static void out_of_order(struct hm_case *c)
{
	void *m0, *m1;
	int cpu;

	m0 = kmap_local_page(pages[0]);
	m1 = kmap_local_page(pages[1]);
	cpu = smp_processor_id();
	hm_case_checkpoint(c, hm_expect_slot("order: m0 mapped", m0, page_to_pfn(pages[0]),
					     cpu, 0), "m0 mapped");
	hm_case_checkpoint(c, hm_expect_slot("order: m1 mapped", m1, page_to_pfn(pages[1]),
					     cpu, 1), "m1 mapped");
	kunmap_local(m0);	/* wrong: m1 is on top */
	hm_case_checkpoint(c, hm_expect_slot("order: m0 survives", m0, page_to_pfn(pages[0]),
					     cpu, 0), "m0 survives");
	hm_case_checkpoint(c, hm_expect_unmapped("order: m1 cleared instead", m1),
			   "m1 cleared instead");
	kunmap_local(m0);	/* now m0's slot is the top one: balanced again */
	hm_case_checkpoint(c, hm_expect_unmapped("order: m0 cleared", m0), "m0 cleared");
}

/* One map more than the slot stack holds: the last kmap_local_page() hits BUG_ON. */
static void overflow(struct hm_case *c)
{
	int depth = (KM_MAX_IDX - 1) / (IS_ENABLED(CONFIG_DEBUG_KMAP_LOCAL) ? 2 : 1);
	void *va[NPAGES];
	int i;

	for (i = 0; i < depth; i++)
		va[i] = kmap_local_page(pages[i]);
	hm_case_checkpoint(c, hm_expect_slot("overflow: deepest slot", va[depth - 1],
					     page_to_pfn(pages[depth - 1]), smp_processor_id(),
					     depth - 1), "deepest slot");
	pr_info("# %s: mapping %d over the limit of %d: expect kernel BUG\n", c->name,
		depth + 1, depth);
	va[depth] = kmap_local_page(pages[depth]);	/* BUG_ON(idx >= KM_MAX_IDX) */
	/* not reached on a kernel that catches it */
	hm_case_expect(c, false, "mapping %d of %d returned %p without BUG", depth + 1, depth,
		       va[depth]);
	for (i = depth; i >= 0; i--)
		kunmap_local(va[i]);
}

static int __init kmap_local_misuse_init(void)
{
	struct hm_case c = { .number = 1 };
	bool over = !strcmp(which, "overflow");

	c.name = over ? "kmap_local_nest_past_limit_bugs" : "kmap_local_unmap_out_of_order_warns";
	hm_ktap_header("kmap_local_misuse", 1);
	if (alloc_all()) {
		hm_case_expect(&c, false, "could not allocate %d pages", NPAGES);
	} else if (over) {
		overflow(&c);
	} else {
		out_of_order(&c);
	}
	hm_case_end(&c);
	free_all();
	return 0;
}

static void __exit kmap_local_misuse_exit(void)
{
}

module_init(kmap_local_misuse_init);
module_exit(kmap_local_misuse_exit);
MODULE_DESCRIPTION("highmem-harness: kmap_local misuse the kernel must catch (WARN, BUG)");
MODULE_LICENSE("GPL");
