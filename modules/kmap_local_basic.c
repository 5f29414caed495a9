// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_local_basic.ko: kmap_local_page() of a highmem page above 4 GiB physical and of one
 * below, with the harness checking the fixmap PTE while mapped and after kunmap_local().
 * i386 with CONFIG_HIGHMEM64G (PAE), Linux 6.1-6.14 (mm/highmem.c, kmap_local_*).
 *
 * mutate= makes the module lie, or corrupt a PTE, to prove the harness's checks can fail:
 *   "pfn"  - announce the mapped PFN plus one (the PTE check must say PFN differs)
 *   "leak" - announce "unmapped" before calling kunmap_local() (the PTE is still there)
 *   "nx"   - clear NX in the live PTE (lookup_address) before the mapped checkpoint,
 *            restore it after (the check must say NX differs)
 *   "slot" - announce the slot one level deeper than the real one (VA differs)
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <linux/smp.h>
#include <asm/pgtable.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define PATTERN		0x5a17c0deU

static char *mutate = "";
module_param(mutate, charp, 0444);
MODULE_PARM_DESC(mutate, "make the module lie to the harness: pfn | leak | nx | slot");

static int nblocks;	/* blocks allocated while looking for the two pages */
static struct page *p_above, *p_below;	/* highmem pages above / below 4 GiB */

static void test_map_unmap(struct hm_case *c, struct page *page)
{
	unsigned long pfn;
	u32 *va;
	char label[HM_LABEL_LEN];

	hm_case_expect(c, page != NULL, "no such highmem page among %d blocks", nblocks);
	if (!page)
		return;
	pfn = page_to_pfn(page);
	hm_case_expect(c, PageHighMem(page), "pfn %#lx", pfn);
	pr_info("# %s: pfn %#lx phys %#llx\n", c->name, pfn, (u64)pfn << PAGE_SHIFT);

	va = kmap_local_page(page);
	va[0] = PATTERN;
	va[1023] = ~PATTERN;

	snprintf(label, sizeof(label), "%s: mapped", c->name);
	if (!strcmp(mutate, "nx")) {
		unsigned int level;
		pte_t *ptep = lookup_address((unsigned long)va, &level);
		pte_t orig = *ptep;

		set_pte(ptep, pte_clear_flags(orig, _PAGE_NX));
		hm_case_checkpoint(c, hm_expect_slot(label, va, pfn, smp_processor_id(), 0),
				   label);
		set_pte(ptep, orig);
	} else {
		hm_case_checkpoint(c, hm_expect_slot(label, va,
				   strcmp(mutate, "pfn") ? pfn : pfn + 1, smp_processor_id(),
				   strcmp(mutate, "slot") ? 0 : 1), label);
	}
	hm_case_expect(c, va[0] == PATTERN && va[1023] == ~PATTERN, "read back %#x", va[0]);

	snprintf(label, sizeof(label), "%s: unmapped", c->name);
	if (!strcmp(mutate, "leak")) {
		hm_case_checkpoint(c, hm_expect_unmapped(label, va), label);
		kunmap_local(va);
	} else {
		kunmap_local(va);
		hm_case_checkpoint(c, hm_expect_unmapped(label, va), label);
	}
}

static void case_above_4g(struct hm_case *c)
{
	if (!hm_case_needs_pfn_above_4g(c))
		return;
	test_map_unmap(c, p_above);
}

static void case_below_4g(struct hm_case *c)
{
	test_map_unmap(c, p_below);
}

static void find_blocks(void)
{
	nblocks = hm_find_blocks(HM_BLOCK_ORDER, &p_above, &p_below);
}

static void free_blocks(void)
{
	hm_free_blocks(HM_BLOCK_ORDER, p_above, p_below);
}

static const struct hm_suite_case cases[] = {
	{ "kmap_local_above_4g", case_above_4g },
	{ "kmap_local_below_4g", case_below_4g },
};

static const struct hm_suite suite = {
	.name = "kmap_local_basic",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: kmap_local_page above and below 4 GiB, PTE checked live");
